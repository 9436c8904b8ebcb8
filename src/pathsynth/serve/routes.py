"""The operator's pages: the catalog browser, images, experiments, GAN runs and sign-in.

Images are reached by catalog id only (``/images/<int>``): the file comes from the catalog row,
never from the request. Report files and sample grids are served only when their name is in the
listing of their own folder, so no request path reaches the file system.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from pathsynth.catalog.api import CatalogReader, ImageFilter
from pathsynth.files import NAME
from pathsynth.inventory import read_experiment_entry, read_generator_run_entry, read_run_identity
from pathsynth.serve.charts import bar_chart
from pathsynth.serve.pages import render
from pathsynth.serve.params import whole_number
from pathsynth.serve.security import (
    OPERATOR_COOKIE,
    REPORT_POLICY,
    SignInGuard,
    check_csrf,
    require_operator,
)
from pathsynth.serve.thumbnails import THUMB_SIDE, VIEW_SIDE, ThumbnailCache

if TYPE_CHECKING:
    from pathsynth.imaging.patches import PreprocessConfig

_GRID = re.compile(r"^grid-step=(\d+)\.png$")
COMPARE_PER_CLASS = 8


def _reader(request: Request) -> CatalogReader:
    return request.app.state.reader


def _int_param(request: Request, name: str) -> int | None:
    return whole_number(request.query_params.get(name, ""))


def _filter(request: Request) -> ImageFilter:
    q = request.query_params
    fields = ("label", "origin", "split", "fold", "source", "study", "patient")
    return ImageFilter(**{key: q.get(key, "")[:255] for key in fields})


# -- overview and images -------------------------------------------------------------------------


def home(request: Request) -> Response:
    """The overview: totals and the class and origin charts."""
    require_operator(request)
    counts = _reader(request).counts()
    return render(
        request,
        "home.html",
        {
            "counts": counts,
            "class_chart": bar_chart("Images per class", counts.per(0)),
            "origin_chart": bar_chart("Images per origin", counts.per(1)),
            "total": sum(counts.by_class_origin.values()),
        },
    )


def images(request: Request) -> Response:
    """One keyset page of images under the query's filters."""
    require_operator(request)
    wanted = _filter(request)
    reader = _reader(request)
    page = reader.images(wanted, _int_param(request, "after"), _int_param(request, "before"))
    return render(
        request,
        "images.html",
        {
            "page": page,
            "wanted": wanted,
            "query": wanted.as_query(),
            "choices": reader.choices(),
        },
    )


def image(request: Request) -> Response:
    """One image's page; 404 for an id the catalog does not hold."""
    require_operator(request)
    detail = _reader(request).image(request.path_params["image_id"])
    if detail is None:
        raise HTTPException(404)
    return render(request, "image.html", {"image": detail})


async def thumbnail(request: Request) -> Response:
    """A 256 px JPEG of a catalog image (see :func:`_downsized`)."""
    return await _downsized(request, THUMB_SIDE)


async def view(request: Request) -> Response:
    """A 1024 px JPEG of a catalog image (see :func:`_downsized`)."""
    return await _downsized(request, VIEW_SIDE)


async def _downsized(request: Request, side: int) -> Response:
    """A cached JPEG of a catalog image; 404 for an unknown id or a file that cannot be read."""
    require_operator(request)
    image_id: int = request.path_params["image_id"]
    thumbs: ThumbnailCache = request.app.state.thumbs
    path = thumbs.cached(image_id, side)
    data = _read(path) if path is not None else None
    if data is None:
        path = await run_in_threadpool(thumbs.path, image_id, side)
        data = _read(path) if path is not None else None
    if data is None or path is None:
        raise HTTPException(404)
    etag = f'"{path.stem}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/jpeg", headers=headers)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


# -- patients and studies ------------------------------------------------------------------------


def patients(request: Request) -> Response:
    """One page of patients (or, with ``kind=generator``, generator runs) by code."""
    require_operator(request)
    kind = "generator" if request.query_params.get("kind") == "generator" else ""
    after = request.query_params.get("after", "")[:64] or None
    listed, next_after = _reader(request).patients(after, kind=kind)
    return render(
        request,
        "patients.html",
        {
            "patients": listed,
            "next_after": next_after,
            "kind": kind,
        },
    )


def patient(request: Request) -> Response:
    """A patient's studies; 404 for an unknown code."""
    require_operator(request)
    found = _reader(request).patient(str(request.path_params["code"])[:64])
    if found is None:
        raise HTTPException(404)
    person, studies = found
    return render(request, "patient.html", {"patient": person, "studies": studies})


