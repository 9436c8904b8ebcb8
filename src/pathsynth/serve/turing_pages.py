"""The visual Turing test's pages: the raters' (one image at a time) and the operator's (tests,
raters, results, CSV).

A rater's secret link (``/turing/join/<token>``) sets a cookie with the token and sends them to
their test; every rater page and image checks that the cookie's rater belongs to the test in the
URL and answers 404 otherwise, so a token opens its own test only. Items are named by opaque ids;
their files are plain PNGs re-encoded when the test was made.
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pathsynth.errors import AnswerNotStored, PathsynthError, TuringError
from pathsynth.serve.pages import render
from pathsynth.serve.params import whole_number
from pathsynth.serve.security import RATER_COOKIE, check_csrf, require_operator
from pathsynth.turing.results import (
    TuringResults,
    answers_csv,
    summary_csv,
    summary_rows,
    turing_results,
)
from pathsynth.turing.store import Rater, TestSummary, TuringBook

_PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{16,32}$")


def _book(request: Request) -> TuringBook:
    return request.app.state.book


def _test(request: Request) -> TestSummary:
    test = _book(request).test_by_id(request.path_params["test_id"])
    if test is None:
        raise HTTPException(404)
    return test


def _rater(request: Request) -> Rater:
    """The rater whose cookie came with the request, if they belong to the URL's test; else 404
    (the same answer as for a test that does not exist)."""
    token = request.cookies.get(RATER_COOKIE, "")
    rater = _book(request).rater(token) if token else None
    if rater is None or rater.test_id != request.path_params["test_id"]:
        raise HTTPException(404)
    return rater


# -- the rater's pages ---------------------------------------------------------------------------


def join(request: Request) -> Response:
    """A rater's secret link: remember the token in a cookie and go to their test."""
    token = str(request.path_params["token"])
    rater = _book(request).rater(token)
    if rater is None:
        raise HTTPException(404)
    response = RedirectResponse(f"/turing/{rater.test_id}/rate", status_code=303)
    response.set_cookie(
        RATER_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        path="/turing/",
        secure=request.url.scheme == "https",
    )
    return response


async def rate(request: Request) -> Response:
    """The rater's page: the next unanswered image, and the answer to the last one."""
    rater = _rater(request)
    test = _test(request)
    error, status, chosen = "", 200, dict[str, str]()
    if request.method == "POST":
        form = await check_csrf(request)
        label = form.get("label") or None
        confidence = form.get("confidence", "")
        try:
            await run_in_threadpool(
                _book(request).answer,
                rater,
                form.get("item", ""),
                form.get("called", ""),
                label,
                whole_number(confidence),
                test.class_names,
            )
        except AnswerNotStored as failed:  # kept in the page: the same item, the same choices
            error, status = str(failed), 503
            chosen = {key: str(form.get(key, "")) for key in ("item", "called", "label")}
            chosen["confidence"] = str(confidence)
        except TuringError as refused:
            error, status = str(refused), 400
        else:
            return RedirectResponse(request.url.path, status_code=303)
    items = await run_in_threadpool(_book(request).items_for, rater)
    done = sum(item.called is not None for item in items)
    pending = [item for item in items if item.called is None]
    again = [item for item in pending if item.public_id == chosen.get("item")]
    shown = (again or pending)[0] if pending else None
    response = render(
        request,
        "rate.html",
        {
            "test": test,
            "rater": rater,
            "item": shown,
            "chosen": chosen,
            "done": done,
            "total": len(items),
            "error": error,
            "operator": False,  # a rater's page links nowhere else, even on a token-less loopback
        },
        status_code=status,
    )
    if status == 503:
        response.headers["Retry-After"] = "60"
    return response


def item_image(request: Request) -> Response:
    """An item's re-encoded PNG, for a rater of its test only."""
    rater = _rater(request)
    public_id = str(request.path_params["public_id"])
    if not _PUBLIC_ID.match(public_id) or not _book(request).has_item(rater.test_id, public_id):
        raise HTTPException(404)
    path = _book(request).folder(rater.test_id) / f"{public_id}.png"
    try:
        data = path.read_bytes()
    except OSError:
        raise HTTPException(404) from None
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, no-store"})


