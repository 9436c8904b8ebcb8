"""Writing files so they appear whole or not at all, for every stage.

A file is written to a hidden temporary name beside its destination (holding :data:`TMP_MARK`),
optionally flushed to disk, then renamed into place. A reader never sees half a file, and a run
killed mid-write leaves only a temporary file that the catalog's orphan sweep recognises.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp-"  # in the name of every temporary file written here


@contextmanager
def atomic_path(destination: Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path to write; renamed over ``destination`` when the block ends without error.

    Args:
        destination: the final file (its folder is created if missing).
        durable: fsync the file before the rename (survives a power cut, costs a disk flush).

    On any error, or an interruption, the temporary file is removed and the error re-raised.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}{TMP_MARK}")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as stream:
                os.fsync(stream.fileno())
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(destination: Path, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``destination`` whole or not at all (see :func:`atomic_path`)."""
    with atomic_path(destination, durable) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(destination: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``destination`` whole or not at all."""
    with atomic_path(destination) as tmp:
        tmp.write_text(text, encoding="utf-8")


# Characters a label keeps in its folder name; every other one is written as %XX (UTF-8 bytes).
_FOLDER_SAFE = frozenset(" _-.,+()=#&'@~")
_NAME_BYTES = 255  # the longest file name most file systems accept


def label_folder(label: str) -> str:
    """The folder (or file name part) that stands for a class label: one safe path component.

    Letters, digits and ``_-.,+()=#&'@~`` and spaces are kept; ``/``, ``\\``, ``%``, control and
    other characters become ``%XX``, and so does a leading dot, so ``../x`` cannot leave its
    parent folder and ``CIN 2/3`` stays one folder (``CIN 2%2F3``). :func:`label_from_folder`
    gives the label back.

    Raises:
        ValueError: the label is empty or its folder name would be longer than 255 bytes.
    """
    if not label:
        raise ValueError("an empty label has no folder name")
    parts = []
    for position, char in enumerate(label):
        keep = (char.isalnum() or char in _FOLDER_SAFE) and not (position == 0 and char == ".")
        parts.append(char if keep else "".join(f"%{byte:02X}" for byte in char.encode()))
    name = "".join(parts)
    if len(name.encode()) > _NAME_BYTES:
        raise ValueError(f"label {label[:40]!r}... is too long for a folder name")
    return name


def label_from_folder(name: str) -> str:
    """The class label a folder made by :func:`label_folder` stands for (other names unchanged)."""
    from urllib.parse import unquote

    return unquote(name) if "%" in name else name


# names of things the web app addresses by URL and the workspace by folder (experiments, runs):
# letters, digits, ".", "_" and "-", starting with a letter or digit
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str, what: str) -> str:
    """``name`` when it can name a folder and a URL as it is (:data:`NAME`).

    Raises:
        ValueError: the name and what it may hold.
    """
    if not NAME.match(name):
        raise ValueError(
            f"{what} name {name!r} may hold letters, digits, '.', '_' and '-' only (up to 128, "
            "starting with a letter or digit): it names a folder and a web address"
        )
    return name


def name_from(text: str) -> str:
    """A :data:`NAME` made from ``text`` (a source folder's name, say): every other character
    becomes ``-``; ``x`` when nothing is left."""
    made = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9._-]+", "-", text)).strip("-._")[:128]
    return made or "x"


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run as a formula: text starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return gets a leading ``'`` (OWASP's CSV-injection advice);
    anything else is kept as it is."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