def study(request: Request) -> Response:
    """A study and its first images; 404 for an unknown code."""
    require_operator(request)
    reader = _reader(request)
    found = reader.study(str(request.path_params["code"])[:64])
    if found is None:
        raise HTTPException(404)
    wanted = ImageFilter(study=found.code)
    page = reader.images(wanted, limit=24)
    return render(request, "study.html", {"study": found, "page": page})


# -- experiments and GAN runs --------------------------------------------------------------------


def _workspace_root(request: Request) -> Path:
    return request.app.state.space.root


def _listed_folder(parent: Path, name: str) -> Path:
    """``parent/name`` when ``name`` is one of ``parent``'s sub-folders, else 404."""
    if not NAME.match(name) or not parent.is_dir():
        raise HTTPException(404)
    names = {p.name for p in parent.iterdir() if p.is_dir()}
    if name not in names:
        raise HTTPException(404)
    return parent / name


def experiments(request: Request) -> Response:
    """The workspace's experiments, GAN runs and classifier bundles."""
    require_operator(request)
    from pathsynth.inventory import workspace_inventory

    found = workspace_inventory(_workspace_root(request))
    reports = {
        entry.name
        for entry in found.experiments
        if (
            _workspace_root(request) / "experiments" / entry.name / "report" / "report.html"
        ).is_file()
    }
    return render(request, "experiments.html", {"inventory": found, "reports": reports})


def experiment(request: Request) -> Response:
    """One experiment: headline numbers, report link, side-by-side images, grids."""
    require_operator(request)
    folder = _listed_folder(_workspace_root(request) / "experiments", request.path_params["name"])
    entry = read_experiment_entry(folder)
    run = _experiment_run(folder)
    compare = _comparison(request, folder, run)
    return render(
        request,
        "experiment.html",
        {
            "entry": entry,
            "has_report": (folder / "report" / "report.html").is_file(),
            "run": run,
            "grids": _grids(run) if run else [],
            "compare": compare,
            "has_generated": any(generated for _, _, generated in compare),
        },
    )


async def real_at_generated_scale(request: Request) -> Response:
    """A real image as the experiment's generator saw real images: prepared with the
    experiment's inputs (its micrometres per pixel), the first patch cropped at its centre to the
    generated images' side, as a PNG. 404 for a generated image, an unknown id, or an image the
    inputs cannot be made from."""
    require_operator(request)
    folder = _listed_folder(_workspace_root(request) / "experiments", request.path_params["name"])
    seen = _generator_inputs(folder)
    found = _reader(request).image_source(request.path_params["image_id"])
    if seen is None or found is None or found[2] != "real":
        raise HTTPException(404)
    from pathsynth.errors import PathsynthError
    from pathsynth.turing.design import clean_png, display_pixels

    path, sha256, _, pixel_size_um = found
    preprocess, side = seen

    def make() -> bytes | None:
        try:
            return clean_png(display_pixels(path, "real", preprocess, sha256, side, pixel_size_um))
        except (PathsynthError, OSError):
            return None

    # cached like the thumbnails, under a name that changes with the image and its preparation
    how = json.dumps([preprocess.as_dict(), pixel_size_um, side], sort_keys=True)
    name = f"{sha256}-seen-{hashlib.sha256(how.encode()).hexdigest()[:16]}.png"
    thumbs: ThumbnailCache = request.app.state.thumbs
    made = await run_in_threadpool(thumbs.made, name, make)
    data = _read(made) if made is not None else None
    if data is None:
        raise HTTPException(404)
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


def _generator_inputs(folder: Path) -> tuple[PreprocessConfig, int] | None:
    """The experiment's inputs and the side of its generated images (the generator's training
    crops, else its inputs), or None when its state cannot be read."""
    from pathsynth.errors import PathsynthError
    from pathsynth.experiment.config import experiment_presets
    from pathsynth.experiment.state import ExperimentState

    try:
        state = ExperimentState.load(folder / "state.json")
        config = experiment_presets(state.modality).read(state.config)
    except PathsynthError:
        return None
    return config.preprocess, config.gan.data.crop or config.preprocess.size


def _experiment_run(folder: Path) -> Path | None:
    """The experiment's generator run folder (from its state), if it is in the workspace."""
    from pathsynth.errors import PathsynthError
    from pathsynth.experiment.state import ExperimentState

    try:
        state = ExperimentState.load(folder / "state.json")
    except PathsynthError:
        return None
    run_dir = state.outputs("generator").get("run_dir")
    if not run_dir:
        return None
    runs = folder.parent.parent / "runs"
    name = Path(run_dir).name
    return runs / name if (runs / name).is_dir() else None