# -- the operator's pages ------------------------------------------------------------------------


async def tests(request: Request) -> Response:
    """The operator's list of tests and the form that makes one from an experiment."""
    require_operator(request)
    from pathsynth.inventory import workspace_inventory

    created = None
    error = ""
    if request.method == "POST":
        form = await check_csrf(request)
        try:
            created = await run_in_threadpool(_create, request, form)
        except PathsynthError as refused:
            error = str(refused)
    names = [e.name for e in workspace_inventory(request.app.state.space.root).experiments]
    return render(
        request,
        "turing_tests.html",
        {
            "tests": _book(request).tests(),
            "experiments": names,
            "created": created,
            "error": error,
            "link_base": request.app.state.settings.link_base,
        },
        status_code=400 if error else 200,
    )


def _create(request: Request, form: dict[str, str]) -> object:
    from pathsynth.turing.design import make_test_from_experiment

    per_class = whole_number(form.get("per_class", ""))
    if per_class is None:
        raise TuringError("images per class must be a whole number")
    seed = whole_number(form.get("seed", "0")) or 0
    raters = [name.strip() for name in form.get("raters", "").split(",") if name.strip()]
    return make_test_from_experiment(
        request.app.state.space,
        form.get("experiment", ""),
        form.get("name", "").strip(),
        per_class,
        raters,
        seed,
    )


async def test_page(request: Request) -> Response:
    """One test: its raters' progress and the form that adds a rater."""
    require_operator(request)
    test = _test(request)
    added = None
    error = ""
    if request.method == "POST":
        form = await check_csrf(request)
        name = form.get("name", "").strip()
        try:
            token = await run_in_threadpool(_book(request).add_rater, test.test_id, name)
        except TuringError as refused:
            error = str(refused)
        else:
            added = (name, token)
            test = _test(request)
    raters, answers = _book(request).answers(test.test_id)
    progress = {r: sum(a.rater == r for a in answers) for r in raters}
    return render(
        request,
        "turing_test.html",
        {
            "test": test,
            "progress": progress,
            "added": added,
            "error": error,
            "link_base": request.app.state.settings.link_base,
        },
        status_code=400 if error else 200,
    )


def _figures(request: Request, test: TestSummary) -> TuringResults:
    """The test's figures, computed from its stored answers."""
    raters, answers = _book(request).answers(test.test_id)
    return turing_results(raters, list(answers), test.items, test.class_names)


def results(request: Request) -> Response:
    """A test's figures, computed from its stored answers."""
    require_operator(request)
    test = _test(request)
    figures = _figures(request, test)
    return render(
        request,
        "turing_results.html",
        {
            "test": test,
            "results": figures,
            "rows": summary_rows(figures),
        },
    )


def answers_file(request: Request) -> Response:
    """Every answer of a test as CSV."""
    require_operator(request)
    test = _test(request)
    _, answers = _book(request).answers(test.test_id)
    return _csv(answers_csv(answers), f"turing-{test.test_id}-answers.csv")


def summary_file(request: Request) -> Response:
    """A test's figures as CSV."""
    require_operator(request)
    test = _test(request)
    return _csv(summary_csv(_figures(request, test)), f"turing-{test.test_id}-summary.csv")


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def turing_routes() -> list[Route]:
    """The Turing test's routes."""
    return [
        Route("/turing", tests, methods=["GET", "POST"]),
        Route("/turing/join/{token}", join),
        Route("/turing/{test_id:id}", test_page, methods=["GET", "POST"]),
        Route("/turing/{test_id:id}/rate", rate, methods=["GET", "POST"]),
        Route("/turing/{test_id:id}/items/{public_id}.png", item_image),
        Route("/turing/{test_id:id}/results", results),
        Route("/turing/{test_id:id}/answers.csv", answers_file),
        Route("/turing/{test_id:id}/summary.csv", summary_file),
    ]
