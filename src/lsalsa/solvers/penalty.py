"""SALSA's penalty ``mu``: the automatic choice (``mu="auto"``) by a short trial run.

Why a trial: SALSA's iteration count is V-shaped in log(mu), and where the bottom lies is set by
the spectrum of ``A^T A`` restricted to the atoms the codes actually use (the ADMM rate for a
quadratic is best at ``mu = sqrt(lambda_min lambda_max)`` of its Hessian, Ghadimi et al. 2015;
here the Hessian is the Gram matrix of the support), so by the dictionary *and* by alpha and the
signals. No closed form from the dictionary alone nor residual balancing (Boyd et al. 2011,
section 3.4.1) came as close to the best iteration count on the shipped problems as this trial
(``benchmarks/bench_auto_mu.py``; figures in ``benchmarks/README.md``).
"""
from __future__ import annotations

from typing import Any

import torch

from .._validation import check_positive, check_signals
from ..errors import LsalsaError
from ..problem import LassoProblem
from .iteration import precomputed_update, salsa_step

# The candidates mu = scale * 2^(j/2), j = -6..2 (scale = mean of diag(A^T A), 1 for unit-norm
# atoms), each run for ITERATIONS iterations on at most PILOT_ROWS signals.
FACTORS = tuple(2.0 ** (j / 2) for j in range(-6, 3))
PILOT_ROWS = 32
# 30 iterations misjudged the M = 1024, N = 2048 MCA problem (its pick needed 2x the iterations
# of the best mu); 60 stayed close to the best everywhere (bench_auto_mu.py).
ITERATIONS = 60
# The trial always runs over-relaxed: plainly its residual misjudged one problem, while the mu
# picked over-relaxed also suited plain SALSA.
RELAXATION = 1.8
# A candidate "has converged" once its residual is below this fraction of ||A^T y||; on problems
# that converge within the trial the residuals end at rounding noise, so the first to get there
# wins rather than the smallest noise.
LEVEL = 1e-5
CHECK_EVERY = 5
_MAX_FLOPS = 2**27  # cap on pilot rows x (4 r N) flops per iteration: 16 rows at N = 2048
_MAX_DENSE = 2**22  # form the candidates' S explicitly while (candidates) N^2 stays below this


def pilot_rows(n_rows: int, device: Any = None, limit: int = PILOT_ROWS) -> torch.Tensor:
    """The indices ``(P,)`` of the rows the trial reads out of ``n_rows`` signals: at most
    ``limit`` (:data:`PILOT_ROWS`), evenly spaced, so they sample the whole batch or data set."""
    n = min(n_rows, limit)
    if n <= 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.linspace(0, n_rows - 1, n, device=device).round().long()


def auto_mu(problem: LassoProblem, Y: Any) -> float:
    """SALSA's default penalty (``mu="auto"``): the best of a short trial run on a few signals.

    With ``s = trace(A^T A) / N``, the candidates ``mu = s * 2^(j/2)``, ``j = -6..2``
    (0.125 s .. 2 s) each run 60 over-relaxed (1.8) SALSA iterations on at most 32 evenly spaced
    rows of ``Y`` (:func:`pilot_rows`), batched together; each candidate's
    ``S = (mu I + A^T A)^{-1}`` comes from one eigendecomposition of the smaller Gram matrix.
    A candidate's residual is ``mu ||w_{k+1} - w_k||``, the change of the unscaled multiplier
    (how far from its fixed point the iteration still is, in the units of ``A^T y``). The
    candidate whose residual first falls below ``1e-5 ||A^T y||`` wins (tested every 5
    iterations; ties go to the smaller residual); if none does, the one with the smallest
    residual after 60 iterations.

    Cost: one eigendecomposition of a ``min(M, N)`` square matrix and at most ``9 x 60``
    iterations on the pilot rows: small against coding thousands of signals, dominant for a
    handful. To code many small batches of the same kind, compute it once and pass ``mu=``.

    Y : (B, M) signals like those to be coded. Returns mu > 0.
    """
    if not isinstance(problem, LassoProblem):
        raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
    Y = check_signals(Y, problem.n_features, problem.A)
    with torch.no_grad():
        return trial_mu(problem, Y)


def resolve_mu(problem: LassoProblem, mu: Any, Y: torch.Tensor) -> float:
    """``mu`` of :func:`lsalsa.salsa` as a number: "auto" runs the trial on ``Y`` (checked)."""
    if isinstance(mu, str):
        if mu != "auto":
            raise LsalsaError(f"mu: expected a number > 0 or 'auto', got {mu!r}")
        return trial_mu(problem, Y)
    return check_positive(mu, "mu")


