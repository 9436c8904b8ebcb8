"""``pathsynth serve`` (the web app) and ``pathsynth turing ...`` (the visual Turing test).

The web packages (starlette, uvicorn) are imported inside the commands, so the rest of the CLI
works without them.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.markup import escape as esc
from rich.table import Table

from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace
from pathsynth.errors import TuringError

turing_app = typer.Typer(
    help="The blinded visual Turing test: make tests, add raters, read results.",
    no_args_is_help=True,
)
app.add_typer(turing_app, name="turing")

BaseUrlOpt = typer.Option(
    "http://127.0.0.1:8000", "--base-url", help="How raters reach `pathsynth serve`, for links."
)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; not 127.0.0.1 needs "
                             "$PATHSYNTH_OPERATOR_TOKEN."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    base_url: str = typer.Option("", "--base-url", help="How raters reach this server (for "
                                 "their links; behind a proxy, its address, accepted as Host "
                                 "and Origin); default http://HOST:PORT."),
    no_operator_token: bool = typer.Option(
        False, "--no-operator-token", help="No operator sign-in: anyone reaching 127.0.0.1 "
        "without a proxy is the operator. Only for a single-user machine with no proxy, port "
        "forwarder or rater on it."),
    workspace: Path | None = WorkspaceOpt,
) -> None:  # fmt: skip
    """Serve the web app: catalog browser, experiments, and the visual Turing test. The operator
    signs in with $PATHSYNTH_OPERATOR_TOKEN, or with the link printed at start."""
    import secrets

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.serve.app import ServeSettings, operator_token_from_env
    from pathsynth.serve.app import serve as run_server

    space = Workspace(resolve_workspace(workspace))
    given = operator_token_from_env()
    token = given or (None if no_operator_token else secrets.token_urlsafe(24))
    settings = ServeSettings(host=host, port=port, operator_token=token, base_url=base_url,
                             open_operator=no_operator_token and given is None)  # fmt: skip
    settings.check()
    console.print(f"serving {esc(str(space.root))} on http://{esc(host)}:{port}/; Ctrl-C stops",
                  soft_wrap=True)  # fmt: skip
    if given is not None:
        console.print("operator sign-in with $PATHSYNTH_OPERATOR_TOKEN")
    elif token is not None:
        console.print(f"operator sign-in link (this run only): {settings.link_base}/login?token="
                      f"{token}", soft_wrap=True, markup=False)  # fmt: skip
    else:
        console.print("no operator sign-in (--no-operator-token): anyone reaching this machine's "
                      "loopback without a proxy is the operator")  # fmt: skip
    run_server(space, settings)


@turing_app.command("create")
def turing_create(
    name: str = typer.Option(..., "--name", help="Name of the test (unique)."),
    experiment: str = typer.Option(..., "--experiment", help="Experiment whose held-out real "
                                   "images and generated images are tested."),
    per_class: int = typer.Option(10, "--per-class", help="Real and generated images per class."),
    raters: str = typer.Option(..., "--raters", help="Comma-separated rater names."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw of images."),
    base_url: str = BaseUrlOpt,
    workspace: Path | None = WorkspaceOpt,
) -> None:  # fmt: skip
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
    from pathsynth.catalog.api import add_turing_rater, turing_test
    from pathsynth.catalog.workspace import Workspace

    space = Workspace(resolve_workspace(workspace))
    found = turing_test(space, test)
    if found is None:
        raise TuringError(f"no Turing test named {test!r}")
    _print_links({rater: add_turing_rater(space, found.test_id, rater)}, base_url)


@turing_app.command("list")
def turing_list(workspace: Path | None = WorkspaceOpt) -> None:
    """List the tests with their raters and answers."""
    from pathsynth.catalog.api import turing_tests
    from pathsynth.catalog.workspace import Workspace

    table = Table()
    for column in ("id", "test", "classes", "items", "raters", "answers", "made"):
        table.add_column(column)
    for t in turing_tests(Workspace(resolve_workspace(workspace))):
        table.add_row(str(t.test_id), esc(t.name), esc(", ".join(t.class_names)), str(t.items),
                      str(t.raters), str(t.answers), t.created_at)  # fmt: skip
    console.print(table)


@turing_app.command("results")
def turing_results_command(
    test: str = typer.Argument(..., help="Test name or id."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write every answer to this CSV."),
    summary_out: Path | None = typer.Option(None, "--summary-csv", help="Write the figures to "
                                            "this CSV."),
    workspace: Path | None = WorkspaceOpt,
) -> None:  # fmt: skip
    """Per rater and per class accuracy, sensitivity and specificity (95% Wilson intervals),
    Fleiss' kappa and class agreement."""
    from pathsynth.catalog.api import turing_answers, turing_test
    from pathsynth.catalog.workspace import Workspace
    from pathsynth.files import write_text_atomic
    from pathsynth.turing.results import answers_csv, summary_csv, summary_rows, turing_results

    space = Workspace(resolve_workspace(workspace))
    found = turing_test(space, test)
    if found is None:
        raise TuringError(f"no Turing test named {test!r}")
    raters, answers = turing_answers(space, found.test_id)
    results = turing_results(raters, list(answers), found.items, found.class_names)
    table = Table(title=f"{found.name}: {results.overall.answers} answers ({found.items} images, "
                  f"{len(raters)} raters); positive = synthetic")  # fmt: skip
    for column in ("rater", "class", "answers", "accuracy", "sensitivity", "specificity"):
        table.add_column(column)
    for group, rater, label, c in summary_rows(results):
        if group == "rater_class":
            continue
        table.add_row(esc(rater or "all"), esc(label or "all"), str(c.answers),
                      *(_shown(p) for p in (c.accuracy, c.sensitivity, c.specificity)))  # fmt: skip
    console.print(table)
    kappa = "n/a" if math.isnan(results.kappa) else f"{results.kappa:.3f}"
    console.print(f"Fleiss' kappa (real/synthetic): {kappa} over {results.kappa_items} images "
                  "every rater answered")  # fmt: skip
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
