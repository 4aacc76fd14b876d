"""SALSA: the ADMM of Algorithms 1 and 2, for one dictionary or several (MCA): its operators and
the driver. The iteration is :mod:`lsalsa.solvers.iteration`, the run to convergence
:mod:`lsalsa.solvers.loops`, the polish :mod:`lsalsa.solvers.polish`, ``mu="auto"``
:mod:`lsalsa.solvers.penalty`."""
from __future__ import annotations

import math
from typing import Any

import torch

from .._validation import check_positive
from ..errors import LsalsaError
from ..kkt import certify
from ..linalg import factor_splitting_operator
from ..problem import LassoProblem
from ._common import Callback, SolverResult, check_check_every, check_run_args, converged, prox_threshold, row_blocks
from .iteration import filtered_input, unrolled_salsa
from .loops import SalsaState, run_to_convergence
from .penalty import resolve_mu
from .polish import make_polisher, resolve_polish

DEFAULT_MU = 1.0
"""The encoders' default penalty (``salsa`` itself defaults to ``mu="auto"``). The paper's
experiments fix ``mu = 10``; pass it explicitly."""
CONVERGENT_RELAXATION = 1.8
"""The over-relaxation :func:`salsa` uses by default when it runs to convergence."""


def salsa_operators(
    problem: LassoProblem, mu: float, method: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float]:
    """SALSA's matrices in LSALSA's parametrisation (Eq. 14).

    Returns ``W_e = A^T: (N, M)``, the splitting operator ``S = (mu I + A^T A)^{-1}: (N, N)``
    (Cholesky of the smaller Gram system, see :func:`lsalsa.linalg.splitting_operator`) and the
    per-coordinate thresholds ``alpha_i / mu`` (a float when all alphas are equal).
    """
    if not isinstance(problem, LassoProblem):
        raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
    return operators(problem, check_positive(mu, "mu"), method)


def operators(problem: LassoProblem, mu: float, method: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float]:
    """:func:`salsa_operators` of a checked problem and mu (the library's own calls)."""
    return problem.A.T, factor_splitting_operator(problem.A, mu, method), prox_threshold(problem, mu)


