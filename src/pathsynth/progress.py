"""Progress of long work (training steps, classifier fits, generated images), as logging does it:
the code that does the work reports how far it is with :func:`advance`; the application decides
how to show it by installing a sink with :func:`showing` (the CLI draws Rich progress bars on a
terminal). Without a sink, reports cost a function call and go nowhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Sink = Callable[[str, int, int], None]  # (task, done, total)
_sinks: list[Sink] = []


def advance(task: str, done: int, total: int) -> None:
    """Report that ``done`` of ``total`` units of ``task`` (``"GAN steps"``, ``"classifier
    fits"``) are finished; ``done == total`` ends the task."""
    if _sinks:
        _sinks[-1](task, done, total)


@contextlib.contextmanager
def showing(sink: Sink) -> Iterator[None]:
    """Send every report inside the ``with`` block to ``sink`` (the innermost sink wins)."""
    _sinks.append(sink)
    try:
        yield
    finally:
        _sinks.remove(sink)