def trial_mu(problem: LassoProblem, Y: torch.Tensor) -> float:
    """:func:`auto_mu` on checked signals ``Y: (B, M)``, without autograd."""
    A = problem.A
    N = A.shape[1]
    scale = float(torch.linalg.vector_norm(A) ** 2) / N
    if Y.shape[0] == 0:
        return scale
    sig, Q = _gram_eigen(A)
    rank = Q.shape[0]
    rows = pilot_rows(Y.shape[0], Y.device, min(PILOT_ROWS, max(4, _MAX_FLOPS // (4 * rank * N))))
    AtY = Y[rows] @ A  # (P, N), A^T y of the pilot rows
    mus = torch.tensor(FACTORS, dtype=A.dtype, device=A.device) * scale  # (K,)
    K = len(FACTORS)
    weights = (sig / (mus[:, None] + sig))[:, None, :]  # (K, 1, r)
    alphas = problem.thresholds if problem.uniform_alpha() is None else problem.thresholds[:1]
    # (K, 1, N): clamp with bounds broadcast along the last dimension only is 5x slower
    hi = (alphas[None, :] / mus[:, None]).expand(K, N)[:, None, :].contiguous()
    update = _candidate_updates(AtY, Q, weights, mus[:, None, None])
    W = AtY.expand(K, -1, -1).clone()  # x_0 = w_0 = A^T y, so v_0 = x_0
    V, scratch, W_prev = W.clone(), torch.empty_like(W), torch.empty_like(W)
    level = LEVEL * float(torch.linalg.vector_norm(AtY))
    residuals = []
    for k in range(ITERATIONS):
        check = k % CHECK_EVERY == CHECK_EVERY - 1
        if check:
            W_prev.copy_(W)
        W, V, _ = salsa_step(W, V, update, -hi, hi, RELAXATION / 2, scratch)
        # a norm and (on a GPU) a device sync per test: the first candidate below the level
        # wins, and the rest of the trial could not change that
        if check:
            change = torch.linalg.vector_norm(W_prev.sub_(W).flatten(1), dim=1) * mus  # (K,)
            residuals.append(change)
            if bool((change <= level).any()):
                break
    R = torch.stack(residuals).cpu()  # (checks, K) unscaled residuals mu |w_{k+1} - w_k|
    hit = R <= level
    first = torch.where(hit.any(0), hit.int().argmax(0), torch.full((K,), R.shape[0]))
    score = first.double() + R[-1] / (R[-1].max() + torch.finfo(R.dtype).tiny)  # ties: last residual
    return float(mus[int(torch.argmin(score))])


def _gram_eigen(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The nonzero eigenvalues ``sig: (r,)`` of ``A^T A`` and orthonormal eigenvectors ``Q: (r, N)``
    (rows), from the smaller Gram matrix, so that ``A^T (mu I + A A^T)^{-1} A = Q^T diag(sig /
    (mu + sig)) Q`` and ``mu S = I - Q^T diag(sig / (mu + sig)) Q`` for every mu at once."""
    M, N = A.shape
    if N <= M:
        sig, V = torch.linalg.eigh(A.T @ A)
        return sig.clamp_min(0), V.T
    sig, U = torch.linalg.eigh(A @ A.T)
    keep = sig > sig[-1] * torch.finfo(A.dtype).eps * M
    sig, U = sig[keep], U[:, keep]
    return sig.clamp_min(0), (U.T @ A) / sig.sqrt()[:, None]


def _candidate_updates(AtY: torch.Tensor, Q: torch.Tensor, weights: torch.Tensor, mus: torch.Tensor):
    """The x-update of every candidate at once (see :mod:`lsalsa.solvers.iteration`), on
    ``(K, P, N)`` iterates: with each ``S`` formed while it is small, else through ``Q``."""
    K, N = mus.shape[0], Q.shape[1]
    if K * N * N <= _MAX_DENSE:
        eye = torch.eye(N, dtype=Q.dtype, device=Q.device)
        muS = eye - (Q.T * weights) @ Q  # (K, N, N), symmetric
        return precomputed_update(2 * (AtY @ muS) / mus, 2 * muS - eye)

    def factored(W: torch.Tensor, out: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        # v = 2 x - w with x = S (A^T y + mu w); S never formed, ``out`` unused
        P = AtY + mus * W
        return 2 * (P - ((P @ Q.T) * weights) @ Q) / mus - W, None

    return factored
