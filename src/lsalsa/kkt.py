"""The lasso's optimality (KKT) conditions: how far a code is from them, and what tolerance a
certificate of optimality allows in floating point.

With ``c = A^T y`` and ``g = A^T (y - A x) = c - G x`` (``G = A^T A``), x minimises
``1/2 ||y - A x||^2 + sum_j alpha_j |x_j|`` iff ``g_j = alpha_j sign(x_j)`` where ``x_j != 0``
and ``|g_j| <= alpha_j`` where ``x_j = 0``. :meth:`lsalsa.LassoProblem.kkt_violation` reports the
largest violation; the support solve (:mod:`lsalsa.solvers.support`) certifies a candidate when
every entry's violation is within :func:`kkt_tolerance`. The compiled row loop
(``solvers/_support_kernel.py``) runs the same test transcribed for numba, with the same
tolerance (a test checks the two agree). :func:`certify` is the test behind a solver's ``converged``.
"""
from __future__ import annotations

from typing import Any

import torch


def kkt_residual(g: torch.Tensor, X: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Each entry's violation ``(B, N)``, in the units of alpha: ``|g_j - alpha_j sign(x_j)|`` on
    the support, ``max(|g_j| - alpha_j, 0)`` off it.

    g : (B, N) the correlations of the residual ``A^T (y - A x)``; X : (B, N) codes;
    thresholds : (N,) the per-atom alphas.
    """
    on = X != 0
    return torch.where(on, (g - thresholds * torch.sign(X)).abs(), (g.abs() - thresholds).clamp_min(0))


def kkt_tolerance(thresholds: torch.Tensor, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How far entry (i, j) of :func:`kkt_residual` may be from 0 for a certified optimum:
    ``per_atom[j] + per_row[i]``, with ``per_atom = sqrt(eps) alpha_j`` (relative to alpha) and
    ``per_row = 64 eps max_j |C_ij|`` (the rounding of ``A^T y``).

    In float32 that is 3.5e-4 alpha_j: a coordinate left out by that much changes the objective
    by about (3.5e-4 alpha_j)^2 / 2, far below a 1e-6 relative gap.

    thresholds : (N,); C : (B, N) ``A^T y``. Returns ``(per_atom (N,), per_row (B,))``.
    """
    eps = torch.finfo(C.dtype).eps
    return eps**0.5 * thresholds, 64 * eps * C.abs().amax(dim=1)


def certify(A: torch.Tensor, Y: torch.Tensor, X: torch.Tensor, thresholds: torch.Tensor, tol: float) -> dict[str, Any]:
    """Which rows of ``X`` pass the KKT test a solver's ``converged=True`` stands for.

    Entry (i, j) may be off by ``max(sqrt(tol), sqrt(eps)) alpha_j + 64 eps max_j |C_ij|`` (the
    first term relative to alpha, scaled by the stopping rule's ``tol``: the objective's gap is
    about quadratic in it; the second the rounding of ``A^T y``, :func:`kkt_tolerance`). A row
    also fails where that rounding alone exceeds the largest alpha: then the dtype cannot tell
    the l1 term from rounding (float32 with signals far larger than alpha), whatever the codes.
    Costs three products of ``(B, M)`` and ``(M, N)``: run it once, at the end of a run.

    A : (M, N); Y : (B, M); X : (B, N); thresholds : (N,) per-atom alphas; tol : > 0.
    Returns ``{"ok": (B,) bool, "violation": (B,) the largest residual (as
    :meth:`lsalsa.LassoProblem.kkt_violation`), "unresolved": (B,) bool, "rtol": the first
    term's factor on alpha}``.
    """
    C = Y @ A
    residual = kkt_residual((Y - X @ A.T) @ A, X, thresholds)  # as LassoProblem.kkt_violation
    eps = torch.finfo(C.dtype).eps
    _, per_row = kkt_tolerance(thresholds, C)
    rtol = max(tol, eps) ** 0.5  # at least the support solve's sqrt(eps)
    allowed = rtol * thresholds + per_row[:, None]
    alpha = float(thresholds.max())
    unresolved = per_row > alpha if alpha > 0 else torch.zeros_like(per_row, dtype=torch.bool)
    ok = (residual <= allowed).all(dim=1) & ~unresolved  # a NaN residual fails
    return {"ok": ok, "violation": residual.amax(dim=1), "unresolved": unresolved, "rtol": rtol}
