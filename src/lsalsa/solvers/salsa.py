"""SALSA: the ADMM of Algorithms 1 and 2, for one dictionary or several (MCA)."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .._validation import check_positive, check_signals
from ..errors import LsalsaError
from ..linalg import splitting_operator
from ..prox import soft_threshold
from ..problem import LassoProblem
from .support import cpu_kernel_available, row_certifier, solve_on_support
from ._common import Callback, SolverResult, check_check_every, check_run_args, prox_threshold, row_blocks

DEFAULT_MU = 1.0
"""The fixed penalty of earlier versions and the encoders' default; ``salsa`` now defaults to
``mu="auto"`` (:func:`auto_mu`). The paper's experiments fix ``mu = 10``; pass it explicitly."""
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
    mu = check_positive(mu, "mu")
    return problem.A.T, splitting_operator(problem.A, mu, method), prox_threshold(problem, mu)


def salsa_step(
    X: torch.Tensor,
    D: torch.Tensor,
    B: torch.Tensor,
    S: torch.Tensor,
    mu: float,
    threshold: torch.Tensor | float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SALSA iteration / LSALSA layer (Alg. 2 lines 4-6, Alg. 4 loop body).

    ``u = soft(x + d; alpha/mu)``, ``x = S (W_e y + mu (u - d))``, ``d = d - u + x``.

    X, D: (B, N) current iterates; B: (B, N) the filtered input ``Y W_e^T``; S: (N, N).
    Returns the new ``(X, D)``.
    """
    # W = u - d carries both updates: x = S (b + mu W) and d - u + x = x - W; five passes over
    # (B, N) plus one GEMM instead of seven.
    W = soft_threshold(X + D, threshold) - D
    X_new = torch.add(B, W, alpha=mu) @ S.T
    return X_new, X_new - W


def salsa_readout(X: torch.Tensor, D: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """The sparse code after T iterations: ``u = soft(x_T + d_T; alpha/mu)``.

    Algorithms 3/4 print ``soft(x_T)``; but at the ADMM fixed point ``x = u`` is already the
    lasso solution, so shrinking x again would bias it by alpha/mu and truncated SALSA could never
    reach the optimal codes. ``u``, the ADMM's sparse variable, is the one that converges to them.
    """
    return soft_threshold(X + D, threshold)


# auto_mu's trial: candidates mu = scale * 2^(j/2), j = -6..2 (scale = mean of diag(A^T A), 1
# for unit-norm atoms), each run for _AUTO_ITERS iterations on at most _AUTO_ROWS signals.
_AUTO_FACTORS = tuple(2.0 ** (j / 2) for j in range(-6, 3))
_AUTO_ROWS = 32
# 30 iterations judge the transient: on the M = 1024, N = 2048 MCA problem they picked mu = 1,
# which needs 2x the iterations of mu = 0.5 to a 1e-6 gap; 60 picked 0.5 there and stayed within
# 1.15x of the best everywhere else.
_AUTO_ITERS = 60
# The trial always runs over-relaxed: with relaxation 1 its residual misjudged one problem by 8x,
# while the mu picked at 1.8 was within 1.3x of the best for plain SALSA too.
_AUTO_RELAXATION = 1.8
# A candidate "has converged" once its residual is below this fraction of ||A^T y||; on problems
# that converge within the trial the residuals end at rounding noise, so the first to get there
# wins rather than the smallest noise.
_AUTO_LEVEL = 1e-5
_AUTO_FLOPS = 2 ** 27  # cap on pilot rows x (4 r N) flops per iteration: 16 rows at N = 2048
_AUTO_DENSE = 2 ** 22  # form the candidates' S explicitly while C N^2 stays below this


def auto_mu(problem: LassoProblem, Y: Any) -> float:
    """SALSA's default penalty (``mu="auto"``): the best of a short trial run on a few signals.

    Why a trial: SALSA's iteration count is V-shaped in log(mu), and where the bottom lies is
    set by the spectrum of ``A^T A`` restricted to the atoms the codes actually use (the
    ADMM rate for a quadratic is best at ``mu = sqrt(lambda_min lambda_max)`` of its Hessian,
    Ghadimi et al. 2015; here the Hessian is the Gram matrix of the support), so by the
    dictionary *and* by alpha and the signals. On real problems (MNIST patches, digits with DCT
    and learned dictionaries, two-dictionary MCA) the best mu ranged over 0.35-1 for unit-norm
    atoms, and a factor of 2 away cost up to 2x the iterations. No closed form from the
    dictionary alone (``sqrt(lambda_min^+ lambda_max)`` of ``A^T A``, its mean eigenvalue, the
    restricted spectrum of typical supports) nor residual balancing (Boyd et al. 2011,
    section 3.4.1) came within 1.5x of the best iteration count on all of them; this trial
    came within 1.15x (over-relaxed) and 1.3x (plain SALSA).

    How: with ``s = trace(A^T A) / N``, the candidates ``mu = s * 2^(j/2)``, ``j = -6..2``
    (0.125 s .. 2 s) each run 60 over-relaxed (1.8) SALSA iterations on at most 32 evenly
    spaced rows of ``Y``, batched together; each candidate's ``S = (mu I + A^T A)^{-1}`` comes
    from one eigendecomposition of the smaller Gram matrix (``A^T A`` or ``A A^T``). A
    candidate's residual is ``mu ||w_{k+1} - w_k||``, the change of the unscaled multiplier
    ``mu d`` (how far from its fixed point the iteration still is, in the units of ``A^T y``).
    The candidate whose residual first falls below ``1e-5 ||A^T y||`` wins (the trial stops
    there, tested every 5 iterations; ties go to the smaller residual); if none does, the one
    with the smallest residual after 60 iterations.

    Cost: one eigendecomposition of an ``min(M, N)`` square matrix and at most ``9 x 60``
    iterations on the pilot rows (fewer rows when ``N min(M, N)`` is large): small against
    coding thousands of signals, dominant for a handful. To code many small batches of the same
    kind, compute it once and pass ``mu=`` explicitly.

    Parameters
    ----------
    problem : the LassoProblem.
    Y : (B, M) signals like those to be coded (at most 32 rows are used).

    Returns
    -------
    mu : float > 0.
    """
    if not isinstance(problem, LassoProblem):
        raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
    Y = check_signals(Y, problem.n_features, problem.A)
    with torch.no_grad():
        return _auto_mu(problem, Y)


def _auto_mu(problem: LassoProblem, Y: torch.Tensor) -> float:
    A = problem.A
    M, N = A.shape
    scale = float(torch.linalg.vector_norm(A) ** 2) / N
    if Y.shape[0] == 0:
        return scale
    # A^T (mu I + A A^T)^{-1} A = Q^T diag(sig / (mu + sig)) Q with Q the orthonormal
    # eigenvectors of A^T A for its nonzero eigenvalues sig, taken from the smaller Gram:
    # S = (I - Q^T diag(sig / (mu + sig)) Q) / mu for every mu at once.
    if N <= M:
        sig, V = torch.linalg.eigh(A.T @ A)
        Q = V.T
    else:
        sig, U = torch.linalg.eigh(A @ A.T)
        keep = sig > sig[-1] * torch.finfo(A.dtype).eps * M
        sig, U = sig[keep], U[:, keep]
        Q = (U.T @ A) / sig.sqrt()[:, None]
    sig = sig.clamp_min(0)
    r = Q.shape[0]
    n_rows = min(Y.shape[0], _AUTO_ROWS, max(4, _AUTO_FLOPS // (4 * r * N)))
    rows = torch.linspace(0, Y.shape[0] - 1, n_rows, device=Y.device).round().long()
    B = Y[rows] @ A  # (P, N)
    mus = torch.tensor(_AUTO_FACTORS, dtype=A.dtype, device=A.device) * scale  # (C,)
    C = len(_AUTO_FACTORS)
    w = (sig / (mus[:, None] + sig))[:, None, :]  # (C, 1, r)
    thr = problem.thresholds if problem.uniform_alpha() is None else problem.thresholds[:1]
    # (C, 1, N): clamp_ with bounds broadcast along the last dimension is 5x slower
    t = (thr[None, :] / mus[:, None]).expand(C, N)[:, None, :].contiguous()
    lo = -t
    m = mus[:, None, None]
    # the trial iterates in (w, v = 2 x - w) like _salsa_loop: v_{k+1} = 2 B S^T + w_{k+1} (2 mu S^T - I)
    if C * N * N <= _AUTO_DENSE:
        eye = torch.eye(N, dtype=A.dtype, device=A.device)
        P = eye - (Q.T * w) @ Q  # (C, N, N): mu S
        BS2 = 2 * (B @ P) / m
        Mc = 2 * P - eye

        def v_update(Z, out):
            return torch.baddbmm(BS2, Z, Mc, out=out)
    else:  # S never formed: new tensors, ``out`` unused
        def v_update(Z, out):
            V = B + m * Z
            return 2 * (V - ((V @ Q.T) * w) @ Q) / m - Z

    Z = B.expand(C, -1, -1).clone()  # x_0 = w_0 = A^T y, so v_0 = x_0
    V, Cl = Z.clone(), torch.empty_like(Z)
    # |w_{k+1} - w_k| = rho |v' - w| / 2 with v' = 2 u - v below; level (C,) in the same units
    level = _AUTO_LEVEL * torch.linalg.vector_norm(B) / mus * (2 / _AUTO_RELAXATION)
    residuals = []
    for k in range(_AUTO_ITERS):
        # in place: the trial's tensors are small and its time goes to the number of kernel calls
        V.sub_(torch.clamp(V, lo, t, out=Cl), alpha=2.0)
        # tested every 5 iterations (a norm, and a device sync, each): the first candidate to
        # get below the level wins, and the rest of the trial could not change that
        if k % 5 == 4:
            residuals.append(torch.linalg.vector_norm(torch.sub(V, Z, out=Cl).flatten(1), dim=1))
            if bool((residuals[-1] <= level).any()):
                break
        Z.lerp_(V, _AUTO_RELAXATION / 2)
        V = v_update(Z, V)
    # (checks, C) unscaled residuals mu |w_{k+1} - w_k|
    R = torch.stack(residuals).cpu() * (mus.cpu() * _AUTO_RELAXATION / 2)
    hit = R <= _AUTO_LEVEL * float(torch.linalg.vector_norm(B))
    first = torch.where(hit.any(0), hit.int().argmax(0), torch.full((C,), R.shape[0]))
    score = first.double() + R[-1] / (R[-1].max() + torch.finfo(R.dtype).tiny)  # ties: last residual
    return float(mus[int(torch.argmin(score))])


def _resolve_mu(problem: LassoProblem, mu: Any, Y: torch.Tensor) -> float:
    if isinstance(mu, str):
        if mu != "auto":
            raise LsalsaError(f"mu: expected a number > 0 or 'auto', got {mu!r}")
        return _auto_mu(problem, Y)
    return check_positive(mu, "mu")


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
) -> SolverResult:
    """Solve the lasso (Eq. 4/6) for every row of ``Y: (B, M)`` by SALSA (Alg. 1/2).

    With ``n_iter`` it starts at ``x = A^T y, d = 0`` and returns ``u = soft(x_T + d_T;
    alpha_i / mu)`` (see :func:`salsa_readout`), which is what an untrained ``LSALSA`` with T
    layers computes. Run to convergence it starts at ``x = S A^T y``, the x-update from
    ``u = d = 0`` (a few iterations fewer).

    Parameters
    ----------
    mu : the ADMM penalty (> 0), or "auto" (default): :func:`auto_mu`, the best of a short
        trial run on a few rows of ``Y`` (its docstring says how and why). A number gives the
        paper's iteration with that fixed mu (the paper uses 10; :data:`DEFAULT_MU` is 1).
    n_iter : run exactly this many iterations (``tol`` and ``max_iter`` are then ignored).
    tol, max_iter : otherwise stop when the relative change of x is below ``tol``. As a guide,
        on 10,000 MNIST 10x10 patches (float32, no polish) tol = 2e-4 reached a relative
        objective gap of 7e-7, 1e-4 of 3e-7 and 1e-6 of 7e-11 (``benchmarks/bench_solvers.py``,
        ``bench_polish.py``); the gap is roughly quadratic in the code's error, the rule linear.
    callback : ``callback(k, U)`` after iteration k with the current code; True stops the run.
    method : how ``S`` is factored: "auto", "direct" or "woodbury".
    relaxation : the ADMM relaxation parameter ``rho`` in (0, 2) (Eckstein & Bertsekas 1992;
        Boyd et al. 2011, section 3.4.3), applied to the sparse variable,
        ``u <- rho u + (1 - rho) x_{k-1}``, before the x- and d-updates. 1 is SALSA as printed,
        the iteration LSALSA unrolls; 1.8 needed 1.5-2.5x fewer iterations to a 1e-6 objective
        gap on every problem tried. None (default): 1.8 when running to convergence, 1 with
        ``n_iter``, so that ``salsa(n_iter=T)`` stays equal to an untrained ``LSALSA(T)``.
    check_every : test the stopping rule every this many iterations, so the reported
        ``n_iter`` is a multiple of it (or ``max_iter``); each test costs five passes over
        ``(B, N)`` (x before and after the step, their difference, two norms) and, on a GPU, a
        device synchronisation. None (default): 10. The rule itself (change between
        consecutive iterates) is the same whatever the spacing.
    polish : at each check, try the exact solution on each row's current support and signs
        (:func:`lsalsa.solvers.solve_on_support`) and keep it where it passes the lasso's KKT
        conditions: those rows are then optimal to rounding and stop iterating. On a CPU with at
        most 256 atoms every running row is tried by a compiled loop, and where the KKT test
        fails, up to 16 active-set corrections follow (atoms whose sign flipped leave, else the
        most violating one enters); otherwise only rows whose signs have not changed since the
        last check are tried, once per sign pattern. None (default): True when running to
        convergence on a CPU with at most 256 atoms, or with at least 512 atoms anywhere (on
        10,000 MNIST 10x10 patches every row was certified at iteration 10, in half the time of
        the unpolished run); not allowed with ``n_iter``. The first polished call on a CPU in a
        process loads the compiled loop (about 0.5 s).

    When running to convergence each row stops on its own, at the first check where its
    relative change is below ``tol`` or its polished code is certified; the rows still
    running go on in a smaller batch.

    Returns
    -------
    SolverResult with ``X: (B, N)``; ``n_iter`` is the iterations of the longest-running row,
    ``change`` the largest last relative change of a row (0 for a polished row).
    """
    Y, iters, truncated, tol = check_run_args(problem, Y, n_iter, tol, max_iter)
    relaxation = (1.0 if truncated else CONVERGENT_RELAXATION) if relaxation is None else _check_relaxation(relaxation)
    check_every = check_check_every(check_every)
    polish = check_polish(polish, truncated, problem.n_atoms, Y.device)
    with torch.no_grad():
        mu = _resolve_mu(problem, mu, Y)
        W_e, S, threshold = salsa_operators(problem, mu, method)
        if truncated:
            B = Y @ W_e.T
            runs = [_salsa_loop(B[r], S, mu, threshold, iters, callback, relaxation) for r in _blocks(B, callback)]
            U, change = torch.cat([u for u, _, _ in runs]), max(c for _, _, c in runs)
            return SolverResult(U, max(k for _, k, _ in runs), change < tol, change)
        # S A^T y, the x-update's constant term and the start, in one product with Y
        BS = Y @ (W_e.T @ S.T)
        blocks = _blocks(BS, callback)
        B = Y @ W_e.T if polish else None  # A^T y, for the support solve only
        # the polish: every running row tried at every check by the compiled row loop, with
        # corrections (eager), or rows whose signs held since the last check by batched LAPACK
        eager = polish and eager_polish(Y.device, problem.n_atoms)
        finish = (lambda U, C: solve_on_support(problem.gram, C, problem.thresholds, U)) if polish and not eager else None
        runs = []
        for r in blocks:
            certify = row_certifier(problem.gram, B[r], problem.thresholds, threshold, _POLISH_STEPS) if eager else None
            runs.append(_salsa_converge(BS[r], None if B is None else B[r], S, mu, threshold, iters, tol, callback,
                                        relaxation, check_every, finish, certify))
        U, k, changes = torch.cat([u for u, _, _ in runs]), max(k for _, k, _ in runs), torch.cat([c for _, _, c in runs])
    change = float(changes.max()) if changes.numel() else 0.0
    return SolverResult(U, k, bool((changes < tol).all()), change)


def _blocks(iterate: torch.Tensor, callback: Callback | None) -> list[slice]:
    """Rows are independent: without a callback (which sees the whole batch) they run in
    cache-sized blocks of the ``(B, N)`` iterates, one after the other."""
    return row_blocks(iterate) if callback is None else [slice(None)]


# Where the support solve is cheap, polish=None polishes and every running row is tried at every
# check, with active-set corrections. On a CPU small supports go to a compiled row loop
# (support._support_kernel, about 2 us a row of one core at N = 100). On 10,000 MNIST 10x10
# patches SALSA had the exact signs of 54% of the rows at iteration 10, and up to 16 corrections
# from there certified all of them: the run took 10 iterations and half the time of the unpolished
# one (paired with SPAMS' LARS: 1.96x its speed against 1.35x), at a 3e-11 objective gap instead of
# 7e-7. Elsewhere (torch's batched LAPACK, 5.5 us a row at N = 100) only rows whose signs held
# since the last check are tried, once per sign pattern and without corrections, and polish=None
# polishes from 512 atoms on: at N = 100 that polish cost more than it saved, while at N = 2048
# (an iteration: 34 us a row) 200 MCA mixtures to tol 1e-6 took 24.5 s polished against 74.9 s.
_POLISH_MIN_ATOMS = 512
_POLISH_STEPS = 16  # 4 and 8 left some rows to iteration 40, 16 and 32 none
_EAGER_MAX_ATOMS = 256  # on a CPU with more atoms, supports mostly exceed the kernel's 64


def eager_polish(device: torch.device, n_atoms: int) -> bool:
    """Whether the support solve is cheap enough to try every running row at every check."""
    return device.type == "cpu" and n_atoms <= _EAGER_MAX_ATOMS and cpu_kernel_available()


def check_polish(polish: Any, truncated: bool, n_atoms: int, device: torch.device) -> bool:
    """``polish`` of :func:`salsa` resolved: None means True when converging, on a CPU with at
    most 256 atoms (see :func:`eager_polish`) or anywhere with at least 512."""
    if polish is None:
        return not truncated and (eager_polish(device, n_atoms) or n_atoms >= _POLISH_MIN_ATOMS)
    if not isinstance(polish, bool):
        raise LsalsaError(f"polish: expected True, False or None, got {polish!r}")
    if polish and truncated:
        raise LsalsaError("polish: True needs a run to convergence; with n_iter the run is truncated SALSA")
    return polish


def _check_relaxation(relaxation: Any) -> float:
    try:
        r = float(relaxation)
    except (TypeError, ValueError) as exc:
        raise LsalsaError(f"relaxation: expected a number in (0, 2), got {relaxation!r}") from exc
    if not 0.0 < r < 2.0:
        raise LsalsaError(f"relaxation: expected a number in (0, 2), got {relaxation!r}")
    return r


def _salsa_loop(
    B: torch.Tensor,
    S: torch.Tensor,
    mu: float,
    threshold: torch.Tensor | float,
    iters: int,
    callback: Callback | None,
    relaxation: float,
) -> tuple[torch.Tensor, int, float]:
    """Truncated SALSA: ``iters`` iterations on (B, N) buffers, without allocating per iteration.

    Written in ``w_k = u_hat_k - d_{k-1}`` (the quantity :func:`salsa_step` calls W; ``u_hat_k =
    rho u_k + (1 - rho) x_{k-1}`` is the relaxed sparse variable, ``u_k`` itself when rho = 1):
    with ``d_k = x_k - w_k`` and ``u_{k+1} = soft(x_k + d_k) = soft(2 x_k - w_k)``, so that
    ``w_{k+1} - w_k = rho (u_{k+1} - x_k)``, one iteration is (rows, as everywhere)

        w_{k+1} = w_k + rho (x_k - clamp(2 x_k - w_k; +-alpha/mu) - w_k)
        x_{k+1} = B S^T + mu w_{k+1} S^T

    (``soft(v) = v - clamp(v)``), and the code read out after k iterations is ``u_{k+1} =
    soft(2 x_k - w_k)``. ``x_0 = B``, ``w_0 = x_0`` (``d_0 = 0``). The loop carries ``w_k`` and
    ``v_k = 2 x_k - w_k`` instead of ``x_k``: since ``x_k = (v_k + w_k) / 2``,

        w_{k+1} = lerp(w_k, v_k - 2 clamp(v_k), rho / 2)
        v_{k+1} = 2 B S^T + w_{k+1} (2 mu S^T - I)

    Mathematically identical to iterating :func:`salsa_step`; the products ``B S^T`` are formed
    once, so an iteration is one GEMM (``addmm`` into the v buffer) and three passes over
    ``(B, N)`` (clamp, subtract, lerp) whatever rho, where the x form needs four with relaxation
    (on 10,000 MNIST patches a whole run to convergence took 5% less time) and
    :func:`salsa_step` six passes and six allocations.

    Returns ``(U, k, change)`` with the last iteration's relative change.
    """
    it = _Iteration(B @ S.T, B, S, mu, threshold, relaxation)
    k = 0
    for k in range(1, iters + 1):
        if callback is not None or k == iters:
            it.save_x()  # for the last iteration's change
        it.step()
        if callback is not None and callback(k, it.readout()):
            break
    return it.readout(), k, float(it.row_change().max()) if B.shape[0] and k else math.inf


class _Iteration:
    """SALSA's state on preallocated (B, N) buffers (see :func:`_salsa_loop`): ``z_k = w_k`` and
    ``v_k = 2 x_k - w_k``, from which ``x_k = (v_k + z_k) / 2``."""

    def __init__(self, BS: torch.Tensor, x0: torch.Tensor, S: torch.Tensor, mu: float, threshold: torch.Tensor | float,
                 relaxation: float):
        """BS: (B, N) the constant ``S A^T y`` of the x-update; x0: (B, N) the start ``x_0 = w_0``."""
        self.BS2, self.threshold, self.half_rho = 2 * BS, threshold, relaxation / 2
        # contiguous: MKL's GEMM on a transposed view, or with beta = 2, was 5-8% slower
        self.M = (2 * mu * S.T - torch.eye(S.shape[0], dtype=S.dtype, device=S.device)).contiguous()
        self.Z, self.V = x0.clone(), x0.clone()  # v_0 = 2 x_0 - w_0 = x_0
        self.C, self.X_prev = torch.empty_like(x0), torch.empty_like(x0)
        if isinstance(threshold, torch.Tensor):
            self.lo, self.hi = -threshold, threshold
        else:
            self.lo, self.hi = -float(threshold), float(threshold)

    def step(self) -> None:
        V, Z = self.V, self.Z
        torch.clamp(V, self.lo, self.hi, out=self.C)
        Z.lerp_(V.sub_(self.C, alpha=2.0), self.half_rho)  # v - 2 clamp(v) = 2 u - v
        torch.addmm(self.BS2, Z, self.M, out=V)

    def readout(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``u = soft(v) = soft(2 x - w)``, the code after the iterations so far (of ``rows`` only if given)."""
        return soft_threshold(self.V if rows is None else self.V[rows], self.threshold)

    def save_x(self) -> None:
        """Keep the current ``x`` for the next :meth:`row_change`."""
        torch.lerp(self.V, self.Z, 0.5, out=self.X_prev)

    def row_change(self) -> torch.Tensor:
        """Each row's ``||x_k - x_j|| / ||x_k||``, ``(B,)``, with ``x_j`` from the last :meth:`save_x`."""
        X = torch.lerp(self.V, self.Z, 0.5, out=self.C)
        num = torch.linalg.vector_norm(self.X_prev.sub_(X), dim=1)
        return num / torch.linalg.vector_norm(X, dim=1).clamp_min(torch.finfo(X.dtype).tiny)

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every row but ``rows`` (indices into the current batch)."""
        self.Z, self.V, self.BS2 = self.Z[rows], self.V[rows], self.BS2[rows]
        self.C, self.X_prev = torch.empty_like(self.Z), torch.empty_like(self.Z)


def _salsa_converge(
    BS: torch.Tensor,
    B: torch.Tensor | None,
    S: torch.Tensor,
    mu: float,
    threshold: torch.Tensor | float,
    max_iter: int,
    tol: float,
    callback: Callback | None,
    relaxation: float,
    check_every: int,
    finish: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None,
    certify: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, int, torch.Tensor]:
    """:func:`_salsa_loop` run to convergence, row by row.

    Every ``check_every`` iterations each running row is tested: it stops when its relative
    change is below ``tol``, or when an exact code for it is certified: by ``certify(V, rows,
    out, last)`` (:func:`lsalsa.solvers.support.row_certifier`), tried on every running row whose
    signs are not those of its last failed try, or by ``finish(U, C)``
    (:func:`solve_on_support`), tried only on rows whose signs (support included) are the same
    as at the previous check, and once per sign pattern. Stopped rows leave the batch, so the
    iterations get cheaper as rows converge. ``BS: (B, N)`` is ``S A^T y``, ``B: (B, N)``
    ``A^T y`` (read by ``finish`` only; None without it).

    Returns ``(U, k, changes)`` with each row's last relative change ``(B,)``.
    """
    n = BS.shape[0]
    out = torch.empty_like(BS)
    changes = torch.full((n,), math.inf, dtype=BS.dtype, device=BS.device)
    rows = torch.arange(n, device=BS.device)  # the rows still running, in batch order
    # from x = S A^T y, the x-update of u = d = 0: on 10,000 MNIST patches 42 iterations to a 1e-6
    # gap instead of 45 from x = A^T y (no extra work: the product S A^T y is formed anyway)
    it = _Iteration(BS, BS, S, mu, threshold, relaxation)
    signs, tried = None, torch.zeros(n, dtype=torch.bool, device=BS.device)  # finish's sign patterns
    # certify's hash of each row's last tried sign pattern (certify runs on CPU tensors only)
    last = torch.zeros(n, dtype=torch.int64) if certify is not None else None
    k = 0
    for k in range(1, max_iter + 1):
        if not rows.numel():
            k -= 1
            break
        check = k % check_every == 0 or k == max_iter
        if check:
            it.save_x()
        it.step()
        if check:
            change = it.row_change()
            done = change < tol
            U = None  # without finish only the rows that stop are read out
            written = None  # rows whose code certify has written to out already
            if certify is not None:
                written = certify(it.V, rows, out, last)
                change[written], done[written] = 0.0, True
            elif finish is not None:
                U = it.readout()
                new_signs = torch.sign(U).to(torch.int8)
                stable = torch.zeros_like(done) if signs is None else (new_signs == signs).all(dim=1)
                trial = torch.nonzero(stable & ~tried & ~done).flatten()
                tried, signs = stable, new_signs  # a pattern is tried once while it lasts; a change re-arms it
                if trial.numel():
                    Xf, ok = finish(U[trial], B[rows[trial]])
                    hit = trial[ok]
                    U[hit], change[hit], done[hit] = Xf[ok], 0.0, True
            changes[rows] = change
            if k == max_iter:
                done[:] = True
            if done.any():
                stop = torch.nonzero(done if written is None else done & ~written).flatten()
                out[rows[stop]] = it.readout(stop) if U is None else U[stop]
                keep = torch.nonzero(~done).flatten()
                rows = rows[keep]
                it.keep(keep)
                tried = tried[keep]
                if signs is not None:
                    signs = signs[keep]
                if last is not None:
                    last = last[keep]
        if callback is not None:
            current = out.clone()
            current[rows] = it.readout()
            if callback(k, current):
                out = current
                break
    if rows.numel() and k < max_iter:  # stopped by the callback
        out[rows] = it.readout()
    return out, k, changes
