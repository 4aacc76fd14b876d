"""ISTA: proximal gradient descent on the lasso (Daubechies et al.; LISTA's parent, Eq. 35)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import LsalsaError
from ..prox import soft_threshold
from ..problem import LassoProblem
from .iteration import filtered_input
from ._common import (Callback, SolverResult, check_check_every, check_prepared, check_run_args, converged,
                      prox_threshold, row_certifier, row_change)
from .loops import run_blocks


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


@dataclass(frozen=True, eq=False)
class IstaOperators:
    """ISTA's and FISTA's operators of one dictionary, prepared once and passed to every call
    (``ista(..., operators=ops)``, ``fista(..., operators=ops)``) instead of being formed again
    (the Gram matrix and ``L``, ``I - A^T A / L``). Made by :meth:`of` (or
    :func:`lsalsa.prepare_solver`); they do not depend on alpha, so one serves every alpha.

    Attributes
    ----------
    dictionary : (M, N) a copy of the ``A`` they were made from; a call checks that its
        problem's ``A`` still equals it exactly (dtype and device included).
    W_e : (N, M) ``A^T / L``, contiguous (as LISTA holds it).
    S : (N, N) ``I - A^T A / L``.
    lipschitz : ``L = ||A||_2^2``.
    """

    dictionary: torch.Tensor
    W_e: torch.Tensor
    S: torch.Tensor
    lipschitz: float

    @classmethod
    def of(cls, problem: LassoProblem) -> "IstaOperators":
        """The operators of ``problem``'s dictionary (:func:`ista_operators`)."""
        if not isinstance(problem, LassoProblem):
            raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
        return cls._of(problem, problem.A.clone())

    @classmethod
    def _of(cls, problem: LassoProblem, dictionary: torch.Tensor) -> "IstaOperators":
        with torch.no_grad():
            W_e, S, _ = ista_operators(problem)
            return cls(dictionary, W_e.contiguous(), S, problem.lipschitz)

    @classmethod
    def checked(cls, problem: LassoProblem, operators: Any) -> "IstaOperators":
        """``operators`` when they were made from ``problem``'s dictionary (:class:`LsalsaError`
        otherwise); None: made for this call (no copy of ``A`` kept)."""
        if operators is None:
            return cls._of(problem, problem.A)
        check_prepared(operators, cls, problem)
        return operators


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
    check_every: int | None = None,
    operators: IstaOperators | None = None,
) -> SolverResult:
    """Solve the lasso (Eq. 4/6) for every row of ``Y: (B, M)`` by ISTA, starting at ``x = 0``.

    With ``n_iter=T`` exactly T iterations (T soft-thresholdings) are run, which is what an
    untrained ``LISTA`` with T layers computes. Without it, iterate until every row's relative
    change of x is below ``tol`` and every row's codes pass the KKT test
    (:func:`lsalsa.kkt.certify`), or ``max_iter`` is reached; the rule is tested every
    ``check_every`` iterations (None: 10), so ``n_iter`` is a multiple of it or ``max_iter``. ``callback(k, X)`` is called after iteration
    k; returning True stops the run. ``operators``: :class:`IstaOperators` of the problem's
    dictionary, prepared once for repeated calls (None: formed in this call). Returns a
    :class:`SolverResult` with ``X: (B, N)``, whose ``converged`` is the KKT test of the codes at
    the end (a warning when it fails).
    """
    Y, iters, truncated, tol = check_run_args(problem, Y, n_iter, tol, max_iter)
    check_every = check_check_every(check_every)
    with torch.no_grad():
        ops = IstaOperators.checked(problem, operators)
        b = filtered_input(Y, ops.W_e)  # as LISTA computes it, bit for bit
        state = IstaState(b, ops.S, prox_threshold(problem, ops.lipschitz))
        X, k, change = run_blocks([(state, row_certifier(problem, Y, tol), None)], n_iter=iters,
                                  truncated=truncated, tol=tol, check_every=check_every, callback=callback, together=True)
        ok, kkt = converged("ista", problem, Y, X, tol, iters, truncated)
    return SolverResult(X, k, ok, change, kkt=kkt)


class IstaState:
    """ISTA's iterate ``X: (B, N)`` (from 0), run by the loops of :mod:`lsalsa.solvers.loops`; each
    :meth:`step` is one :func:`ista_step` into a fresh tensor, as LISTA's layers compute it.

    b : (B, N) ``Y W_e^T``; S : (N, N) ``I - A^T A / L``; theta : ``alpha / L``.
    """

    def __init__(self, b: torch.Tensor, S: torch.Tensor, theta: torch.Tensor | float):
        self.b, self.S, self.theta = b, S, theta
        self.X = self.X_prev = torch.zeros_like(b)

    def empty(self) -> torch.Tensor:
        return torch.empty_like(self.X)

    def step(self) -> None:
        self.X = ista_step(self.X, self.b, self.S, self.theta)

    def save_x(self) -> None:
        """Keep the current iterate (steps never overwrite it) for :meth:`row_change`."""
        self.X_prev = self.X

    def row_change(self) -> torch.Tensor:
        """Each row's relative change since the last :meth:`save_x`, ``(B,)``."""
        return row_change(self.X, self.X_prev)

    def readout(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The codes (of ``rows`` only if given)."""
        return self.X if rows is None else self.X[rows]

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every row but ``rows`` (indices into the current batch)."""
        self.b, self.X = self.b[rows], self.X[rows]
        self.X_prev = self.X