def salsa(
    problem: LassoProblem,
    Y: Any,
    mu: float | str = "auto",
    n_iter: int | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    callback: Callback | None = None,
    method: str = "auto",
    relaxation: float | None = None,
    check_every: int | None = None,
    polish: bool | None = None,
) -> SolverResult:
    """Solve the lasso (Eq. 4/6) for every row of ``Y: (B, M)`` by SALSA (Alg. 1/2).

    With ``n_iter`` it starts at ``x = A^T y, d = 0`` and returns ``u = soft(x_T + d_T;
    alpha_i / mu)`` (see :func:`lsalsa.solvers.salsa_readout`), which is what an untrained
    ``LSALSA`` with T layers computes, by the same function. Run to convergence it starts at
    ``x = S A^T y``, the x-update from ``u = d = 0``.

    Parameters
    ----------
    mu : the ADMM penalty (> 0), or "auto" (default): :func:`lsalsa.solvers.auto_mu`, the best
        of a short trial run on a few rows of ``Y``. A number gives the paper's iteration with
        that fixed mu (the paper uses 10; :data:`DEFAULT_MU` is 1).
    n_iter : run exactly this many iterations (``tol`` and ``max_iter`` are then ignored).
    tol, max_iter : otherwise stop when the relative change of x is below ``tol``. The objective
        gap is roughly quadratic in the code's error, the rule linear (which tol gives which gap
        on real data: ``benchmarks/README.md``).
    callback : ``callback(k, U)`` after iteration k with the current code; True stops the run.
    method : how ``S`` is factored: "auto", "direct" or "woodbury".
    relaxation : the ADMM relaxation ``rho`` in (0, 2) (Eckstein & Bertsekas 1992; Boyd et al.
        2011, section 3.4.3), applied to the sparse variable, ``u <- rho u + (1 - rho) x_{k-1}``.
        1 is SALSA as printed, the iteration LSALSA unrolls; over-relaxation needs fewer
        iterations to converge. None (default): 1.8 when running to convergence, 1 with
        ``n_iter``, so that ``salsa(n_iter=T)`` stays equal to an untrained ``LSALSA(T)``.
    check_every : test the stopping rule every this many iterations, so the reported ``n_iter``
        is a multiple of it (or ``max_iter``); a test costs a few passes over ``(B, N)`` and, on
        a GPU, a device synchronisation. None (default): 10.
    polish : at each check, try the exact solution on each row's current support and signs
        (:func:`lsalsa.solvers.solve_on_support`) and keep it where it passes the lasso's KKT
        conditions: those rows are then optimal to rounding and stop iterating. Which rows are
        tried, and the default rule (None: on a CPU up to 256 atoms, or from 512 atoms on):
        :mod:`lsalsa.solvers.polish`. Not allowed with ``n_iter``. The first polished call on a
        CPU in a process loads the compiled loop (numba).

    When running to convergence each row stops on its own, at the first check where its
    relative change is below ``tol`` or its polished code is certified; the rows still running
    go on in a smaller batch.

    Returns
    -------
    SolverResult with ``X: (B, N)``; ``n_iter`` is the iterations of the longest-running row,
    ``change`` the largest last relative change of a row (0 for a polished row); ``converged``
    the KKT test of the codes at the end (:class:`SolverResult`; a warning when it fails, none
    and False with ``n_iter``).
    """
    Y, iters, truncated, tol = check_run_args(problem, Y, n_iter, tol, max_iter)
    relaxation = (1.0 if truncated else CONVERGENT_RELAXATION) if relaxation is None else _check_relaxation(relaxation)
    check_every = check_check_every(check_every)
    polish = resolve_polish(polish, truncated, problem.n_atoms, Y.device)
    with torch.no_grad():
        mu = resolve_mu(problem, mu, Y)
        A_T, S, threshold = operators(problem, mu, method)
        settings = {"mu": mu, "relaxation": relaxation, "polish": polish}
        if truncated:
            U, k, change = _truncated(filtered_input(Y, A_T.contiguous()), S, mu, threshold, iters, relaxation, callback)
            return SolverResult(U, k, False, change, settings)
        SAty = Y @ (problem.A @ S.T)  # S A^T y: the x-update's constant term and the start, one product with Y
        AtY = Y @ problem.A if polish else None  # for the support solve only
        runs = []
        for r in _blocks(SAty, callback):
            polisher = make_polisher(problem, AtY[r], threshold) if polish else None
            Y_r = Y[r]
            runs.append(run_to_convergence(SalsaState(SAty[r], S, mu, threshold, relaxation), tol=tol,
                                           max_iter=iters, check_every=check_every, polisher=polisher,
                                           certify=lambda i, X, Y_r=Y_r: certify(problem.A, Y_r[i], X, problem.thresholds, tol)["ok"],
                                           callback=callback))
        U, k, changes = torch.cat([u for u, _, _ in runs]), max(k for _, k, _ in runs), torch.cat([c for _, _, c in runs])
        ok, kkt = converged("salsa", problem, Y, U, tol, iters, truncated)
    change = float(changes.max()) if changes.numel() else 0.0
    return SolverResult(U, k, ok, change, settings, kkt)


def _truncated(AtY: torch.Tensor, S: torch.Tensor, mu: float, threshold: torch.Tensor | float, iters: int,
               relaxation: float, callback: Callback | None) -> tuple[torch.Tensor, int, float]:
    """``iters`` iterations of :func:`~lsalsa.solvers.iteration.unrolled_salsa`, in row blocks;
    returns ``(U, k, the largest last relative change)``."""
    runs = [unrolled_salsa(AtY[r], S, mu, threshold, iters, half_rho=relaxation / 2, inplace=True,
                           callback=callback, change=True) for r in _blocks(AtY, callback)]
    U, k = torch.cat([u for u, _, _ in runs]), max(k for _, k, _ in runs)
    change = max(float(c.max()) if c is not None and c.numel() else math.inf for _, _, c in runs)
    return U, k, change


def _blocks(iterate: torch.Tensor, callback: Callback | None) -> list[slice]:
    """Rows are independent: without a callback (which sees the whole batch) they run in
    cache-sized blocks of the ``(B, N)`` iterates, one after the other."""
    return row_blocks(iterate) if callback is None else [slice(None)]


def _check_relaxation(relaxation: Any) -> float:
    try:
        r = float(relaxation)
    except (TypeError, ValueError) as exc:
        raise LsalsaError(f"relaxation: expected a number in (0, 2), got {relaxation!r}") from exc
    if not 0.0 < r < 2.0:
        raise LsalsaError(f"relaxation: expected a number in (0, 2), got {relaxation!r}")
    return r
