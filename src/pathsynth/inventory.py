"""What a workspace holds: experiments, their classifier bundles and generator runs, with headline numbers.

Read-only, and tolerant: a damaged or old file becomes a ``problem`` on its own row instead of
stopping the listing. Nothing here needs the catalog (no SQL package is imported), so
``pathsynth runs`` works wherever the files are.

Layout read:

- ``experiments/<name>/state.json`` (:class:`~pathsynth.experiment.state.ExperimentState`) and
  ``results.json`` (:func:`~pathsynth.records.schema.read_results`);
- ``experiments/<name>/**/*.bundle`` (:func:`~pathsynth.classify.bundle.read_manifest`);
- ``runs/<NNNNN-name>/run.json``, ``config.json`` and ``stats.jsonl`` (:mod:`pathsynth.training.runs`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pathsynth.errors import PathsynthError, WorkspaceError
from pathsynth.experiment.state import ExperimentPaths, ExperimentState

T = TypeVar("T")

HEADLINE_METRIC = "balanced_accuracy"


@dataclass(frozen=True)
class ExperimentEntry:
    """One experiment folder.

    Args:
        name: the folder's name.
        modality: ``histology`` / ``cytology`` (empty when the state cannot be read).
        classes: the class subset, or ``all``.
        progress: stages finished, the last one, and a stage left running (killed or running).
        headline: ``protocol/condition`` -> mean balanced accuracy on the test images.
        problem: why the state or results could not be read, else ``None``.
    """

    name: str
    modality: str = ""
    classes: str = ""
    progress: str = ""
    headline: dict[str, float] = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class BundleEntry:
    """One classifier bundle: where it is, what it was trained on, how it scored."""

    path: Path
    experiment: str | None = None
    protocol: str | None = None
    condition: str | None = None
    seed: int | None = None
    classes: list[str] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class GeneratorRunEntry:
    """One generator run folder (GAN or diffusion): identity, progress, its last losses and the
    GAN's best quality signal."""

    name: str
    kind: str = "gan"  # the generator kind run.json records (runs before it recorded one: GAN)
    run_id: str = ""
    created: str = ""
    preset: str = ""
    steps_done: int = 0
    steps_planned: int | None = None  # None: derived from epochs (not known without the data)
    loss_d: float | None = None
    loss_g: float | None = None
    loss: float | None = None  # a diffusion run's last logged training loss
    best_kid: float | None = None
    problem: str | None = None


@dataclass
class Inventory:
    """Everything :func:`workspace_inventory` found, each list sorted by name."""

    experiments: list[ExperimentEntry]
    bundles: list[BundleEntry]
    generator_runs: list[GeneratorRunEntry]


def workspace_inventory(root: Path) -> Inventory:
    """List a workspace's experiments, classifier bundles and generator runs (GAN and diffusion).

    Args:
        root: the workspace folder; missing sub-folders just mean nothing of that kind.

    Returns:
        The listing; unreadable items carry a ``problem`` rather than being dropped.

    Raises:
        WorkspaceError: ``root`` is not a folder.
    """
    if not Path(root).is_dir():
        raise WorkspaceError(f"workspace {root} does not exist")
    experiments_root, runs_root = Path(root) / "experiments", Path(root) / "runs"
    folders = (
        sorted(p for p in experiments_root.glob("*") if p.is_dir())
        if experiments_root.is_dir()
        else []
    )
    bundles = [
        _unchanged_since_read(path, read_bundle_entry)
        for folder in folders
        for path in sorted(folder.rglob("*.bundle"))
        if not path.name.startswith(".")  # an unfinished atomic write
    ]
    runs = sorted(p for p in runs_root.glob("*") if p.is_dir()) if runs_root.is_dir() else []
    return Inventory(
        experiments=[read_experiment_entry(folder) for folder in folders],
        bundles=bundles,
        generator_runs=[read_generator_run_entry(folder) for folder in runs],
    )


def read_experiment_entry(folder: Path) -> ExperimentEntry:
    """One experiment's state and, once written, its results' headline numbers."""
    paths = ExperimentPaths(folder)
    try:
        state = ExperimentState.load(paths.state)
    except PathsynthError as error:
        return ExperimentEntry(folder.name, problem=_short(error, paths.state))
    finished = [name for name, record in state.stages.items() if record.status == "finished"]
    running = [name for name, record in state.stages.items() if record.status != "finished"]
    progress = f"{len(finished)} stages finished" + (f", last {finished[-1]}" if finished else "")
    if running:
        progress += f"; {running[0]} not finished"
    entry = ExperimentEntry(
        name=state.name,
        modality=state.modality,
        classes=", ".join(state.classes) if state.classes else "all",
        progress=progress,
    )
    if not paths.results.is_file():
        return entry
    try:
        headline = _unchanged_since_read(paths.results, _headline)
    except (PathsynthError, ImportError) as error:  # ImportError: scipy absent on a GPU box
        return dataclasses.replace(entry, problem=str(error))
    return dataclasses.replace(entry, headline=headline)


