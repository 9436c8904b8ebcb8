"""What the training commands (``train-gan``, ``train-diffusion``, ``pretrain``) share: their
common options, the config from a preset or from the run to resume, where the images come from,
the generators' command body and the lines that say how a run ended.

Nothing here imports the catalog at module level, so the GAN commands run without SQL packages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from pathsynth.cli.app import console, resolve_workspace
from pathsynth.cli.options import TRAINING_KEYS, config_overrides
from pathsynth.errors import ConfigError

if TYPE_CHECKING:
    from pathsynth.config import Presets
    from pathsynth.imaging.patches import PreprocessConfig
    from pathsynth.imaging.tensorset import TensorImageSet
    from pathsynth.training.loop import TrainResult

C = TypeVar("C")

DataOpt = typer.Option(None, "--data", help="Class-folder root FOLDER/<class>/<image>.")
SplitOpt = typer.Option(None, "--split", help="Catalog split to train on (with --workspace).")
FoldOpt = typer.Option("train", "--fold", help="Fold of the split.")
StepsOpt = typer.Option(None, "--steps", help="Training steps (optim.steps).")
BatchSizeOpt = typer.Option(None, "--batch-size", help="Global batch (optim.batch_size).")
ResolutionOpt = typer.Option(None, "--resolution", help="Image side (data.preprocess.size).")
SeedOpt = typer.Option(None, "--seed", help="Run seed (run.seed).")
DeviceOpt = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N (run.device).")
SetOpt = typer.Option([], "--set", help="Any config key: --set group.key=value.")
RunsOpt = typer.Option(Path("runs"), "--runs", help="Folder holding the numbered run folders.")
ResumeOpt = typer.Option(None, "--resume", help="Run folder to continue from its last checkpoint.")
DryRunOpt = typer.Option(False, "--dry-run", help="Print the resolved config and stop.")


def command_config(
    given: Mapping[str, Any],
    assignments: list[str],
    preset: str,
    resume: Path | None,
    configs: Presets[C],
    read_state: Callable[[Path], dict[str, Any]],
) -> C:
    """The config a training command runs with: its options (``given``: typer's ``ctx.params``,
    :data:`~pathsynth.cli.options.TRAINING_KEYS`) and its ``--set`` keys over the preset, or over the config of the run to
    ``--resume`` (read from its last checkpoint by ``read_state``).

    Raises:
        ConfigError: a key or value the config refuses; CheckpointError: a run to resume that
            cannot be read.
    """
    from pathsynth.training.runs import resumed_run_config

    overrides = config_overrides(given, TRAINING_KEYS, assignments)
    if resume is not None:
        return resumed_run_config(resume, overrides, read_state, configs)
    return configs.resolve(preset, overrides)


def announce_run_folder(run_dir: Path) -> None:
    """Say where a run writes, as soon as its folder exists (to continue it after a kill)."""
    console.print(f"run folder: {run_dir}")


def report_run_end(command: str, result: Any, done: str) -> None:
    """Print how a run ended: where to continue an interrupted one, else ``done``."""
    if result.status == "interrupted":
        console.print(
            f"interrupted at step {result.step}; checkpoint {result.last_checkpoint}; "
            f"continue with: pathsynth {command} --resume {result.run_dir}",
            soft_wrap=True,
        )
    else:
        console.print(done, soft_wrap=True)


def images_origin(
    data: Path | None, workspace: Path | None, split: str | None, fold: str, resume: Path | None
) -> dict[str, str]:
    """Where a training command's images come from: ``--data``, ``--workspace/--split``, or what
    the run to ``--resume`` recorded.

    Raises:
        ConfigError: both or neither given (and nothing to resume).
        CheckpointError: a resumed run that does not say where its images came from.
    """
    if data is not None and split is not None:
        raise ConfigError("give the training data as --data FOLDER or --workspace W --split NAME")
    if data is not None:
        return {"folder": str(data.resolve())}
    if split is not None:
        return {
            "workspace": str(resolve_workspace(workspace).resolve()),
            "split": split,
            "fold": fold,
        }
    from pathsynth.training.runs import recorded_data

    if resume is None:
        raise ConfigError(
            "give the training data as either --data FOLDER or --workspace W --split NAME"
        )
    return recorded_data(resume)


def load_images(preprocess: PreprocessConfig, origin: dict[str, str]) -> tuple[TensorImageSet, str]:
    """The training images of a class-folder root or a catalog split, prepared as ``reproduce``
    prepares them, and a description of where they came from."""
    from pathsynth.imaging.folders import folder_files, load_image_set

    if "folder" in origin:
        source = f"data folder {origin['folder']}"
        files = folder_files(Path(origin["folder"]))
        return load_image_set(files, preprocess, source), source
    from pathsynth.catalog.api import fold_files, open_workspace

    root = Path(origin["workspace"])
    source = f"split {origin['split']} fold {origin['fold']} of workspace {root}"
    files = fold_files(open_workspace(root), origin["split"], origin["fold"])
    return load_image_set(files, preprocess, source, root / "cache"), source


def train_generator(
    command: str,
    config: Any,
    train_run: Callable[..., TrainResult | None],
    origin: tuple[Path | None, Path | None, str | None, str, Path | None],
    runs: Path,
    name: str,
    dry_run: bool,
) -> None:
    """The body of ``train-gan`` and ``train-diffusion``: print the config (``--dry-run``) or
    load the images from ``origin`` (``--data``, ``--workspace``, ``--split``, ``--fold``,
    ``--resume``), train the run and say how it ended (rank 0)."""
    if dry_run:
        console.print_json(config.to_json())
        return
    resume = origin[-1]
    where = images_origin(*origin)
    dataset, source = load_images(config.data.preprocess, where)
    result = train_run(
        config,
        dataset,
        runs,
        name,
        source,
        resume_dir=resume,
        log=console.print,
        on_open=announce_run_folder,
        data=where,
    )
    if result is None:  # not rank 0 under torchrun: rank 0 reports
        return
    last = result.last_checkpoint.name if result.last_checkpoint else "none"
    best = f"; best {result.best_checkpoint.name}" if result.best_checkpoint else ""
    report_run_end(command, result, f"done: {result.step} steps; last {last}{best}")
