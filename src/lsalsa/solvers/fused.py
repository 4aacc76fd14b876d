"""Fused inference layers on a CPU: one pass over the ``(B, N)`` iterates per layer besides the product.

In place, a SALSA iteration / LSALSA layer of :mod:`lsalsa.solvers.iteration` is four
element-wise passes besides its GEMM (``clamp``, ``x - clamp``, ``b + mu w``, ``lerp``), each a
torch kernel that reads one or two ``(B, N)`` arrays and writes one: eleven streams of memory per
layer. Where the products are fast (small N, AMX or many cores) those passes cost as much as the
GEMM. Here the passes are one compiled loop (numba, parallel over the rows) that reads
``x_k, w_k, b`` and writes ``w_{k+1}`` and the product's input ``b + mu w_{k+1}``, five streams:

    v = x + (x - w)                      (= lerp(w, x, 2) = 2 x - w, torch's arithmetic)
    w' = x - clamp(v, -t, t)             (the relaxation at rho = 1, given x)
    p = b + mu w'                        (then x' = p S^T: the GEMM, torch.mm)

and the read-out ``u = soft(v)`` is one more such pass at the end. The arithmetic is the
unfused layer's, operation for operation (the tests check equality to rounding; on the
machines measured it was bit for bit). LISTA's layer is a GEMM with its bias (``addmm``) and
a soft-threshold, fused here into one in-place pass where the thresholds are per atom (a
scalar's soft-threshold is torch's one-pass softshrink already). FISTA keeps torch's passes: a
fused FISTA pass measured 0.89x (N = 100) and 1.00x (N = 256) of them on the 2-core AMD EPYC.

:func:`use_fused` says when the fused path runs: on a CPU, float32 / float64 iterates with
products in the same dtype, and batches of at least :data:`MIN_ELEMENTS` entries (below that the
parallel loop's start costs more than the passes it saves). The plain torch path stays for
everything else (GPUs, mixed precision, autograd, callbacks). Figures: ``benchmarks/README.md``.
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from ._common import row_change

MIN_ELEMENTS = 16_384
"""The smallest ``B * N`` that takes the fused path by default."""


@numba.njit(parallel=True, cache=True)
def _salsa_pass(X, W, P, b, t, mu, first):  # pragma: no cover  (compiled)
    B, N = X.shape
    for i in numba.prange(B):
        for j in range(N):
            x = X[i, j]
            v = x if first else x + (x - W[i, j])
            c = min(max(v, -t[j]), t[j])
            w = x - c
            W[i, j] = w
            P[i, j] = b[i, j] + mu * w


@numba.njit(parallel=True, cache=True)
def _salsa_readout(X, W, out, t):  # pragma: no cover  (compiled)
    B, N = X.shape
    for i in numba.prange(B):
        for j in range(N):
            x = X[i, j]
            v = x + (x - W[i, j])
            out[i, j] = v - min(max(v, -t[j]), t[j])


@numba.njit(parallel=True, cache=True)
def _soft_inplace(Z, t):  # pragma: no cover  (compiled)
    B, N = Z.shape
    for i in numba.prange(B):
        for j in range(N):
            z = Z[i, j]
            Z[i, j] = z - min(max(z, -t[j]), t[j])


def use_fused(fused: bool | None, b: torch.Tensor, S: torch.Tensor) -> bool:
    """Whether a layer loop over ``b: (B, N)`` with products ``S`` runs fused: ``fused`` True
    asks for it (an error where it cannot run), False never, None (the default) where it can
    and ``B * N >= MIN_ELEMENTS``."""
    from ..errors import LsalsaError

    able = (b.device.type == "cpu" and S.device.type == "cpu" and b.dtype in (torch.float32, torch.float64)
            and S.dtype == b.dtype and b.ndim == 2 and not b.requires_grad)
    if fused is True and not able:
        raise LsalsaError(f"fused: runs on a CPU with float32 or float64 iterates and products of the same dtype, "
                          f"got {b.dtype} iterates on {b.device} and {S.dtype} products on {S.device}")
    return able and (fused is True or (fused is None and b.numel() >= MIN_ELEMENTS))


def _rows(threshold: torch.Tensor | float, n_iter: int, like: torch.Tensor) -> list[np.ndarray]:
    """One ``(N,)`` threshold row per layer, as numpy arrays of ``like``'s dtype."""
    N = like.shape[1]
    if isinstance(threshold, torch.Tensor) and threshold.ndim == 2:
        return [r.contiguous().numpy() for r in threshold.to(like.dtype)]
    t = (threshold.to(like.dtype).expand(N) if isinstance(threshold, torch.Tensor)
         else torch.full((N,), float(threshold), dtype=like.dtype))
    return [t.contiguous().numpy()] * n_iter


def _threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def fused_salsa(b: torch.Tensor, S: torch.Tensor, mu: float, threshold: torch.Tensor | float, n_iter: int, *,
                layer_mu: list[float] | None = None, change: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n_iter`` SALSA iterations (``rho = 1``, read-out "u") from ``x_0 = b, d_0 = 0``, fused:
    what :func:`lsalsa.solvers.iteration.unrolled_salsa` computes in place.

    b: (B, N); S: (N, N) tied or (T, N, N); threshold: float, (N,) or (T, N); layer_mu: one
    penalty per iteration (floats) or None (``mu``); change: also each row's last relative
    change of x. Returns ``(codes (B, N), change (B,) or None)``.
    """
    _threads()
    b = b.contiguous()
    X, W, P = b.clone(), torch.empty_like(b), torch.empty_like(b)
    Xn, Wn, Pn, bn = X.numpy(), W.numpy(), P.numpy(), b.numpy()
    rows = _rows(threshold, n_iter, b)
    penalties = [float(mu)] * n_iter if layer_mu is None else list(layer_mu)
    X_prev = None
    for k in range(n_iter):
        _salsa_pass(Xn, Wn, Pn, bn, rows[k], penalties[k], k == 0)
        if change and k == n_iter - 1:
            X_prev = X.clone()
        torch.mm(P, (S if S.ndim == 2 else S[k]).T, out=X)
    out = torch.empty_like(b)
    _salsa_readout(Xn, Wn, out.numpy(), rows[-1])
    return out, None if X_prev is None else row_change(X, X_prev, out=X_prev)


def soft_threshold_(Z: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """``Z <- soft(Z; t)`` in one pass, in place (``Z: (B, N)`` contiguous, on a CPU); ``t`` a
    float or ``(N,)``. Returns ``Z``."""
    _threads()
    _soft_inplace(Z.numpy(), _rows(threshold, 1, Z)[0])
    return Z
