"""MkDocs hooks: pages made at build time, so they cannot fall out of date.

- ``reference/cli.md``: the ``pathsynth`` command's reference, generated from the typer app (every
  command, argument and option with its help), as ``typer pathsynth.cli utils docs`` writes it.
- ``benchmarks.md`` and ``changelog.md``: the repository's ``BENCHMARKS.md`` and ``CHANGELOG.md``,
  which stay at the root where a reader of the repository looks for them.
"""

from __future__ import annotations

from pathlib import Path

import typer
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from typer.cli import get_docs_for_click

ROOT = Path(__file__).resolve().parents[1]
ROOT_PAGES = {"benchmarks.md": "BENCHMARKS.md", "changelog.md": "CHANGELOG.md"}


def cli_reference() -> str:
    """The CLI reference in Markdown, from the app with every command registered."""
    from pathsynth.cli import app

    command = typer.main.get_command(app)
    with typer.Context(command, info_name="pathsynth") as context:
        body = get_docs_for_click(obj=command, ctx=context, name="pathsynth", title="CLI reference")
    intro = (
        "Generated from the typer app at every build of this site: it is what "
        "`pathsynth COMMAND --help` prints.\n\n"
    )
    title, _, rest = body.strip().partition("\n")
    return f"{title}\n\n{intro}{rest.strip()}\n"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    for page, source in ROOT_PAGES.items():
        files.append(File.generated(config, page, content=(ROOT / source).read_text()))
    return files
