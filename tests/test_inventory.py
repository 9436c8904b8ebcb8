"""The workspace listing behind ``pathsynth runs`` and the web app's experiments page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_a_file_unchanged_since_it_was_read_is_not_parsed_again(tmp_path: Path) -> None:
    from pathsynth import inventory

    path = tmp_path / "results.json"
    path.write_text("1")
    calls: list[Path] = []

    def read(p: Path) -> str:
        calls.append(p)
        return p.read_text()

    assert inventory._unchanged_since_read(path, read) == "1"
    assert inventory._unchanged_since_read(path, read) == "1"
    assert len(calls) == 1
    # an atomic rewrite is a new file: other size or modification time, read again
    path.write_text("22")
    assert inventory._unchanged_since_read(path, read) == "22"
    stamp = path.stat().st_mtime_ns
    path.write_text("33")
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    assert inventory._unchanged_since_read(path, read) == "33"
    assert len(calls) == 3


def test_a_reader_that_fails_is_not_remembered(tmp_path: Path) -> None:
    from pathsynth import inventory
    from pathsynth.errors import DataError

    path = tmp_path / "results.json"
    path.write_text("bad")
    attempts: list[int] = []

    def read(p: Path) -> str:
        attempts.append(1)
        raise DataError("damaged")

    for _ in range(2):
        with pytest.raises(DataError):
            inventory._unchanged_since_read(path, read)
    assert len(attempts) == 2
