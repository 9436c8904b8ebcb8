"""``pathsynth serve``: the web app.

The web packages (starlette, uvicorn) are imported inside the command, so the rest of the CLI
works without them.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape as esc

from pathsynth.cli.app import WorkspaceOpt, app, console, resolve_workspace


@app.command()
def serve(
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to bind; not 127.0.0.1 needs $PATHSYNTH_OPERATOR_TOKEN.",
    ),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    base_url: str = typer.Option(
        "",
        "--base-url",
        help="How raters reach this server (for "
        "their links; behind a proxy, its address, accepted as Host "
        "and Origin); default http://HOST:PORT.",
    ),
    no_operator_token: bool = typer.Option(
        False,
        "--no-operator-token",
        help="No operator sign-in: anyone reaching 127.0.0.1 "
        "without a proxy is the operator. Only for a single-user machine with no proxy, port "
        "forwarder or rater on it.",
    ),
    workspace: Path | None = WorkspaceOpt,
) -> None:
    """Serve the web app: catalog browser, experiments, and the visual Turing test. The operator
    signs in with $PATHSYNTH_OPERATOR_TOKEN, or with the link printed at start."""
    import secrets

    from pathsynth.catalog.workspace import Workspace
    from pathsynth.serve.app import ServeSettings, answer_warnings, operator_token_from_env
    from pathsynth.serve.app import serve as run_server

    space = Workspace(resolve_workspace(workspace))
    given = operator_token_from_env()
    token = given or (None if no_operator_token else secrets.token_urlsafe(24))
    settings = ServeSettings(
        host=host,
        port=port,
        operator_token=token,
        base_url=base_url,
        open_operator=no_operator_token and given is None,
    )
    settings.check()
    settings.check_port()
    console.print(
        f"serving {esc(str(space.root))} on http://{esc(host)}:{port}/; Ctrl-C stops",
        soft_wrap=True,
    )
    for warning in answer_warnings(space):
        console.print(f"warning: {warning}", soft_wrap=True, markup=False)
    if given is not None:
        console.print("operator sign-in with $PATHSYNTH_OPERATOR_TOKEN")
    elif token is not None:
        console.print(
            f"operator sign-in link (this run only): {settings.link_base}/login?token={token}",
            soft_wrap=True,
            markup=False,
        )
    else:
        console.print(
            "no operator sign-in (--no-operator-token): anyone reaching this machine's "
            "loopback without a proxy is the operator"
        )
    run_server(space, settings)
