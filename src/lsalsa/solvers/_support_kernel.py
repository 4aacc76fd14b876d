"""The support solve of :func:`lsalsa.solvers.solve_on_support` for small supports on a CPU,
and SALSA's exact finish built on it: one compiled loop over the rows (numba), each row's
system solved and certified in place.

Why not LAPACK: torch's batched Cholesky makes one LAPACK call per row, and at the support sizes
of patch codes (tens of atoms) the call and the index bookkeeping around it cost more than the
arithmetic (``benchmarks/bench_polish.py``). Above ``MAX_SUPPORT`` atoms the O(k^3) arithmetic
dominates and LAPACK's blocked kernels win, so those rows are left to it.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
import torch

from ..kkt import kkt_tolerance

MAX_SUPPORT = 64
"""Rows with more atoms than this get status ``LARGE`` and are left for LAPACK."""
FAILED, OK, LARGE = 0, 1, 2
_HASH_START, _HASH_MUL = 1469598103934665603, 1099511628211  # FNV-1a's
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}  # not nnan/ninf: the NaN tests must stay


class Rows(NamedTuple):
    """What stays fixed while SALSA's rows are certified (numpy arrays; numba takes the tuple).

    G : (N, N) ``A^T A``; C : (B, N) ``A^T y``; alpha : (N,) the per-atom alphas; t : (N,) the
    iteration's thresholds (a row's support is ``|v_j| > t_j``); bound, on_slack : (N,)
    ``alpha + per_atom`` and ``per_atom`` of :func:`lsalsa.kkt.kkt_tolerance`; row_slack : (B,) its
    ``per_row``; steps : active-set corrections after a failed test.
    """

    G: np.ndarray
    C: np.ndarray
    alpha: np.ndarray
    t: np.ndarray
    bound: np.ndarray
    on_slack: np.ndarray
    row_slack: np.ndarray
    steps: int


@numba.njit(cache=True, fastmath=_FASTMATH)
def _factor(G, idx, start, k, L):  # pragma: no cover - compiled
    """Rows ``start..k-1`` of the Cholesky factor ``L`` of ``G_SS``, ``S = idx[:k]``, given its
    rows before ``start`` (row a depends on atoms 0..a only, so an atom appended to the support
    costs one row, O(k^2)). In the input's precision, as LAPACK would. False if singular."""
    for a in range(start, k):
        ia = idx[a]
        for b in range(a + 1):
            acc = G[ia, idx[b]]
            for q in range(b):
                acc -= L[a, q] * L[b, q]
            if b < a:
                L[a, b] = acc / L[b, b]
            elif acc > 0:
                L[a, a] = math.sqrt(acc)
            else:  # singular (more atoms than dimensions); NaN lands here too
                return False
    return True


@numba.njit(cache=True, fastmath=_FASTMATH)
def _substitute(c, alpha, idx, sgn, k, L, r):  # pragma: no cover - compiled
    """``r[:k]`` <- the solution of ``G_SS x = c_S - alpha_S s`` from the factor ``L``."""
    for j in range(k):
        acc = c[idx[j]] - alpha[idx[j]] * sgn[j]
        for q in range(j):
            acc -= L[j, q] * r[q]
        r[j] = acc / L[j, j]
    for j in range(k - 1, -1, -1):
        acc = r[j]
        for q in range(j + 1, k):
            acc -= L[q, j] * r[q]
        r[j] = acc / L[j, j]


@numba.njit(cache=True, fastmath=_FASTMATH)
def _violation(fixed, c, row_slack, idx, k, r, corr):  # pragma: no cover - compiled
    """The KKT test of ``x`` (``r[:k]`` on ``idx[:k]``, 0 elsewhere), with ``corr = c - G x``:
    -1 if it passes, -2 if an equation on the support fails (rounding: give up), else the atom
    off the support that violates ``|corr_j| <= alpha_j`` most. :func:`lsalsa.kkt.kkt_residual`
    within :func:`lsalsa.kkt.kkt_tolerance`, transcribed for numba."""
    G, alpha, bound, on_slack = fixed.G, fixed.alpha, fixed.bound, fixed.on_slack
    N = c.shape[0]
    for j in range(N):
        corr[j] = c[j]
    for a in range(k):
        xa = r[a]
        ia = idx[a]
        for j in range(N):
            corr[j] -= xa * G[ia, j]
    for a in range(k):
        ia = idx[a]
        if not abs(corr[ia] - (alpha[ia] if r[a] > 0 else -alpha[ia])) <= on_slack[ia] + row_slack:
            return -2
    worst, jw = corr.dtype.type(-np.inf), -1
    for j in range(N):
        e = abs(corr[j]) - bound[j]
        if e > worst:
            worst, jw = e, j
    return -1 if worst <= row_slack else jw


