"""The encoders' inference fast path: the same layers with preallocated buffers and in-place ops.

Autograd needs every intermediate of a layer as a fresh tensor, so the trainable ``forward``
(:func:`lsalsa.solvers.salsa_step`, :func:`lsalsa.solvers.ista_step`) allocates five to six
``(B, N)`` tensors per layer. Without autograd the same arithmetic can run in a few buffers
allocated once per call, and LSALSA's layer can be rewritten to touch memory less often:

* ``soft(z; t) = z - clamp(z, -t, t)``, so SALSA's ``w = u - d = soft(x + d) - d`` is
  ``w = x - clamp(x + d, -t, t)``.
* The state is kept as ``(x, q)`` with ``q = -(x + d)``: then ``w = x + clamp(q, -t, t)`` and,
  since ``d_t = x_t - w``, ``q_t = w - 2 x_t`` is one fused ``add`` of the layer's own outputs.

An LSALSA layer then makes four passes over ``(B, N)`` data besides its GEMM (the trainable
layer makes five, plus the allocations), and a clamp is one pass for scalar and per-coordinate
thresholds alike. LISTA's layer is already a GEMM with the bias fused (``addmm``) and one
soft-threshold; here the product writes into a reused buffer. The results equal the trainable forward up
to floating-point rounding (the operations are reassociated), which the tests bound.

Mixed precision: the matrix products run in the dtype of ``W_e`` and ``S`` as given (e.g.
bfloat16 copies), while the iterates, thresholds and codes stay in ``Y``'s dtype. Only the
products' inputs are rounded to the low precision, so the rounding does not accumulate in
LSALSA's running sums (``d``, ``q``). For LSALSA this costs no extra pass: ``add`` writes the
product's input directly in the low precision and promotes the product's output back when it
reads it. With one dtype throughout, the functions make no casts at all.
"""
from __future__ import annotations

import torch

from ..prox import soft_threshold


def _soft_into(Z: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float, out: torch.Tensor) -> torch.Tensor:
    """``soft(Z; t)`` written into ``out``, with ``(lo, hi) = (-t, t)`` (``out`` must not alias
    ``Z`` for a vector threshold)."""
    if isinstance(hi, torch.Tensor):
        torch.clamp(Z, lo, hi, out=out)
        return torch.sub(Z, out, out=out)
    # F.softshrink has no out= form; its ATen overload does, and is one fused pass
    return torch.ops.aten.softshrink.out(Z, hi, out=out)


def _input_product(Y: torch.Tensor, W_e: torch.Tensor) -> torch.Tensor:
    """``Y W_e^T`` in W_e's dtype, returned in Y's (no copies when they agree)."""
    return torch.mm(Y.to(W_e.dtype), W_e.T).to(Y.dtype)


def lista_layers_inplace(
    Y: torch.Tensor, W_e: torch.Tensor, S: torch.Tensor, threshold: torch.Tensor | float, *, n_layers: int
) -> torch.Tensor:
    """LISTA's T layers (see :class:`lsalsa.LISTA`) without autograd, the products into a reused
    ``(B, N)`` buffer.

    The soft-threshold allocates its output: for a scalar threshold ``F.softshrink`` is one fused
    pass either way, and its ``out=`` overload costs more per call than the allocation saves
    (measured: slower for B <= 64, equal at B = 1024).

    Parameters
    ----------
    Y : (B, M) signals; the iterates and codes have its dtype.
    W_e : (N, M), in the dtype of the products.
    S : (N, N) tied, or (T - 1, N, N), one per layer after the first; W_e's dtype.
    threshold : float or (N,) tensor of Y's dtype.
    n_layers : T >= 1.

    Returns
    -------
    (B, N) codes, a fresh tensor of Y's dtype.
    """
    B = _input_product(Y, W_e)
    X = soft_threshold(B, threshold)  # layer 1 from x_0 = 0
    Z = torch.empty_like(B)
    mixed = S.dtype != Y.dtype
    if mixed:
        X_low, Z_low = torch.empty_like(B, dtype=S.dtype), torch.empty_like(B, dtype=S.dtype)
    for t in range(1, n_layers):
        S_t = S if S.ndim == 2 else S[t - 1]
        if mixed:  # addmm needs one dtype: round x for the product, add b at full precision
            torch.mm(X_low.copy_(X), S_t.T, out=Z_low)
            torch.add(B, Z_low, out=Z)
        else:
            torch.addmm(B, X, S_t.T, out=Z)
        X = soft_threshold(Z, threshold)
    return X


def lsalsa_layers_inplace(
    Y: torch.Tensor,
    W_e: torch.Tensor,
    S: torch.Tensor,
    threshold: torch.Tensor | float,
    *,
    n_layers: int,
    mu: float,
    readout: str,
) -> torch.Tensor:
    """LSALSA's T layers and read-out (see :class:`lsalsa.LSALSA`) without autograd.

    Runs in four ``(B, N)`` buffers with the state ``(x, q = -(x + d))`` (module docstring).

    Parameters
    ----------
    Y : (B, M) signals; the iterates and codes have its dtype.
    W_e : (N, M), in the dtype of the products.
    S : (N, N) tied, or (T, N, N), one per layer; W_e's dtype.
    threshold : float or (N,) tensor of Y's dtype, ``alpha_i / mu``.
    n_layers : T >= 1.
    mu : the ADMM penalty.
    readout : "u" (``soft(x_T + d_T)``) or "x" (``soft(x_T)``).

    Returns
    -------
    (B, N) codes, a fresh tensor of Y's dtype.
    """
    lo, hi = -threshold, threshold
    B = _input_product(Y, W_e)
    X = B  # x_0 = W_e y is only read by layer 1, which then writes x_1 into its own buffer
    W, Q = torch.empty_like(B), torch.neg(B)  # q_0 = -(x_0 + d_0), d_0 = 0
    V, X_buf = torch.empty_like(B, dtype=S.dtype), torch.empty_like(B, dtype=S.dtype)
    for t in range(n_layers):
        S_t = S if S.ndim == 2 else S[t]
        torch.clamp(Q, lo, hi, out=W)
        W.add_(X)                           # w = u - d = x + clamp(q)
        torch.add(B, W, alpha=mu, out=V)    # b + mu w
        X = torch.mm(V, S_t.T, out=X_buf)   # x_t = S (b + mu w)
        torch.add(W, X, alpha=-2.0, out=Q)  # q_t = -(x_t + d_t) = w - 2 x_t
    if readout == "x":
        X = X.to(B.dtype)
        return _soft_into(X, lo, hi, out=torch.empty_like(X))
    # u = soft(x_T + d_T) = soft(-q) = clamp(q, -t, t) - q (zero exactly where |q| <= t)
    torch.clamp(Q, lo, hi, out=W)
    return torch.sub(W, Q, out=W)
