"""FISTA: ISTA with Nesterov momentum (Beck & Teboulle), the paper's first-order baseline."""
from __future__ import annotations

import math
from typing import Any

import torch

from ..problem import LassoProblem
from ._common import Callback, SolverResult, check_run_args, relative_change
from .ista import ista_operators, ista_step


def fista(
    problem: LassoProblem,
    Y: Any,
    n_iter: int | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    callback: Callback | None = None,
) -> SolverResult:
    """Solve the lasso (Eq. 4/6) for every row of ``Y: (B, M)`` by FISTA, starting at ``x = 0``.

    Each iteration is one ISTA step (:func:`ista_step`) taken from the extrapolated point
    ``z = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1})``. Same keywords and result as :func:`ista`.
    """
    Y, iters, truncated, tol = check_run_args(problem, Y, n_iter, tol, max_iter)
    with torch.no_grad():
        W_e, S, theta = ista_operators(problem)
        B = Y @ W_e.T
        X = torch.zeros_like(B)
        Z = X
        t = 1.0
        change, k = float("inf"), 0
        for k in range(1, iters + 1):
            X_new = ista_step(Z, B, S, theta)
            t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            Z = torch.lerp(X_new, X, -(t - 1.0) / t_new)  # X_new + beta (X_new - X)
            if not truncated or k == iters:
                change = relative_change(X_new, X)
            X, t = X_new, t_new
            if callback is not None and callback(k, X):
                break
            if not truncated and change < tol:
                break
    return SolverResult(X, k, change < tol, change)
