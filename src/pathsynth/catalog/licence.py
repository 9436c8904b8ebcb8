"""Where a source's images may be used: the licence and citation its own metadata states.

Looked up, first found wins, in:

1. a ``licence``/``license`` (and optional ``citation``) column of the source's ``labels.csv``;
2. a ``LICENSE``/``LICENCE`` file (``.txt``/``.md`` too) in the source folder: its first line;
3. a ``README`` in the source folder, or the section of the parent folder's ``README`` whose
   heading names the source folder (``## bach/``): the sentence that mentions a licence or how
   the data is distributed, and the section's first sentence as the citation.

Nothing is keyed on folder names: a source that states nothing is reported as such.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

NOT_STATED = "not stated by the source (add a LICENSE file or a licence column to labels.csv)"
_LICENCE_FILES = ("LICENSE", "LICENCE", "LICENSE.txt", "LICENCE.txt", "LICENSE.md", "LICENCE.md")
_READMES = ("README.md", "README.txt", "README")
_MENTION = re.compile(r"licen[cs]e|distributed|terms of use", re.IGNORECASE)


@dataclass(frozen=True)
class SourceLicence:
    """What a source says about its use.

    Args:
        licence: the licence text (one line), or :data:`NOT_STATED`.
        citation: how to cite the source ("" when it says nothing).
        where: the file it was read from ("" when nothing was found).
    """

    licence: str
    citation: str
    where: str


def source_licence(source: Path) -> SourceLicence:
    """The licence and citation ``source`` states about itself (see the module text)."""
    for find in (_from_labels, _from_licence_file, _from_readme):
        found = find(source)
        if found is not None:
            return found
    return SourceLicence(NOT_STATED, "", "")


def _from_labels(source: Path) -> SourceLicence | None:
    path = source / "labels.csv"
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            text = (row.get("licence") or row.get("license") or "").strip()
            if text:
                return SourceLicence(text, (row.get("citation") or "").strip(), str(path))
            if "licence" not in row and "license" not in row:
                return None
    return None


def _from_licence_file(source: Path) -> SourceLicence | None:
    for name in _LICENCE_FILES:
        path = source / name
        if path.is_file():
            lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
            first = next((line for line in lines if line), "")
            if first:
                return SourceLicence(first, "", str(path))
    return None


def _from_readme(source: Path) -> SourceLicence | None:
    for folder, section in ((source, None), (source.parent, source.name)):
        for name in _READMES:
            path = folder / name
            if not path.is_file():
                continue
            text = _section(path.read_text(errors="replace"), section)
            sentences = _sentences(text)
            mention = next((s for s in sentences if _MENTION.search(s)), None)
            if mention is not None:
                return SourceLicence(mention, sentences[0], str(path))
    return None


def _section(text: str, name: str | None) -> str:
    """The whole text, or the Markdown section whose heading is ``name`` (``## name/``)."""
    if name is None:
        return text
    heading = re.compile(rf"^#+\s*`?{re.escape(name)}/?`?\s*$", re.MULTILINE)
    match = heading.search(text)
    if match is None:
        return ""
    rest = text[match.end() :]
    following = re.search(r"^#+\s", rest, re.MULTILINE)
    return rest[: following.start()] if following else rest


def _sentences(text: str) -> list[str]:
    flat = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", flat) if s.strip()]
