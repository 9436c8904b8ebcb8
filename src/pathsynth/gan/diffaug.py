"""DiffAugment (Zhao et al. 2020) with an ADA-style adaptive probability (Karras et al. 2020).

The ops are differentiable so the generator learns through them, and applied to everything the
discriminator sees (real and fake alike). Each image is augmented with probability ``p``. Random
draws are made for the *global* batch and sliced to this rank's part, so a run under torchrun
augments exactly as a single process with the same global batch would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Draw = Callable[..., torch.Tensor]  # draws uniform [0, 1) numbers for this rank's images


def _select(draw: torch.Tensor, offset: int, count: int) -> torch.Tensor:
    return draw[offset : offset + count]


def augment(
    images: torch.Tensor,
    ops: list[str],
    p: float,
    *,
    offset: int = 0,
    global_batch: int | None = None,
) -> torch.Tensor:
    """Augment a batch with DiffAugment's colour, translation and cutout.

    Args:
        images: float images in [-1, 1], (N, C, H, W).
        ops: any of ``"color"``, ``"translation"``, ``"cutout"``, applied in that order.
        p: probability each image is augmented (per op).
        offset: index of this batch's first image within the global batch (under torchrun).
        global_batch: size of the global batch the random draws are made for (default: N).

    Returns:
        The augmented images (the input itself when there is nothing to do).
    """
    if not ops or p <= 0.0:
        return images
    n = images.shape[0]
    total = global_batch or n
    device = images.device

    def draw(*shape: int) -> torch.Tensor:
        return _select(torch.rand(total, *shape, device=device), offset, n)

    def gate() -> torch.Tensor:
        return (draw(1, 1, 1) < p).to(images.dtype)

    x = images
    if "color" in ops:
        on = gate()
        brightness = (draw(1, 1, 1).to(x.dtype) - 0.5) * on
        x = x + brightness
        mean = x.mean(dim=1, keepdim=True)
        saturation = 1.0 + (draw(1, 1, 1).to(x.dtype) * 2.0 - 1.0) * on
        x = (x - mean) * saturation + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrast = 1.0 + (draw(1, 1, 1).to(x.dtype) - 0.5) * on
        x = (x - mean) * contrast + mean
    if "translation" in ops:
        x = _translate(x, draw, gate(), ratio=0.125)
    if "cutout" in ops:
        x = _cutout(x, draw, gate(), ratio=0.5)
    return x


def _translate(x: torch.Tensor, draw: Draw, on: torch.Tensor, ratio: float) -> torch.Tensor:
    n, _, h, w = x.shape
    shift_y = ((draw(1, 1, 1) * 2 - 1) * int(h * ratio + 0.5)).round().long() * on.long()
    shift_x = ((draw(1, 1, 1) * 2 - 1) * int(w * ratio + 0.5)).round().long() * on.long()
    grid_y = torch.arange(h, device=x.device).view(1, h, 1) + shift_y.view(n, 1, 1)
    grid_x = torch.arange(w, device=x.device).view(1, 1, w) + shift_x.view(n, 1, 1)
    grid_y = torch.clamp(grid_y + 1, 0, h + 1).expand(n, h, w)
    grid_x = torch.clamp(grid_x + 1, 0, w + 1).expand(n, h, w)
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    return padded.permute(0, 2, 3, 1)[batch, grid_y, grid_x].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, draw: Draw, on: torch.Tensor, ratio: float) -> torch.Tensor:
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    centre_y = (draw(1, 1, 1) * (h + (1 - size_y % 2))).long().view(n, 1, 1)
    centre_x = (draw(1, 1, 1) * (w + (1 - size_x % 2))).long().view(n, 1, 1)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (
        ((ys - centre_y + size_y // 2) >= 0)
        & ((ys - centre_y + size_y // 2) < size_y)
        & ((xs - centre_x + size_x // 2) >= 0)
        & ((xs - centre_x + size_x // 2) < size_x)
    )
    keep = 1.0 - inside.unsqueeze(1).to(x.dtype) * on
    return x * keep


class AdaptiveProbability:
    """ADA's controller: nudge ``p`` so that ``E[sign(D(real))]`` stays at ``target``.

    Call :meth:`accumulate` with each batch of real logits and :meth:`update` every ``interval``
    generator steps; ``p`` moves by ``images_seen / (speed_kimg * 1000)`` per update in the
    direction of the overfitting signal, clamped to [0, 1].

    Args:
        p: start probability.
        target: target value of the sign average.
        speed_kimg: thousands of images over which p could go from 0 to 1.
    """

    def __init__(self, p: float, target: float, speed_kimg: float) -> None:
        self.p = p
        self.target = target
        self.speed_kimg = speed_kimg
        self.sign_sum: torch.Tensor | None = None
        self.count = 0
        self.last_signal = 0.0

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add a batch of D(real) logits to the running sign sum (stays on the device)."""
        signs = torch.sign(real_logits.detach().float()).sum()
        self.sign_sum = signs if self.sign_sum is None else self.sign_sum + signs
        self.count += int(real_logits.shape[0])

    def update(self, all_reduce: Callable[[torch.Tensor], None] | None = None) -> float:
        """Move ``p`` from the accumulated signs and reset them; returns the new ``p``.

        Args:
            all_reduce: optional function summing a tensor over ranks in place (torchrun).
        """
        if self.sign_sum is None or self.count == 0:
            return self.p
        stats = torch.stack(
            [self.sign_sum, torch.tensor(float(self.count), device=self.sign_sum.device)]
        )
        if all_reduce is not None:
            all_reduce(stats)
        signal = float(stats[0] / stats[1])
        step = float(stats[1]) / (self.speed_kimg * 1000.0)
        self.p = min(1.0, max(0.0, self.p + (step if signal > self.target else -step)))
        self.last_signal = signal
        self.sign_sum, self.count = None, 0
        return self.p

    def state_dict(self) -> dict[str, float]:
        """The controller state to checkpoint."""
        return {"p": self.p, "last_signal": self.last_signal}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.p = float(state["p"])
        self.last_signal = float(state.get("last_signal", 0.0))
