"""Measures of code quality used to compare encoders and solvers."""
from __future__ import annotations

from typing import Any

import torch

from ._validation import as_tensor
from .errors import LsalsaError


def code_rmse(X: Any, X_star: Any) -> float:
    """Root-mean-square error of codes against the optimal codes (the paper's Section 6 metric).

    ``sqrt(mean over all B * N entries of (X - X_star)^2)``: one number for a batch, averaged
    over signals *and* atoms, so it does not grow with the code length N.

    Parameters
    ----------
    X, X_star : (B, N) tensors or arrays, the estimated and the optimal codes (same shape; X is
        converted to X_star's dtype and device).

    Returns
    -------
    float
    """
    X, X_star = as_tensor(X, "X"), as_tensor(X_star, "X_star")
    if X.shape != X_star.shape or X.ndim != 2:
        raise LsalsaError(
            f"X, X_star: expected two (B, N) arrays of one shape, got {tuple(X.shape)} and {tuple(X_star.shape)}"
        )
    if not (X.is_floating_point() and X_star.is_floating_point()):
        raise LsalsaError(f"X, X_star: expected floating-point codes, got {X.dtype} and {X_star.dtype}")
    if X.numel() == 0:
        raise LsalsaError("X: expected at least one entry, got an empty array")
    diff = X.detach().to(dtype=X_star.dtype, device=X_star.device) - X_star.detach()
    return float(torch.sqrt(torch.mean(diff * diff)))
