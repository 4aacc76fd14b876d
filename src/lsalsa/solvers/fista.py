"""FISTA: ISTA with Nesterov momentum (Beck & Teboulle), the paper's first-order baseline."""
from __future__ import annotations

import math
from typing import Any

import torch

from ..problem import LassoProblem
from ._common import (Callback, SolverResult, check_check_every, check_run_args, converged, prox_threshold,
                      row_blocks, row_certifier, row_change)
from .ista import IstaOperators
from .iteration import filtered_input
from .loops import run_blocks


def fista(
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
    """Solve the lasso (Eq. 4/6) for every row of ``Y: (B, M)`` by FISTA, starting at ``x = 0``.

    Each iteration is one ISTA step (:func:`ista_step`) taken from the extrapolated point
    ``z = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1})``. Same keywords and result as :func:`ista`
    (the rows of a block stop together, at the first check where every row's relative change is
    below ``tol`` and every row's codes pass the KKT test);
    ``check_every`` tests the stopping rule only every this many iterations (see
    :func:`lsalsa.salsa`); ``operators``: ISTA's :class:`IstaOperators`, prepared once.
    """
    Y, iters, truncated, tol = check_run_args(problem, Y, n_iter, tol, max_iter)
    check_every = check_check_every(check_every)
    with torch.no_grad():
        ops = IstaOperators.checked(problem, operators)
        # The Gram form: A^T A / L (inside S) and A^T y / L (b) are formed once, so an
        # iteration is one (B, N) x (N, N) GEMM whatever M is. Rows are independent: without a
        # callback they run in cache-sized blocks (see row_blocks), each to its own stop.
        b, St, theta = filtered_input(Y, ops.W_e), ops.S.T, prox_threshold(problem, ops.lipschitz)
        blocks = row_blocks(b) if callback is None else [slice(None)]
        X, k, change = run_blocks(((FistaState(b[r], St, theta), row_certifier(problem, Y[r], tol), None)
                                   for r in blocks), n_iter=iters, truncated=truncated, tol=tol,
                                  check_every=check_every, callback=callback, together=True)
        ok, kkt = converged("fista", problem, Y, X, tol, iters, truncated)
    return SolverResult(X, k, ok, change, kkt=kkt)


class FistaState:
    """FISTA's iterates on preallocated ``(B, N)`` buffers, run by the loops of
    :mod:`lsalsa.solvers.loops`: ``x_k``, ``x_{k-1}`` (overwritten by ``x_{k+1}``), the
    extrapolated ``z``, and ``tmp`` for ``clamp(v)`` (the soft-threshold ``v - clamp(v)``) and
    differences. The momentum ``t_k`` is one scalar for all rows, so rows can leave.

    b : (B, N) ``Y W_e^T = A^T y / L``; St : (N, N) ``S^T = (I - A^T A / L)^T``; theta : ``alpha / L``.
    """

    def __init__(self, b: torch.Tensor, St: torch.Tensor, theta: torch.Tensor | float):
        self.St = St
        self.lo, self.hi = (-theta, theta) if isinstance(theta, torch.Tensor) else (-float(theta), float(theta))
        self.t, self.first = 1.0, True
        self._rows(b, torch.zeros_like(b), torch.empty_like(b), torch.zeros_like(b))

    def _rows(self, b: torch.Tensor, X: torch.Tensor, X_prev: torch.Tensor, Z: torch.Tensor) -> None:
        self.b, self.X, self.X_prev, self.Z = b, X, X_prev, Z
        self.tmp = torch.empty_like(b)

    def empty(self) -> torch.Tensor:
        return torch.empty_like(self.X)

    def step(self) -> None:
        X_new = self.X_prev  # x_{k-1}'s buffer receives x_{k+1}
        if self.first:
            X_new.copy_(self.b)  # z = 0: the product vanishes
            self.first = False
        else:
            torch.addmm(self.b, self.Z, self.St, out=X_new)
        X_new.sub_(torch.clamp(X_new, self.lo, self.hi, out=self.tmp))
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * self.t * self.t))
        torch.lerp(X_new, self.X, -(self.t - 1.0) / t_new, out=self.Z)  # X_new + beta (X_new - X)
        self.X, self.X_prev, self.t = X_new, self.X, t_new

    def save_x(self) -> None:
        """Nothing to keep: :meth:`step` leaves the previous iterate in ``X_prev``."""

    def row_change(self) -> torch.Tensor:
        """Each row's relative change in the last iteration, ``(B,)``."""
        return row_change(self.X, self.X_prev, out=self.tmp)

    def readout(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The codes ``x_k`` (of ``rows`` only if given); a buffer the next step overwrites."""
        return self.X if rows is None else self.X[rows]

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every row but ``rows`` (indices into the current batch)."""
        self._rows(self.b[rows], self.X[rows], self.X_prev[rows], self.Z[rows])
