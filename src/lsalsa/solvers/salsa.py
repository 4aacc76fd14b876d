"""SALSA: the ADMM of Algorithms 1 and 2, for one dictionary or several (MCA)."""
from __future__ import annotations

from typing import Any

import torch

from .._validation import check_positive
from ..linalg import splitting_operator
from ..prox import soft_threshold
from ..problem import LassoProblem
from ._common import Callback, SolverResult, check_run_args, prox_threshold, relative_change

DEFAULT_MU = 1.0


def salsa_operators(
    problem: LassoProblem, mu: float, method: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float]:
    """SALSA's matrices in LSALSA's parametrisation (Eq. 14).

    Returns ``W_e = A^T: (N, M)``, the splitting operator ``S = (mu I + A^T A)^{-1}: (N, N)``
    (Cholesky of the smaller Gram system, see :func:`lsalsa.linalg.splitting_operator`) and the
    per-coordinate thresholds ``alpha_i / mu`` (a float when all alphas are equal).
    """
    mu = check_positive(mu, "mu")
    return problem.A.T, splitting_operator(problem.A, mu, method), prox_threshold(problem, mu)


def salsa_step(
    X: torch.Tensor,
    D: torch.Tensor,
    B: torch.Tensor,
    S: torch.Tensor,
    mu: float,
    threshold: torch.Tensor | float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SALSA iteration / LSALSA layer (Alg. 2 lines 4-6, Alg. 4 loop body).

    ``u = soft(x + d; alpha/mu)``, ``x = S (W_e y + mu (u - d))``, ``d = d - u + x``.

    X, D: (B, N) current iterates; B: (B, N) the filtered input ``Y W_e^T``; S: (N, N).
    Returns the new ``(X, D)``.
    """
    # W = u - d carries both updates: x = S (b + mu W) and d - u + x = x - W; five passes over
    # (B, N) plus one GEMM instead of seven.
    W = soft_threshold(X + D, threshold) - D
    X_new = torch.add(B, W, alpha=mu) @ S.T
    return X_new, X_new - W


def salsa_readout(X: torch.Tensor, D: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """The sparse code after T iterations: ``u = soft(x_T + d_T; alpha/mu)``.

    Algorithms 3/4 print ``soft(x_T)``; but at the ADMM fixed point ``x = u`` is already the
    lasso solution, so shrinking x again would bias it by alpha/mu and truncated SALSA could never
    reach the optimal codes. ``u``, the ADMM's sparse variable, is the one that converges to them.
    """
    return soft_threshold(X + D, threshold)


def salsa(
    problem: LassoProblem,
    Y: Any,
    mu: float = DEFAULT_MU,
    n_iter: int | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    callback: Callback | None = None,
    method: str = "auto",
) -> SolverResult:
    """Solve the lasso (Eq. 4/6) for every row of ``Y: (B, M)`` by SALSA (Alg. 1/2).

    Starts at ``x = A^T y, d = 0``; returns ``u = soft(x_T + d_T; alpha_i / mu)`` (see
    :func:`salsa_readout`), which is what an untrained ``LSALSA`` with T layers computes.

    Parameters
    ----------
    mu : the ADMM penalty (> 0). The paper uses 10; smaller values often converge in fewer
        iterations on normalised dictionaries.
    n_iter : run exactly this many iterations (``tol`` and ``max_iter`` are then ignored).
    tol, max_iter : otherwise stop when the relative change of x is below ``tol``.
    callback : ``callback(k, U)`` after iteration k with the current code; True stops the run.
    method : how ``S`` is factored: "auto", "direct" or "woodbury".
    """
    Y, iters, truncated, tol = check_run_args(problem, Y, n_iter, tol, max_iter)
    with torch.no_grad():
        W_e, S, threshold = salsa_operators(problem, mu, method)
        B = Y @ W_e.T
        X, D = B, torch.zeros_like(B)
        change, k = float("inf"), 0
        for k in range(1, iters + 1):
            X_new, D = salsa_step(X, D, B, S, mu, threshold)
            if not truncated or k == iters:
                change = relative_change(X_new, X)
            X = X_new
            if callback is not None and callback(k, salsa_readout(X, D, threshold)):
                break
            if not truncated and change < tol:
                break
        U = salsa_readout(X, D, threshold)
    return SolverResult(U, k, change < tol, change)
