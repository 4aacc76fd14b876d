"""The support solve of :func:`lsalsa.solvers.solve_on_support` for small supports on a CPU:
one compiled loop over the rows (numba), each row's system solved and certified in place.

Why not LAPACK: torch's batched Cholesky makes one LAPACK call per row, and at the support sizes
of 10x10 patch codes (5-30 atoms) the call costs more than its arithmetic; with the index
bookkeeping around it a row took 5.5 us, this loop about 1.4 us (10,000 MNIST patch codes, 2
cores). Above ``MAX_SUPPORT`` atoms the O(k^3) arithmetic dominates and LAPACK's blocked kernels
win, so those rows are left to it.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

MAX_SUPPORT = 64
"""Rows with more atoms than this get status ``LARGE`` and are left for LAPACK."""
FAILED, OK, LARGE = 0, 1, 2


@numba.njit(cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _solve_row(G, c, alpha, bound, on_slack, row_slack, u, t, x, idx, corr):  # pragma: no cover - compiled
    """One row: ``x`` <- the optimum on the support ``|u_j| > t_j`` with the signs of ``u``, if
    it passes the KKT test (``x`` untouched otherwise); returns the status."""
    N = u.shape[0]
    k = 0
    for j in range(N):
        if abs(u[j]) > t[j]:
            if k == MAX_SUPPORT:
                return LARGE
            idx[k] = j
            k += 1
    # G_SS x_S = c_S - alpha_S s by Cholesky, in float64 whatever the input (the systems are tiny)
    L = np.empty((k, k), np.float64)
    r = np.empty(k, np.float64)
    for a in range(k):
        ia = idx[a]
        r[a] = c[ia] - (alpha[ia] if u[ia] > 0 else -alpha[ia])
        for b in range(a + 1):
            L[a, b] = G[ia, idx[b]]
    for j in range(k):
        acc = L[j, j]
        for q in range(j):
            acc -= L[j, q] * L[j, q]
        if not acc > 0:  # singular (more atoms than dimensions); NaN lands here too
            return FAILED
        d = math.sqrt(acc)
        L[j, j] = d
        for a in range(j + 1, k):
            acc = L[a, j]
            for q in range(j):
                acc -= L[a, q] * L[j, q]
            L[a, j] = acc / d
    for j in range(k):
        acc = r[j]
        for q in range(j):
            acc -= L[j, q] * r[q]
        r[j] = acc / L[j, j]
    for j in range(k - 1, -1, -1):
        acc = r[j]
        for q in range(j + 1, k):
            acc -= L[q, j] * r[q]
        r[j] = acc / L[j, j]
    # KKT, the certificate: the signs kept on the support, |c_j - g_j^T x| = alpha_j there and
    # <= alpha_j everywhere, each to its slack
    for j in range(N):
        corr[j] = c[j]
    for a in range(k):
        ia = idx[a]
        if not r[a] * u[ia] > 0:
            return FAILED
        xa = corr.dtype.type(r[a])
        for j in range(N):
            corr[j] -= xa * G[ia, j]
    worst = corr.dtype.type(-np.inf)
    for j in range(N):
        worst = max(worst, abs(corr[j]) - bound[j])
    if not worst <= row_slack:
        return FAILED
    for a in range(k):
        ia = idx[a]
        if not abs(corr[ia] - (alpha[ia] if r[a] > 0 else -alpha[ia])) <= on_slack[ia] + row_slack:
            return FAILED
    for j in range(N):
        x[j] = 0
    for a in range(k):
        x[idx[a]] = r[a]
    return OK


_HASH_START, _HASH_MUL = 1469598103934665603, 1099511628211  # FNV-1a's


@numba.njit(parallel=True, cache=True)
def certify_rows(G, C, alpha, bound, on_slack, row_slack, V, t, rows, out, last, status):  # pragma: no cover - compiled
    """For each row i of ``V: (b, N)``, SALSA's ``v`` iterates (the code is ``soft(v; t)``):
    where the optimum on its support and signs passes the KKT test, write it to
    ``out[rows[i]]`` and set ``status[i] = OK``; else FAILED or LARGE. A row whose sign pattern
    hashes to ``last[i]`` (that pattern already failed) is not solved again; ``last`` is updated.
    ``G: (N, N)``; ``C: (B, N)`` ``A^T y`` and ``row_slack: (B,)``, indexed by ``rows``;
    ``alpha, bound, on_slack, t: (N,)`` (see :func:`slacks`)."""
    b, N = V.shape
    for i in numba.prange(b):
        v = V[i]
        h = _HASH_START
        for j in range(N):
            if abs(v[j]) > t[j]:
                h = (h ^ (2 * j + (v[j] > 0))) * _HASH_MUL  # int64, wrapping
        if h == last[i]:
            status[i] = FAILED
            continue
        last[i] = h
        idx = np.empty(MAX_SUPPORT, np.int64)
        corr = np.empty(N, V.dtype)
        r = rows[i]
        status[i] = _solve_row(G, C[r], alpha, bound, on_slack, row_slack[r], v, t, out[r], idx, corr)


def slacks(thresholds: torch.Tensor, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(bound, on_slack, row_slack)`` of the KKT test, ``support._slack`` split: entry (i, j) may
    exceed alpha_j by ``sqrt(eps) alpha_j + 64 eps max_j |C_ij|``."""
    eps = torch.finfo(C.dtype).eps
    return (1 + eps**0.5) * thresholds, eps**0.5 * thresholds, 64 * eps * C.abs().amax(dim=1)


def set_threads() -> None:
    """As many threads as torch uses."""
    numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def solve_small(
    G: torch.Tensor, C: torch.Tensor, thresholds: torch.Tensor, U: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lsalsa.solvers.solve_on_support` of CPU tensors by :func:`certify_rows` (the
    support: ``U != 0``); returns ``(X: (B, N), status: (B,) uint8)``, ``X = U`` where not OK."""
    X, status = U.clone(), torch.empty(U.shape[0], dtype=torch.uint8)
    rows, zeros, last = torch.arange(U.shape[0]), torch.zeros_like(thresholds), torch.zeros(U.shape[0], dtype=torch.int64)
    set_threads()
    inputs = (G, C, thresholds, *slacks(thresholds, C), U, zeros, rows, X, last)
    certify_rows(*(x.detach().contiguous().numpy() for x in inputs), status.numpy())
    return X, status
