"""Soft-thresholding: the proximity operator of a (per-coordinate weighted) l1 norm (Eq. 12, 31-34)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_threshold(Z: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """Element-wise ``soft(z; t) = sign(z) max(|z| - t, 0)``.

    Parameters
    ----------
    Z : (B, N) tensor
    threshold : float, or (N,) tensor of per-coordinate thresholds (>= 0), one value per atom.
        A scalar takes the fused ``F.softshrink`` path; a vector is applied as
        ``z - clamp(z, -t, t)``, two memory passes and differentiable in ``t``.

    Returns
    -------
    (B, N) tensor of the same dtype and device as ``Z``.
    """
    if isinstance(threshold, torch.Tensor):
        return Z - torch.clamp(Z, -threshold, threshold)
    return F.softshrink(Z, float(threshold))
