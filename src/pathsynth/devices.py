"""Which torch device a stage computes on, and whether bf16 autocast pays there: decided once.

torch is imported where it is used, so that configs (which name the modes below) load without it.
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from pathsynth.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

AMP_MODES = ("auto", "bf16", "off")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's ``device`` value (``"auto"`` picks CUDA when present).

    Raises:
        ConfigError: CUDA asked for but not available, or a name torch does not know.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but no CUDA device is available")
    return device


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 natively here (AVX512-BF16 / AMX): bf16 measured faster."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(amp: str, device: torch.device) -> bool:
    """Whether an ``amp`` setting (``auto`` | ``bf16`` | ``off``) means bf16 autocast on ``device``."""
    if amp == "bf16":
        return True
    if amp == "off":
        return False
    return device.type == "cuda" or cpu_has_native_bf16()


def compiled(module: nn.Module, mode: str) -> nn.Module:
    """``torch.compile(module)`` in one of :data:`COMPILE_MODES` (``reduce-overhead`` replays
    CUDA graphs; ``max-autotune-no-cudagraphs`` times Triton kernels, minutes to compile).

    Raises:
        ConfigError: an unknown mode.
    """
    import torch

    if mode not in COMPILE_MODES:
        raise ConfigError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_MODES)}")
    # static shapes: a second batch size gets a graph of its own, not a slower dynamic one
    return torch.compile(module, mode=None if mode == "default" else mode, dynamic=False)  # type: ignore[return-value]


def device_name(device: torch.device) -> str:
    """``device`` as a reader of a timing wants it: the GPU's model (``NVIDIA H100 80GB HBM3,
    cuda:0``) or the CPU with the threads torch uses (``cpu, x86_64, 2 threads``)."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)}, cuda:{index}"
    machine = platform.machine() or "unknown architecture"
    threads = torch.get_num_threads()
    return f"{device.type}, {machine}, {threads} thread{'s' if threads != 1 else ''}"
