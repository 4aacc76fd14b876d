"""SALSA's iteration, written once (Alg. 2 lines 4-6, Alg. 4's loop body).

:func:`salsa_step` is the one iteration: the solver's loops (:mod:`lsalsa.solvers.loops`),
LSALSA's layers (trainable and inference, :func:`unrolled_salsa`) and the ``mu="auto"`` trial
(:mod:`lsalsa.solvers.penalty`) all call it.

The paper's iteration (rows, as everywhere: ``b = A^T y``, or ``W_e y`` in LSALSA)::

    u_{k+1} = soft(x_k + d_k; alpha_i / mu)
    x_{k+1} = S (b + mu (u_{k+1} - d_k))
    d_{k+1} = d_k - u_{k+1} + x_{k+1}

is carried in ``w_k = u_k - d_{k-1}`` and ``v_k = 2 x_k - w_k`` instead of ``(x, d)``: since
``d_k = x_k - w_k``, ``x_k + d_k = v_k``, so with ``soft(v) = v - clamp(v)`` one iteration is

    w_{k+1} = lerp(w_k, v_k - 2 clamp(v_k), rho / 2)        (2 u - v = v - 2 clamp(v))
    v_{k+1} = 2 x_{k+1} - w_{k+1},  x_{k+1} = S (b + mu w_{k+1})

``rho`` is the ADMM's relaxation (Eckstein & Bertsekas 1992), applied to the sparse variable:
``rho = 1`` (``lerp`` weight 1/2) is SALSA as printed, the iteration LSALSA unrolls. The code
after k iterations is ``u_{k+1} = soft(v_k)`` (:func:`salsa_readout`) and ``x_k = (v_k + w_k) / 2``.
The start ``x_0 = b, d_0 = 0`` is ``w_0 = v_0 = x_0``.

The x-update is the linear solve, and it comes in the forms its callers need, each a function
``update(W, out) -> (V, X)`` (:func:`precomputed_update`: ``v = 2 S b + w H``, ``H = 2 mu S^T - I``,
both terms formed once, one GEMM with its bias for long runs; :func:`direct_update`: ``x = S (b +
mu w)``, ``v = 2 x - w`` from ``S`` itself, nothing formed beforehand, for T layers whose ``S`` is
learned or differs per layer; the trial's own, batched over candidates). The rest of the iteration
is the same arithmetic in every caller. Where the update gives ``x`` and ``rho = 1``, the
relaxation reads ``w_{k+1} = x_k - clamp(v_k)`` (the same value, one pass fewer). No scratch
buffer computes in fresh tensors (what autograd needs); with one the step updates ``W`` and
``V`` in place.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import LsalsaError
from ..prox import soft_threshold
from ._common import row_change
from .fused import fused_salsa, use_fused

XUpdate = Callable[[torch.Tensor, "torch.Tensor | None"], "tuple[torch.Tensor, torch.Tensor | None]"]


def salsa_step(
    W: torch.Tensor,
    V: torch.Tensor,
    update: XUpdate,
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
    half_rho: float = 0.5,
    scratch: torch.Tensor | None = None,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
    X: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One SALSA iteration / LSALSA layer in the ``(w, v)`` form (module docstring).

    W, V : (B, N) iterates (or (K, B, N), a batch per candidate mu).
    update : the x-update ``update(W, out) -> (V, X or None)`` (:func:`precomputed_update`,
        :func:`direct_update`).
    lo, hi : ``-t, t`` with the thresholds ``t = alpha_i / mu`` (floats, or tensors that
        broadcast against ``V``).
    half_rho : ``rho / 2``; 1/2 is SALSA as printed.
    scratch : None computes in fresh tensors (autograd); a tensor like ``V`` makes the step write
        into buffers instead: ``out = (W_out, V_out)``, by default ``W`` and ``V`` themselves
        (in place). The update may reuse ``scratch`` too.
    X : ``x_k = (v_k + w_k) / 2`` where the caller has it (the direct x-update returns it): with
        ``rho = 1`` the relaxation then reads ``w_{k+1} = x_k - clamp(v_k)``, one pass instead of
        two.

    Returns the new ``(W, V, X)`` (``X`` None where the update does not form it).
    """
    W_out, V_out = (None, None) if scratch is None else ((W, V) if out is None else out)
    C = torch.clamp(V, lo, hi, out=scratch)
    if X is not None and half_rho == 0.5:
        W = torch.sub(X, C, out=W_out)  # (w + 2 u - v) / 2 = x - clamp(v)
        return (W, *update(W, V_out))
    R = torch.sub(V, C, alpha=2.0, out=V_out)  # 2 u - v
    W = torch.lerp(W, R, half_rho, out=W_out)
    return (W, *update(W, R if scratch is not None else None))


