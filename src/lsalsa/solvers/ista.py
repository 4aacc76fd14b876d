"""ISTA: proximal gradient descent on the lasso (Daubechies et al.; LISTA's parent, Eq. 35)."""
from __future__ import annotations

from typing import Any

import torch

from ..prox import soft_threshold
from ..problem import LassoProblem
from .iteration import filtered_input
from ._common import Callback, SolverResult, check_run_args, converged, prox_threshold, relative_change


def ista_operators(problem: LassoProblem) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float]:
    """The ISTA iteration written as LISTA's layer (Eq. 35): ``x <- soft(W_e y + S x; theta)``.

    Returns ``W_e = A^T / L: (N, M)``, ``S = I - A^T A / L: (N, N)`` and ``theta = alpha / L``
    (a float, or an (N,) tensor when the dictionaries have different alphas), with
    ``L = ||A||_2^2``.
    """
    L = problem.lipschitz
    W_e = problem.A.T / L
    S = -problem.gram / L
    S.diagonal().add_(1.0)
    return W_e, S, prox_threshold(problem, L)


def ista_step(
    X: torch.Tensor,
    b: torch.Tensor,
    S: torch.Tensor,
    theta: torch.Tensor | float,
    out: torch.Tensor | None = None,
    *,
    step: torch.Tensor | None = None,
) -> torch.Tensor:
    """One ISTA / LISTA layer: ``soft(b + X S^T; theta)``.

    X: (B, N) current codes; b: (B, N) the filtered input ``Y W_e^T``; S: (N, N); out: None, or a
    (B, N) buffer for ``b + X S^T`` (the result is a fresh tensor either way). When ``S`` has a
    lower precision than ``X`` (e.g. bfloat16 products), the product runs in ``S``'s dtype.
    step: None, or a 0-d tensor ``gamma`` (LISTA's ``learn_step``): the layer is then
    ``soft(lerp(X, b + X S^T, gamma); theta)``, ISTA with step ``gamma / L`` when ``theta`` is
    ``gamma`` times ``alpha / L`` (the caller's); ``lerp`` with weight 1 returns its end exactly.
    """
    if S.dtype == X.dtype:
        Z = torch.addmm(b, X, S.T, out=out)
    else:
        Z = torch.add(b, torch.mm(X.to(S.dtype), S.T), out=out)
    return soft_threshold(Z if step is None else torch.lerp(X, Z, step, out=out), theta)


def ista(
    problem: LassoProblem,
    Y: Any,
    n_iter: int | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    callback: Callback | None = None,
) -> SolverResult:
    """Solve the lasso (Eq. 4/6) for every row of ``Y: (B, M)`` by ISTA, starting at ``x = 0``.

    With ``n_iter=T`` exactly T iterations (T soft-thresholdings) are run, which is what an
    untrained ``LISTA`` with T layers computes. Without it, iterate until the relative change of
    x is below ``tol`` or ``max_iter`` is reached. ``callback(k, X)`` is called after iteration
    k; returning True stops the run. Returns a :class:`SolverResult` with ``X: (B, N)``, whose
    ``converged`` is the KKT test of the codes at the end (a warning when it fails).
    """
    Y, iters, truncated, tol = check_run_args(problem, Y, n_iter, tol, max_iter)
    with torch.no_grad():
        W_e, S, theta = ista_operators(problem)
        b = filtered_input(Y, W_e.contiguous())  # as LISTA computes it, bit for bit
        X = torch.zeros_like(b)
        change, k = float("inf"), 0
        for k in range(1, iters + 1):
            X_new = ista_step(X, b, S, theta)
            if not truncated or k == iters:
                change = relative_change(X_new, X)
            X = X_new
            if callback is not None and callback(k, X):
                break
            if not truncated and change < tol:
                break
        ok, kkt = converged("ista", problem, Y, X, tol, iters, truncated)
    return SolverResult(X, k, ok, change, kkt=kkt)
