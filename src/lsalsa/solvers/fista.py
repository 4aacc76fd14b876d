"""FISTA: ISTA with Nesterov momentum (Beck & Teboulle), the paper's first-order baseline."""
from __future__ import annotations

import math
from typing import Any

import torch

from ..problem import LassoProblem
from ._common import Callback, SolverResult, check_check_every, check_run_args, converged, relative_change, row_blocks
from .ista import ista_operators


def fista(
    problem: LassoProblem,
    Y: Any,
    n_iter: int | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    callback: Callback | None = None,
    check_every: int | None = None,
) -> SolverResult:
    """Solve the lasso (Eq. 4/6) for every row of ``Y: (B, M)`` by FISTA, starting at ``x = 0``.

    Each iteration is one ISTA step (:func:`ista_step`) taken from the extrapolated point
    ``z = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1})``. Same keywords and result as :func:`ista`;
    ``check_every`` tests the stopping rule only every this many iterations (see
    :func:`lsalsa.salsa`).
    """
    Y, iters, truncated, tol = check_run_args(problem, Y, n_iter, tol, max_iter)
    check_every = check_check_every(check_every)
    with torch.no_grad():
        W_e, S, theta = ista_operators(problem)
        # The Gram form: A^T A / L (inside S) and A^T y / L (b) are formed once, so an
        # iteration is one (B, N) x (N, N) GEMM whatever M is. Rows are independent: without a
        # callback they run in cache-sized blocks (see row_blocks), each to its own stop.
        b = Y @ W_e.T
        blocks = row_blocks(b) if callback is None else [slice(None)]
        runs = [_fista_loop(b[r], S.T, theta, iters, truncated, tol, callback, check_every) for r in blocks]
        X, k, change = torch.cat([x for x, _, _ in runs]), max(k for _, k, _ in runs), max(c for _, _, c in runs)
        ok, kkt = converged("fista", problem, Y, X, tol, iters, truncated)
    return SolverResult(X, k, ok, change, kkt=kkt)


def _fista_loop(
    b: torch.Tensor,
    St: torch.Tensor,
    theta: torch.Tensor | float,
    iters: int,
    truncated: bool,
    tol: float,
    callback: Callback | None,
    check_every: int,
) -> tuple[torch.Tensor, int, float]:
    """FISTA's iterations on three preallocated (B, N) buffers; returns ``(X, k, change)``."""
    if isinstance(theta, torch.Tensor):
        lo, hi = -theta, theta
    else:
        lo, hi = -float(theta), float(theta)
    # x_k, x_{k-1} (overwritten by x_{k+1}) and z; ``tmp`` holds clamp(v) for the
    # soft-threshold ``v - clamp(v)`` and differences.
    X = torch.zeros_like(b)
    X_new = torch.empty_like(b)
    Z = torch.zeros_like(b)
    tmp = torch.empty_like(b)
    t = 1.0
    change, k = math.inf, 0
    for k in range(1, iters + 1):
        if k == 1:
            X_new.copy_(b)  # z = 0: the product vanishes
        else:
            torch.addmm(b, Z, St, out=X_new)
        X_new.sub_(torch.clamp(X_new, lo, hi, out=tmp))
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        torch.lerp(X_new, X, -(t - 1.0) / t_new, out=Z)  # X_new + beta (X_new - X)
        if k == iters or (not truncated and k % check_every == 0):
            change = relative_change(X_new, X, out=tmp)
        X, X_new, t = X_new, X, t_new
        # a copy: X is a buffer the next iterations overwrite, and callbacks may keep it
        if callback is not None and callback(k, X.clone()):
            break
        if not truncated and change < tol:
            break
    return X, k, change