def salsa_readout(V: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """The sparse code after the iterations so far: ``u = soft(x + d; alpha/mu) = soft(v)``.

    Algorithms 3/4 print ``soft(x_T)``; but at the ADMM fixed point ``x = u`` is already the
    lasso solution, so shrinking x again would bias it by alpha/mu and truncated SALSA could
    never reach the optimal codes. ``u``, the ADMM's sparse variable, converges to them.
    """
    return soft_threshold(V, threshold)


def precomputed_update(Sb2: torch.Tensor, H: torch.Tensor) -> XUpdate:
    """The x-update ``v = 2 S b + w H`` with ``Sb2 = 2 b S^T: (B, N)`` and ``H = 2 mu S^T - I:
    (N, N)`` formed once (one GEMM with its bias per iteration); 3-D ``(K, B, N)`` and
    ``(K, N, N)`` give one x-update per candidate."""
    product = torch.addmm if H.ndim == 2 else torch.baddbmm
    return lambda W, out=None: (product(Sb2, W, H, out=out), None)


def iteration_matrix(S: torch.Tensor, mu: float) -> torch.Tensor:
    """``H = 2 mu S^T - I: (N, N)`` of :func:`precomputed_update`, contiguous (MKL's GEMM on a
    transposed view was slower)."""
    eye = torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
    return (2 * mu * S.T - eye).contiguous()


def filtered_input(Y: torch.Tensor, W_e: torch.Tensor) -> torch.Tensor:
    """``b = Y W_e^T: (B, N)`` for ``Y: (B, M)``, ``W_e: (N, M)``; the product in ``W_e``'s dtype,
    returned in ``Y``'s (no copies when they agree). The solvers pass ``W_e`` contiguous, as the
    encoders hold it, so that both compute the same product bit for bit."""
    return torch.mm(Y.to(W_e.dtype), W_e.T).to(Y.dtype)


def direct_update(
    b: torch.Tensor,
    S: torch.Tensor,
    mu: float,
    scratch: torch.Tensor | None = None,
    x_out: torch.Tensor | None = None,
    *,
    scale: torch.Tensor | None = None,
) -> XUpdate:
    """The x-update ``x = S (b + mu w)``, ``v = 2 x - w``, from ``S: (N, N)`` itself, for
    ``b: (B, N)``; it returns ``(V, X)``.

    In place, ``scratch`` holds ``b + mu w`` (it may be the step's own scratch) and ``x_out``
    the product. When ``S`` has a lower precision than ``b`` (e.g. bfloat16 products),
    ``b + mu w`` is written in ``S``'s dtype and the product promoted back, so only the
    product's inputs are rounded. ``scale``, a 0-d tensor ``r`` (not in place), makes it
    ``x = S (b + mu (r w))``: a penalty ``mu r`` differentiable in ``r``, whose ``r = 1`` is the
    arithmetic of ``mu`` alone bit for bit (``torch.add``'s fused ``b + mu w`` is not
    ``b + (mu r) w``).
    """
    St = S.T

    def update(W: torch.Tensor, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        P = torch.add(b, W if scale is None else W * scale, alpha=mu, out=scratch)
        if St.dtype == W.dtype:
            X = torch.mm(P, St, out=x_out)
        else:  # mixed precision: the product in S's dtype, the rest in W's
            X = torch.mm(P.to(St.dtype), St).to(W.dtype) if x_out is None else x_out.copy_(torch.mm(P, St))
        return torch.lerp(W, X, 2.0, out=out), X  # w + 2 (x - w) = 2 x - w

    return update


def unrolled_salsa(
    b: torch.Tensor,
    S: torch.Tensor,
    mu: float,
    threshold: torch.Tensor | float,
    n_iter: int,
    *,
    half_rho: float = 0.5,
    readout: str = "u",
    inplace: bool = False,
    callback: Callable[[int, torch.Tensor], object] | None = None,
    change: bool = False,
    layer_mu: torch.Tensor | None = None,
    fused: bool | None = None,
) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """T SALSA iterations from ``x_0 = b, d_0 = 0``: truncated SALSA and LSALSA's T layers.

    b : (B, N) the filtered input ``Y W_e^T`` (``A^T y`` for the solver).
    S : (N, N) shared by the iterations, or (T, N, N) one per iteration (untied LSALSA).
    threshold : ``alpha_i / mu``, a float or (N,) tensor of ``b``'s dtype, or (T, N) one row per
        iteration (LSALSA's learned penalties); the read-out after iteration k uses row k.
    readout : "u" for ``soft(x_T + d_T)``; "x" for the paper's printed ``soft(x_T)``.
    inplace : iterate in reused buffers (no autograd).
    callback : ``callback(k, U)`` after iteration k with the current code (of ``readout``'s
        kind); True stops.
    change : also return each row's ``||x_k - x_{k-1}|| / ||x_k||`` of the last iteration.
    layer_mu : None, or (T,) a penalty ``mu_k`` per iteration for the x-update (LSALSA's
        ``learn_mu``), with ``mu`` the reference: the update reads ``b + mu (w (mu_k / mu))``
        (:func:`direct_update`'s ``scale``), so ``mu_k = mu`` is the fixed-mu arithmetic bit for
        bit; in place (no gradient) ``mu_k`` is read as a float, ``b + mu_k w``.

    fused : in place, the iterations' element-wise passes as one compiled pass per iteration
        (:mod:`lsalsa.solvers.fused`: a CPU, rho = 1, read-out "u", no callback): None where
        :func:`~lsalsa.solvers.fused.use_fused` says so, True always (else an error), False never.

    Returns ``(codes (B, N), iterations run, each row's last relative change (B,) or None)``.
    """
    plain_only = not inplace or half_rho != 0.5 or readout != "u" or callback is not None
    if fused is True and plain_only:
        raise LsalsaError("fused: needs the in-place iteration at rho = 1 with read-out 'u' and no callback")
    if not plain_only and use_fused(fused, b, S):
        U, rel = fused_salsa(b, S, mu, threshold, n_iter, layer_mu=None if layer_mu is None else layer_mu.tolist(),
                             change=change)
        return U, n_iter, rel
    if isinstance(threshold, torch.Tensor) and threshold.ndim == 2:
        bounds = [(-t, t) for t in threshold]
    else:
        bounds = [(-threshold, threshold)] * n_iter
    if layer_mu is None:
        penalties = [(mu, None)] * n_iter
    else:
        penalties = [(m, None) for m in layer_mu.tolist()] if inplace else [(mu, r) for r in layer_mu / mu]
    W = V = X = b  # w_0 = v_0 = x_0; in place, the first step writes into the buffers
    buffers = (torch.empty_like(b), torch.empty_like(b)) if inplace else None
    scratch = torch.empty_like(b, dtype=S.dtype) if inplace else None  # b + mu w, in S's dtype
    step_scratch = scratch if scratch is None or S.dtype == b.dtype else torch.empty_like(b)
    x_out = torch.empty_like(b) if inplace else None
    # made once: small batches pay per call
    tied = direct_update(b, S, mu, scratch, x_out) if S.ndim == 2 and layer_mu is None else None
    X_prev, k, t = None, 0, threshold
    for k in range(1, n_iter + 1):
        if change and (callback is not None or k == n_iter):
            X_prev = X.clone()
        (lo, t), (mu_k, scale) = bounds[k - 1], penalties[k - 1]
        if tied is None:
            update = direct_update(b, S if S.ndim == 2 else S[k - 1], mu_k, scratch, x_out, scale=scale)
        else:
            update = tied
        W, V, X = salsa_step(W, V, update, lo, t, half_rho, step_scratch, buffers, X)
        if callback is not None and callback(k, _readout(V, X, t, readout)):
            break
    rel = None if X_prev is None else row_change(X, X_prev, out=X_prev)
    return _readout(V, X, t, readout), k, rel


def _readout(V: torch.Tensor, X: torch.Tensor, threshold: torch.Tensor | float, readout: str) -> torch.Tensor:
    """The code of ``readout``'s kind: ``soft(v)`` ("u", :func:`salsa_readout`) or ``soft(x)`` ("x")."""
    return soft_threshold(X, threshold) if readout == "x" else salsa_readout(V, threshold)
