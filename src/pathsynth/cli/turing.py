"""``pathsynth turing ...``: the blinded visual Turing test (make tests, add raters, read
results), through :class:`pathsynth.turing.store.TuringBook`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape as esc
from rich.table import Table

from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace
from pathsynth.errors import TuringError

if TYPE_CHECKING:
    from pathsynth.turing.store import TestSummary, TuringBook

turing_app = typer.Typer(
    help="The blinded visual Turing test: make tests, add raters, read results.",
    no_args_is_help=True,
)
app.add_typer(turing_app, name="turing")

BaseUrlOpt = typer.Option(
    "http://127.0.0.1:8000", "--base-url", help="How raters reach `pathsynth serve`, for links."
)


@turing_app.command("create")
def turing_create(
    name: str = typer.Option(..., "--name", help="Name of the test (unique)."),
    experiment: str = typer.Option(
        ...,
        "--experiment",
        help="Experiment whose held-out real images and generated images are tested.",
    ),
    per_class: int = typer.Option(10, "--per-class", help="Real and generated images per class."),
    raters: str = typer.Option(..., "--raters", help="Comma-separated rater names."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw of images."),
    base_url: str = BaseUrlOpt,
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Make a test from an experiment and print each rater's secret link (shown only now)."""
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.design import make_test_from_experiment

    space = Workspace(resolve_workspace(workspace))
    names = [r.strip() for r in raters.split(",") if r.strip()]
    made = make_test_from_experiment(space, experiment, name, per_class, names, seed)
    console.print(
        f"test {esc(made.name)} (id {made.test_id}): {made.items} images of "
        f"{len(made.class_names)} classes ({esc(', '.join(made.class_names))})"
    )
    _print_links(made.tokens, base_url)


def _print_links(tokens: dict[str, str], base_url: str) -> None:
    console.print("rater links (secret; shown only now):")
    for rater, token in tokens.items():
        console.print(f"  {esc(rater)}: {base_url.rstrip('/')}/turing/join/{token}", soft_wrap=True)


@turing_app.command("add-rater")
def turing_add_rater(
    test: str = typer.Argument(..., help="Test name or id."),
    rater: str = typer.Argument(..., help="The rater's name."),
    base_url: str = BaseUrlOpt,
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Add a rater to a test and print their secret link."""
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.store import TuringBook

    with TuringBook.open(Workspace(resolve_workspace(workspace))) as book:
        found = _named_test(book, test)
        token = book.add_rater(found.test_id, rater)
    _print_links({rater: token}, base_url)


@turing_app.command("list")
def turing_list(workspace: Path | None = WorkspaceOpt) -> None:
    """List the tests with their raters and answers."""
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.turing.store import TuringBook

    with TuringBook.open(Workspace(resolve_workspace(workspace))) as book:
        tests = book.tests()
    table = Table()
    for column in ("id", "test", "classes", "items", "raters", "answers", "made"):
        table.add_column(column)
    for t in tests:
        table.add_row(
            str(t.test_id),
            esc(t.name),
            esc(", ".join(t.class_names)),
            str(t.items),
            str(t.raters),
            str(t.answers),
            t.created_at,
        )
    console.print(table)


@turing_app.command("results")
def turing_results_command(
    test: str = typer.Argument(..., help="Test name or id."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write every answer to this CSV."),
    summary_out: Path | None = typer.Option(
        None, "--summary-csv", help="Write the figures to this CSV."
    ),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Per rater and per class accuracy, sensitivity and specificity (95% Wilson intervals),
    Fleiss' kappa and class agreement."""
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.files import write_text_atomic
    from pathsynth.turing.results import answers_csv, summary_csv, summary_rows, turing_results
    from pathsynth.turing.store import TuringBook

    with TuringBook.open(Workspace(resolve_workspace(workspace))) as book:
        found = _named_test(book, test)
        raters, answers = book.answers(found.test_id)
    results = turing_results(raters, list(answers), found.items, found.class_names)
    table = Table(
        title=f"{found.name}: {results.overall.answers} answers ({found.items} images, "
        f"{len(raters)} raters); positive = synthetic"
    )
    for column in ("rater", "class", "answers", "accuracy", "sensitivity", "specificity"):
        table.add_column(column)
    for group, rater, label, c in summary_rows(results):
        if group == "rater_class":
            continue
        table.add_row(
            esc(rater or "all"),
            esc(label or "all"),
            str(c.answers),
            *(_shown(p) for p in (c.accuracy, c.sensitivity, c.specificity)),
        )
    console.print(table)
    kappa = "n/a" if math.isnan(results.kappa) else f"{results.kappa:.3f}"
    console.print(
        f"Fleiss' kappa (real/synthetic): {kappa} over {results.kappa_items} images "
        "every rater answered"
    )
    for label, p in results.class_agreement_synthetic.items():
        console.print(f"class agreement on synthetic {esc(label)}: {_shown(p)}")
    if csv_out is not None:
        write_text_atomic(csv_out, answers_csv(answers))
        console.print(f"answers written to {esc(str(csv_out))}")
    if summary_out is not None:
        write_text_atomic(summary_out, summary_csv(results))
        console.print(f"figures written to {esc(str(summary_out))}")


def _shown(p: object) -> str:
    from pathsynth.metrics.agreement import Proportion

    assert isinstance(p, Proportion)
    if p.total == 0:
        return "n/a"
    return f"{100 * p.value:.1f}% [{100 * p.low:.1f}, {100 * p.high:.1f}] ({p.successes}/{p.total})"


def _named_test(book: TuringBook, name_or_id: str) -> TestSummary:
    """The test of that name (or id).

    Raises:
        TuringError: no such test.
    """
    found = book.test(name_or_id)
    if found is None:
        raise TuringError(f"no Turing test named {name_or_id!r}")
    return found
