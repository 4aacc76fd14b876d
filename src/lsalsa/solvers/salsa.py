"""SALSA: the ADMM of Algorithms 1 and 2, for one dictionary or several (MCA): its operators and
the driver. The iteration is :mod:`lsalsa.solvers.iteration`, the run to convergence
:mod:`lsalsa.solvers.loops`, the polish :mod:`lsalsa.solvers.polish`, ``mu="auto"``
:mod:`lsalsa.solvers.penalty`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._validation import check_positive
from ..errors import LsalsaError
from ..linalg import factor_splitting_operator
from ..problem import LassoProblem
from ._common import (Callback, SolverResult, check_check_every, check_prepared, check_run_args, converged,
                      prox_threshold, row_blocks, row_certifier)
from .iteration import filtered_input, unrolled_salsa
from .loops import SalsaState, run_blocks
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


@dataclass(frozen=True, eq=False)
class SalsaOperators:
    """SALSA's operators of one dictionary and penalty, prepared once and passed to every call
    (``salsa(problem, Y, mu=mu, n_iter=T, operators=ops)``) instead of factoring ``S`` again in
    each (at M = 1024, N = 2048 that is most of a truncated call's time). Made by :meth:`of`
    (or :func:`lsalsa.prepare_solver`). They do not depend on alpha: one serves every alpha.

    An explicit object rather than a cache on the problem: it holds its ``S`` (N, N) only while
    the caller keeps it (a search over mu keeps none of the others), every call checks it
    against its problem (dictionary, dtype, device, mu; an edit of ``A`` in place too) and
    refuses a stale one with :class:`LsalsaError`, and the problems a caller derives
    (``with_alphas``, ``to``) share it without any hidden state.

    Attributes
    ----------
    mu : the penalty (> 0).
    method : how ``S`` was factored ("auto", "direct" or "woodbury").
    dictionary : (M, N) a copy of the ``A`` they were made from; a call checks that its
        problem's ``A`` still equals it exactly (dtype and device included).
    A_T : (N, M) ``A^T``, contiguous (the encoders' ``W_e``), for the product ``A^T y``.
    S : (N, N) ``(mu I + A^T A)^{-1}``.
    """

    mu: float
    method: str
    dictionary: torch.Tensor
    A_T: torch.Tensor
    S: torch.Tensor

    @classmethod
    def of(cls, problem: LassoProblem, mu: float, method: str = "auto") -> "SalsaOperators":
        """The operators of ``problem``'s dictionary at penalty ``mu``; ``method`` factors ``S``
        (see :func:`salsa`)."""
        if not isinstance(problem, LassoProblem):
            raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
        return cls._of(problem, check_positive(mu, "mu"), method, problem.A.clone())

    @classmethod
    def _of(cls, problem: LassoProblem, mu: float, method: str, dictionary: torch.Tensor) -> "SalsaOperators":
        with torch.no_grad():
            return cls(mu, method, dictionary, problem.A.T.contiguous(), factor_splitting_operator(problem.A, mu, method))

    @classmethod
    def checked(cls, problem: LassoProblem, Y: torch.Tensor, mu: Any, method: str, operators: Any) -> "SalsaOperators":
        """``operators`` when they are ``problem``'s at ``mu`` and ``method`` ("auto" accepts
        theirs), :class:`LsalsaError` otherwise; None: made for this call at ``mu`` ("auto": the
        trial on ``Y``; no copy of ``A`` kept)."""
        if operators is None:
            return cls._of(problem, resolve_mu(problem, mu, Y), method, problem.A)
        check_prepared(operators, cls, problem)
        if isinstance(mu, str):
            raise LsalsaError(f"mu: with prepared operators pass the mu they were made for ({operators.mu:g}), "
                              f"not {mu!r}")
        if check_positive(mu, "mu") != operators.mu:
            raise LsalsaError(f"mu: the operators were prepared for mu={operators.mu:g}, got mu={mu:g}; prepare "
                              f"them for this mu")
        if method not in ("auto", operators.method):
            raise LsalsaError(f"method: the operators' S was factored by {operators.method!r}, got {method!r}")
        return operators


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
    operators: SalsaOperators | None = None,
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
    operators : :class:`SalsaOperators` of the problem's dictionary at this ``mu`` (a number),
        prepared once for repeated calls; None: ``S`` is factored in this call. The codes are
        the same bit for bit.

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
        ops = SalsaOperators.checked(problem, Y, mu, method, operators)
        mu, S, threshold = ops.mu, ops.S, prox_threshold(problem, ops.mu)
        settings = {"mu": mu, "relaxation": relaxation, "polish": polish}
        if truncated:
            U, k, change = _truncated(filtered_input(Y, ops.A_T), S, mu, threshold, iters, relaxation, callback)
            return SolverResult(U, k, False, change, settings)
        SAty = Y @ (problem.A @ S.T)  # S A^T y: the x-update's constant term and the start, one product with Y
        AtY = Y @ problem.A if polish else None  # for the support solve only
        blocks = ((SalsaState(SAty[r], S, mu, threshold, relaxation), row_certifier(problem, Y[r], tol),
                   make_polisher(problem, AtY[r], threshold) if polish else None) for r in _blocks(SAty, callback))
        U, k, change = run_blocks(blocks, n_iter=iters, truncated=False, tol=tol, check_every=check_every,
                                  callback=callback)
        ok, kkt = converged("salsa", problem, Y, U, tol, iters, truncated)
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
