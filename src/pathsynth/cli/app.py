"""The typer application, its global options and the one place errors become one line."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from pathsynth.errors import PathsynthError
from pathsynth.progress import showing

app = typer.Typer(
    name="pathsynth",
    help="Grow small labelled microscopy sets with affine augmentation and a conditional GAN, "
    "and measure honestly whether that helps a classifier on unseen patients.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)
for _stream in (console, err_console):
    if not _stream.is_terminal:  # piped to a file: each line whole, never cut at 80 columns
        _stream.soft_wrap = True
_state = {"debug": False}

WORKSPACE_ENV = "PATHSYNTH_WORKSPACE"


def workspace_option() -> Path:
    """The default workspace: ``$PATHSYNTH_WORKSPACE``, else ``./workspace``."""
    return Path(os.environ.get(WORKSPACE_ENV, "workspace"))


WorkspaceOpt = typer.Option(
    None,
    "--workspace",
    "-w",
    help=f"Workspace folder (default: ${WORKSPACE_ENV}, else ./workspace).",
    show_default=False,
)


def progress_bar(console: Console | None = None) -> Progress:
    """The progress bar of long commands (ingest, predict), on stderr, gone when done."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console or err_console,
        transient=True,
    )


class ProgressBars:
    """A :mod:`pathsynth.progress` sink that draws one Rich bar with its time left per task
    (GAN steps, classifier fits, generated images), started at the first report and removed when
    its task ends. Only on a terminal: piped output keeps the plain log lines alone."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bars: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, task: str, done: int, total: int) -> None:
        if self.bars is None:
            self.bars = progress_bar(self.console)
            self.bars.start()
        if task not in self.tasks:
            self.tasks[task] = self.bars.add_task(task, total=total)
        self.bars.update(self.tasks[task], completed=done, total=total)
        if done >= total:
            self.bars.remove_task(self.tasks.pop(task))

    def close(self) -> None:
        """Stop drawing (the bars are transient: nothing stays on the screen)."""
        if self.bars is not None:
            self.bars.stop()
            self.bars = None


def resolve_workspace(path: Path | None) -> Path:
    """The workspace folder named on the command line, or the default one."""
    return path if path is not None else workspace_option()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    _state["debug"] = debug


@contextlib.contextmanager
def progress_bars() -> Iterator[None]:
    """Draw :mod:`pathsynth.progress` reports as bars while the block runs, on a terminal only."""
    if not err_console.is_terminal:
        yield
        return
    bars = ProgressBars(err_console)
    try:
        with showing(bars):
            yield
    finally:
        bars.close()


def main() -> None:
    """Run the CLI; a :class:`PathsynthError` becomes one red line and exit status 1.

    Usage errors are typer's own (exit status 2); anything else is a bug and keeps its traceback.
    """
    try:
        with progress_bars():
            app()
    except PathsynthError as error:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/red] {escape(str(error))}", markup=True, soft_wrap=True)
        sys.exit(1)