@numba.njit(cache=True)
def _certify(fixed, c, row_slack, idx, sgn, k, x, corr):  # pragma: no cover - compiled
    """One row from the support ``idx[:k]`` with signs ``sgn[:k]``: solve, then up to ``steps``
    active-set corrections (atoms whose sign flipped leave, else the most violating atom enters
    with the sign of its correlation), until the KKT test passes: then ``x`` <- the optimum and
    OK; else FAILED and ``x`` untouched. The Cholesky factor is kept between corrections: an
    entering atom adds one row to it."""
    G, alpha, steps = fixed.G, fixed.alpha, fixed.steps
    N = c.shape[0]
    kmax = min(MAX_SUPPORT, k + steps)
    L = np.empty((kmax, kmax), x.dtype)
    r = np.empty(kmax, x.dtype)
    valid = 0  # rows of L that hold for idx[:k]
    for _ in range(steps + 1):
        if not _factor(G, idx, valid, k, L):
            return FAILED
        valid = k
        _substitute(c, alpha, idx, sgn, k, L, r)
        kept = 0
        for a in range(k):
            if r[a] * sgn[a] > 0:
                idx[kept], sgn[kept], r[kept] = idx[a], sgn[a], r[a]
                kept += 1
            else:
                valid = min(valid, a)  # the factor's rows from the first atom that left are redone
        if kept < k:
            k = kept
            continue
        j = _violation(fixed, c, row_slack, idx, k, r, corr)
        if j == -1:
            for q in range(N):
                x[q] = 0
            for a in range(k):
                x[idx[a]] = r[a]
            return OK
        if j == -2 or k == kmax:
            return FAILED
        idx[k], sgn[k] = j, (1.0 if corr[j] > 0 else -1.0)
        k += 1
    return FAILED


@numba.njit(parallel=True, cache=True)
def certify_rows(fixed, V, rows, out, last, status):  # pragma: no cover
    """For each row i of ``V: (b, N)``, SALSA's ``v`` iterates (the code is ``soft(v; t)``): from
    its support ``|v_j| > t_j`` and signs, :func:`_certify` with ``fixed.steps`` corrections; a
    certified optimum goes to ``out[rows[i]]``, with ``status[i] = OK``, else FAILED or LARGE
    (support above ``MAX_SUPPORT``). A row whose sign pattern hashes to ``last[i]`` (that
    pattern already failed) is not tried again; ``last`` is updated. ``fixed`` is a
    :class:`Rows`, whose ``C`` and ``row_slack`` are indexed by ``rows``."""
    t = fixed.t
    b, N = V.shape
    for i in numba.prange(b):
        v = V[i]
        idx = np.empty(N, np.int64)
        sgn = np.empty(N, V.dtype)
        h, k = _HASH_START, 0
        for j in range(N):
            if abs(v[j]) > t[j]:
                h = (h ^ (2 * j + (v[j] > 0))) * _HASH_MUL  # int64, wrapping
                idx[k], sgn[k] = j, (1.0 if v[j] > 0 else -1.0)
                k += 1
        if h == last[i]:
            status[i] = FAILED
            continue
        last[i] = h
        if k > MAX_SUPPORT:
            status[i] = LARGE
            continue
        r = rows[i]
        corr = np.empty(N, V.dtype)
        status[i] = _certify(fixed, fixed.C[r], fixed.row_slack[r], idx, sgn, k, out[r], corr)


def fixed_rows(G: torch.Tensor, C: torch.Tensor, alphas: torch.Tensor, t: torch.Tensor, steps: int) -> Rows:
    """The :class:`Rows` record of CPU tensors ``G: (N, N)``, ``C: (B, N)``, ``alphas, t: (N,)``."""
    per_atom, per_row = kkt_tolerance(alphas, C)
    arrays = (G, C, alphas, t, alphas + per_atom, per_atom, per_row)
    return Rows(*(x.detach().contiguous().numpy() for x in arrays), int(steps))


def set_threads() -> None:
    """As many threads as torch uses."""
    numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def solve_small(
    G: torch.Tensor, C: torch.Tensor, thresholds: torch.Tensor, U: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lsalsa.solvers.solve_on_support` of CPU tensors by :func:`certify_rows` with no
    corrections (the support: ``U != 0``); returns ``(X: (B, N), status: (B,) uint8)``, ``X = U``
    where not OK."""
    X, status = U.clone(), torch.empty(U.shape[0], dtype=torch.uint8)
    rows, last = torch.arange(U.shape[0]), torch.zeros(U.shape[0], dtype=torch.int64)
    set_threads()
    fixed = fixed_rows(G, C, thresholds, torch.zeros_like(thresholds), 0)
    certify_rows(fixed, U.detach().contiguous().numpy(), rows.numpy(), X.numpy(), last.numpy(), status.numpy())
    return X, status
