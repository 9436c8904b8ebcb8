"""Input checks shared by the synthesis-quality metrics."""

from __future__ import annotations

import torch

from pathsynth.errors import DataError


def feature_matrix(features: torch.Tensor, what: str, min_rows: int = 2) -> torch.Tensor:
    """``features`` as a finite float64 (n, d) matrix on the CPU, or a :class:`DataError`."""
    if features.ndim != 2:
        raise DataError(f"{what} must be an (n, d) matrix, got shape {tuple(features.shape)}")
    if features.shape[0] < min_rows:
        raise DataError(f"{what} needs at least {min_rows} rows, got {features.shape[0]}")
    matrix = features.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(matrix).all():
        raise DataError(f"{what} holds NaN or infinite values")
    return matrix


def feature_pair(
    real: torch.Tensor, synthetic: torch.Tensor, min_rows: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature sets checked as by :func:`feature_matrix`, with the same width."""
    real_matrix = feature_matrix(real, "real features", min_rows)
    synthetic_matrix = feature_matrix(synthetic, "synthetic features", min_rows)
    if real_matrix.shape[1] != synthetic_matrix.shape[1]:
        raise DataError(
            f"real and synthetic features differ in width: "
            f"{real_matrix.shape[1]} and {synthetic_matrix.shape[1]}"
        )
    return real_matrix, synthetic_matrix