_READ: dict[tuple[str, int, int, str], Any] = {}  # (path, mtime ns, size, reader) -> what it read
_READ_LIMIT = 4096


def _unchanged_since_read(path: Path, read: Callable[[Path], T]) -> T:
    """``read(path)``, or what it returned for this very file before (same path, modification
    time and size): ``serve`` lists a workspace on every request, and parsing every results file
    and bundle each time cost a quarter of a second on a cross-validation's workspace. Files are
    written atomically (replaced, never changed in place), so a rewrite is a new modification
    time. A file that cannot be read is read each time (the reader reports it)."""
    try:
        info = path.stat()
    except OSError:
        return read(path)
    key = (str(path), info.st_mtime_ns, info.st_size, read.__qualname__)
    if key not in _READ:
        if len(_READ) >= _READ_LIMIT:
            _READ.clear()
        _READ[key] = read(path)
    found: T = _READ[key]
    return found


def _headline(results_path: Path) -> dict[str, float]:
    from pathsynth.records.schema import read_results  # scipy, through the metrics it holds

    results = read_results(results_path)
    headline = {}
    for key, condition in results.conditions.items():
        summary = condition.summary.get(HEADLINE_METRIC)
        if summary is not None:
            headline[key] = summary.mean
    return headline


def read_bundle_entry(path: Path) -> BundleEntry:
    """One bundle's provenance and metrics, from the listing beside it
    (:mod:`pathsynth.classify.listing`, no torch), else from the bundle itself (its weights are
    not built; torch is imported only then), whose listing is then written where the folder
    can be written, so the next reader needs no torch (bundles made before listings existed)."""
    from pathsynth.classify.listing import read_listing, write_listing

    listed = read_listing(path)
    if listed is None:
        from pathsynth.classify.bundle import read_manifest

        try:
            listed = read_manifest(path).listing()
        except PathsynthError as error:
            return BundleEntry(path, problem=_short(error, path))
        with contextlib.suppress(OSError):  # a read-only workspace: read the bundle next time too
            write_listing(path, listed)
    return BundleEntry(
        path=path,
        experiment=listed.experiment,
        protocol=listed.protocol,
        condition=listed.condition,
        seed=listed.seed,
        classes=list(listed.classes),
        metrics=dict(listed.metrics),
    )


def read_generator_run_entry(folder: Path) -> GeneratorRunEntry:
    """One generator run's identity, config and statistics; files it lacks leave their fields
    empty."""
    try:
        identity = _json_object(folder / "run.json")
        config = _json_object(folder / "config.json")
        stats = _stats(folder / "stats.jsonl")
    except (OSError, ValueError) as error:
        return GeneratorRunEntry(folder.name, problem=f"{folder.name}: {error}")
    losses = [record for record in stats if "loss_d" in record]
    plain = [record for record in stats if isinstance(record.get("loss"), int | float)]
    kids = [float(r["quality_kid"]) for r in stats if isinstance(r.get("quality_kid"), int | float)]
    planned = config.get("optim", {}).get("steps")
    return GeneratorRunEntry(
        name=folder.name,
        kind=str(identity.get("kind", "gan")),
        run_id=str(identity.get("run_id", "")),
        created=str(identity.get("created", "")),
        preset=str(config.get("preset", "")),
        steps_done=max((int(record.get("step", 0)) for record in stats), default=0),
        steps_planned=int(planned) if isinstance(planned, int) and planned > 0 else None,
        loss_d=float(losses[-1]["loss_d"]) if losses else None,
        loss_g=float(losses[-1]["loss_g"]) if losses else None,
        loss=float(plain[-1]["loss"]) if plain else None,
        best_kid=min(kids) if kids else None,
    )


def read_run_identity(folder: Path) -> dict[str, Any]:
    """A generator run's ``run.json`` (its unique ``run_id``, creation time, data); empty when the
    folder has none.

    Raises:
        OSError, ValueError: an unreadable or malformed file.
    """
    return _json_object(folder / "run.json")


def _short(error: Exception, path: Path) -> str:
    """The error's message with the file's full path cut to its name (the row names the file)."""
    return str(error).replace(str(path), path.name)


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON object file's content; an absent file reads as empty."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} holds a {type(data).__name__}, not an object")
    return data


def _stats(path: Path) -> list[dict[str, Any]]:
    """The stats lines that parse (a line cut short by a kill is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