def _comparison(
    request: Request, folder: Path, run: Path | None
) -> list[tuple[str, list[int], list[int]]]:
    """Per class: ids of real images of the experiment's source and of its generated images."""
    from pathsynth.errors import PathsynthError
    from pathsynth.experiment.state import ExperimentState

    try:
        state = ExperimentState.load(folder / "state.json")
    except PathsynthError:
        return []
    reader = _reader(request)
    source = Path(state.source).name
    try:  # the generator's images sit in a "study" named after the run and its unique id
        run_id = str(read_run_identity(run).get("run_id", "")) if run else ""
    except (OSError, ValueError):
        run_id = ""
    wanted_source = f"{run.name}-{run_id[:12]}" if run and run_id else None
    synthetic_sources = [s for s in reader.choices().sources if s == wanted_source]
    out = []
    for label in state.classes or [c for c in reader.choices().labels]:
        real = reader.sample(
            ImageFilter(label=label, origin="real", source=source), COMPARE_PER_CLASS
        )
        generated: list[int] = []
        for name in synthetic_sources:
            generated += reader.sample(
                ImageFilter(label=label, origin="synthetic", source=name), COMPARE_PER_CLASS
            )
        if real or generated:
            out.append((label, real, generated[:COMPARE_PER_CLASS]))
    return out


def _grids(run: Path) -> list[tuple[int, int]]:
    """(index, step) of a run's sample grids, in step order."""
    folder = run / "samples"
    if not folder.is_dir():
        return []
    steps = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _GRID.match(p.name)))
    return list(enumerate(steps))


def report_file(request: Request) -> Response:
    """A file of an experiment's report folder, when it is in that folder's listing."""
    require_operator(request)
    folder = _listed_folder(_workspace_root(request) / "experiments", request.path_params["name"])
    report = folder / "report"
    wanted = str(request.path_params.get("file") or "report.html")
    if not report.is_dir():
        raise HTTPException(404)
    listing = {p.relative_to(report).as_posix(): p for p in report.rglob("*") if p.is_file()}
    if wanted not in listing:
        raise HTTPException(404)
    return FileResponse(listing[wanted], headers={"Content-Security-Policy": REPORT_POLICY})


def gan_run(request: Request) -> Response:
    """One GAN run: its numbers and sample grids."""
    require_operator(request)
    folder = _listed_folder(_workspace_root(request) / "runs", request.path_params["name"])
    return render(
        request, "run.html", {"run": read_generator_run_entry(folder), "grids": _grids(folder)}
    )


def grid(request: Request) -> Response:
    """One sample grid of a run, by its position in the run's list of grids."""
    require_operator(request)
    folder = _listed_folder(_workspace_root(request) / "runs", request.path_params["name"])
    grids = _grids(folder)
    index: int = request.path_params["index"]
    if not 0 <= index < len(grids):
        raise HTTPException(404)
    path = folder / "samples" / f"grid-step={grids[index][1]:08d}.png"
    return FileResponse(path, media_type="image/png")


# -- operator sign-in ----------------------------------------------------------------------------


async def login(request: Request) -> Response:
    """The operator's sign-in: the form, or the link ``serve`` prints (``/login?token=...``,
    whose token then leaves the address bar by a redirect); a wrong token is refused with 403."""
    token = request.app.state.settings.operator_token
    if request.method == "GET":
        given = request.query_params.get("token")
        if given is None:
            return render(request, "login.html", {"failed": False, "wait": 0})
    else:
        given = (await check_csrf(request)).get("token")
    guard: SignInGuard = request.app.state.sign_in_guard
    if token is not None and (wait := guard.wait()) > 0:
        return render(
            request,
            "login.html",
            {"failed": True, "wait": math.ceil(wait)},
            status_code=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    if token is None or not guard.check(given, token):
        return render(request, "login.html", {"failed": True, "wait": 0}, status_code=403)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        OPERATOR_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def catalog_routes() -> list[Route]:
    """The operator's routes."""
    return [
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/images", images),
        Route("/images/{image_id:id}", image),
        Route("/images/{image_id:id}/thumb.jpg", thumbnail),
        Route("/images/{image_id:id}/view.jpg", view),
        Route("/patients", patients),
        Route("/patients/{code}", patient),
        Route("/studies/{code}", study),
        Route("/experiments", experiments),
        Route("/experiments/{name}", experiment),
        Route("/experiments/{name}/real/{image_id:id}.png", real_at_generated_scale),
        Route("/experiments/{name}/report/", report_file),
        Route("/experiments/{name}/report/{file:path}", report_file),
        Route("/runs/{name}", gan_run),
        Route("/runs/{name}/grids/{index:id}.png", grid),
    ]
