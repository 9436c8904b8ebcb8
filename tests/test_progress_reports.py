"""Progress reports: the work reports, the CLI draws bars on a terminal only."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from pathsynth.cli.app import ProgressBars
from pathsynth.progress import advance, showing


def test_reports_go_to_the_innermost_sink_and_nowhere_without_one() -> None:
    outer: list[tuple[str, int, int]] = []
    inner: list[tuple[str, int, int]] = []
    advance("steps", 1, 2)  # no sink: nothing happens
    with showing(lambda *a: outer.append(a)):
        advance("steps", 1, 2)
        with showing(lambda *a: inner.append(a)):
            advance("fits", 3, 4)
        advance("steps", 2, 2)
    advance("steps", 9, 9)
    assert outer == [("steps", 1, 2), ("steps", 2, 2)]
    assert inner == [("fits", 3, 4)]


def test_bars_start_at_the_first_report_and_each_task_ends_at_its_total() -> None:
    out = io.StringIO()
    bars = ProgressBars(Console(file=out, force_terminal=True, width=100))
    assert bars.bars is None  # nothing drawn before a report
    bars("GAN steps", 1, 4)
    bars("classifier fits", 1, 12)
    assert set(bars.tasks) == {"GAN steps", "classifier fits"}
    bars("GAN steps", 4, 4)
    assert set(bars.tasks) == {"classifier fits"}
    assert bars.bars is not None
    bars.bars.refresh()
    bars.close()
    assert bars.bars is None
    drawn = out.getvalue()
    assert "classifier fits" in drawn and "1/12" in drawn


def test_a_trainer_reports_each_of_its_steps(tmp_path: Path) -> None:
    from training.test_loop import _Toy

    seen: list[tuple[str, int, int]] = []
    with showing(lambda *a: seen.append(a)):
        _Toy(tmp_path, [(1.0, 1.0)] * 5).train()
    assert seen == [("training steps", step, 5) for step in range(1, 6)]


def test_generation_reports_the_images_made(tmp_path: Path) -> None:
    import torch

    from pathsynth.generators.sampling import generate_images

    class Flat(torch.nn.Module):
        noise_dim = 4

        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(noise), 3, 8, 8) * self.scale

    seen: list[tuple[str, int, int]] = []
    with showing(lambda *a: seen.append(a)):
        images = list(generate_images(Flat(), ["a", "b"], 3, seed=0, step=0, batch_size=2))
    assert len(images) == 6
    assert [done for _, done, _ in seen] == [2, 3, 5, 6]
    assert {(task, total) for task, _, total in seen} == {("generated images", 6)}
