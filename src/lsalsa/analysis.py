"""What a trained LSALSA has learned: the paper's Section 5 as measurements.

Theorem 1 (Eq. 16-17): layer t of LSALSA, ``x_t = S_t (W_e y + mu_t (u_t - d_{t-1}))``, is the
exact minimiser in ``x`` of a *learned* Augmented Lagrangian

    L_hat_A(x, u, d) = f_hat_1(x) + sum_i mu_t theta_i |u_i| + mu_t/2 ||u - x - d||^2 - mu_t/2 ||d||^2,
    f_hat_1(x)       = 1/2 x^T [S_t^{-1} - mu_t I] x - (W_e y)^T x + 1/2 y^T y,

and its u- and d-updates are ADMM's on it (the l1 weights ``mu_t theta_i`` are ``alpha_i`` at the
initial thresholds ``theta = alpha / mu``). At the initial weights (Eq. 14) ``L_hat_A = L_A``
(Remark 2). Eq. 19-20 and 30 name what training changed: the learned curvature
``P = S^{-1} - (mu I + A^T A)``, zero at initialisation.

A quadratic form only sees the symmetric part of its matrix, so for a learned ``S`` that is not
symmetric ``f_hat_1`` uses ``sym(S^{-1}) = (S^{-1} + S^{-T}) / 2``: the proof's integration of
Eq. 43 needs ``S^{-1}`` symmetric (Section 5 analyses symmetric ``S``), and the Theorem 1 check
then measures how far from a minimiser the skew part leaves each x-update instead of assuming
it away. Everything is computed in float64 from the encoder's parameters. The encoders of
``lsalsa.pipeline`` are untied by default (one ``S_t`` per layer): the quantities then come per
layer.

Functions: :func:`learned_cost`, :func:`theorem1_residual`, :func:`learned_curvature`,
:func:`descent_comparison` (Eq. 30's direction against the plain one, on held-out signals).
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ._validation import as_tensor, check_float_matrix, check_positive_int
from .encoders.lsalsa import LSALSA
from .errors import LsalsaError
from .problem import LassoProblem
from .prox import soft_threshold
from .solvers.iteration import direct_update, filtered_input, salsa_step

SINGULAR_COND = 1e14
"""A condition number of ``S`` above this (float64's 1/eps is 4.5e15) is treated as singular."""
ILL_CONDITIONED = 1e8
"""Above this, residuals grow to about ``cond(S) * 1e-16`` and a warning says so."""


@dataclass(frozen=True)
class _Layer:
    S: torch.Tensor  # (N, N)
    S_inv: torch.Tensor  # (N, N)
    mu: float
    threshold: torch.Tensor  # (N,) the u-update's soft threshold theta
    cond: float


def _layers(encoder: LSALSA, problem: LassoProblem) -> tuple[torch.Tensor, list[_Layer]]:
    """``W_e: (N, M)`` and the distinct layers' operators in float64: one for a tied encoder with
    a fixed penalty, else T (untied ``S_t`` or learned ``mu_t``)."""
    if not isinstance(encoder, LSALSA):
        raise LsalsaError(f"encoder: the analysis of Section 5 is of LSALSA encoders, got {type(encoder).__name__}")
    if not isinstance(problem, LassoProblem):
        raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
    if (problem.n_features, problem.n_atoms) != (encoder.n_features, encoder.n_atoms):
        raise LsalsaError(f"problem: A is {problem.n_features} x {problem.n_atoms}, the encoder's W_e^T is "
                          f"{encoder.n_features} x {encoder.n_atoms}")
    if tuple(problem.dict_sizes) != tuple(encoder.dict_sizes):
        raise LsalsaError(f"problem: dictionary sizes {problem.dict_sizes} differ from the encoder's {encoder.dict_sizes}")
    with torch.no_grad():
        S = encoder.S.detach().to("cpu", torch.float64)
        mus = encoder._layer_mu().tolist() if encoder.learn_mu else [encoder.mu] * encoder.n_layers
        theta = encoder.thresholds.to("cpu", torch.float64)
    S_all = S if S.ndim == 3 else S.expand(encoder.n_layers, -1, -1)
    theta_all = theta if theta.ndim == 2 else theta.expand(encoder.n_layers, -1)
    n_distinct = 1 if S.ndim == 2 and not encoder.learn_mu else encoder.n_layers
    layers = []
    for t in range(n_distinct):
        S_t = S_all[t]
        S_inv, cond = _inverse(S_t, f"S of layer {t + 1}" if n_distinct > 1 else "S")
        layers.append(_Layer(S_t, S_inv, float(mus[t]), theta_all[t], cond))
    return encoder.W_e.detach().to("cpu", torch.float64), layers


def _inverse(S: torch.Tensor, name: str) -> tuple[torch.Tensor, float]:
    """``S^{-1}`` and ``cond_2(S)``; a singular ``S`` is an error, an ill-conditioned one a warning."""
    if not bool(torch.isfinite(S).all()):
        raise LsalsaError(f"{name} holds NaN or Inf: the encoder diverged; Theorem 1 needs an invertible S")
    sv = torch.linalg.svdvals(S)
    cond = float(sv[0] / sv[-1]) if float(sv[-1]) > 0 else float("inf")
    if not cond < SINGULAR_COND:
        raise LsalsaError(f"{name} is singular (condition number {cond:.3g}): Theorem 1's learned Lagrangian "
                          f"(Eq. 17) needs S^-1, which does not exist")
    if cond > ILL_CONDITIONED:
        warnings.warn(f"{name} is ill-conditioned (condition number {cond:.3g}): the Theorem 1 residuals and P "
                      f"carry errors of about {cond * 1e-16:.1g} relative", stacklevel=3)
    return torch.linalg.inv(S), cond


def _sym(Q: torch.Tensor) -> torch.Tensor:
    return (Q + Q.T) / 2


def _f64(Z, n_columns: int, name: str, n_rows: int | None = None) -> torch.Tensor:
    """Rows ``(B, n_columns)`` as a float64 CPU tensor (the analysis is float64 whatever the
    problem's dtype), finite."""
    t = as_tensor(Z, name).detach()
    if t.ndim != 2 or t.shape[1] != n_columns or (n_rows is not None and t.shape[0] != n_rows):
        want = f"({'B' if n_rows is None else n_rows}, {n_columns})"
        raise LsalsaError(f"{name}: expected shape {want}, got {tuple(t.shape)}")
    return check_float_matrix(t.to("cpu", torch.float64), name)


# ---- Theorem 1: the learned Augmented Lagrangian ---------------------------------------------------
class LearnedCost:
    """``L_hat_A`` of Theorem 1 (Eq. 16-17) and the original ``L_A`` (Eq. 11), per layer.

    Call ``cost(X, U, D, Y, layer=1) -> (B,)`` with ``X, U, D: (B, N)``, ``Y: (B, M)`` (rows);
    ``layer`` (1..T) picks ``S_t`` and ``mu_t`` where they differ per layer. ``cost.original(X,
    U, D, Y, layer)`` is ``L_A`` at the same penalty, ``cost.grad_x`` the x-gradient of ``L_hat_A``.
    """

    def __init__(self, encoder: LSALSA, problem: LassoProblem):
        self.W_e, self._layers = _layers(encoder, problem)
        self.A = problem.A.detach().to("cpu", torch.float64)
        self.alphas = problem.thresholds.to("cpu", torch.float64)  # alpha_i per atom, (N,)
        self.n_layers = encoder.n_layers

    def layer(self, t: int) -> _Layer:
        if not 1 <= t <= self.n_layers:
            raise LsalsaError(f"layer: expected 1..{self.n_layers}, got {t}")
        return self._layers[min(t, len(self._layers)) - 1]

    def __call__(self, X, U, D, Y, layer: int = 1) -> torch.Tensor:
        L = self.layer(layer)
        X, U, D, Y = self._inputs(X, U, D, Y)
        quad = 0.5 * ((X @ _sym(L.S_inv)) * X).sum(1) - 0.5 * L.mu * (X * X).sum(1)
        f1 = quad - (filtered_input(Y, self.W_e) * X).sum(1) + 0.5 * (Y * Y).sum(1)
        return f1 + U.abs() @ (L.mu * L.threshold) + self._coupling(X, U, D, L.mu)

    def original(self, X, U, D, Y, layer: int = 1) -> torch.Tensor:
        L = self.layer(layer)
        X, U, D, Y = self._inputs(X, U, D, Y)
        R = Y - X @ self.A.T
        return 0.5 * (R * R).sum(1) + U.abs() @ self.alphas + self._coupling(X, U, D, L.mu)

    def grad_x(self, X, U, D, Y, layer: int = 1) -> torch.Tensor:
        """``sym(S_t^{-1}) x - W_e y - mu_t (u - d)``: zero at LSALSA's x-update (Theorem 1)."""
        L = self.layer(layer)
        X, U, D, Y = self._inputs(X, U, D, Y)
        return X @ _sym(L.S_inv) - filtered_input(Y, self.W_e) - L.mu * (U - D)

    @staticmethod
    def _coupling(X, U, D, mu: float) -> torch.Tensor:
        R = U - X - D
        return 0.5 * mu * ((R * R).sum(1) - (D * D).sum(1))

    def _inputs(self, X, U, D, Y):
        N, M = self.W_e.shape
        X = _f64(X, N, "X")
        return (X, _f64(U, N, "U", len(X)), _f64(D, N, "D", len(X)), _f64(Y, M, "Y", len(X)))


def learned_cost(encoder: LSALSA, problem: LassoProblem) -> LearnedCost:
    """The learned Augmented Lagrangian ``L_hat_A`` of Theorem 1 for a (trained) LSALSA on
    ``problem`` (the dictionaries it was trained for)."""
    return LearnedCost(encoder, problem)


@dataclass(frozen=True)
class Theorem1Check:
    """Per layer t = 1..T, the largest relative residual over the signals of the three updates:

    x : ``||grad_x L_hat_A(x_t, u_t, d_{t-1})|| / ||W_e y + mu_t (u_t - d_{t-1})||`` (Theorem 1:
        0 up to rounding when ``S_t`` is symmetric; with an asymmetric ``S_t``, the skew part's share).
    x_field : ``||S_t^{-1} x_t - (W_e y + mu_t (u_t - d_{t-1}))||`` on the same scale: the linear system
        the x-update solves (0 up to rounding for any invertible ``S_t``; a gradient only when symmetric).
    u : of ``u_t = argmin_u sum mu_t theta_i |u_i| + mu_t/2 ||u - z||^2``, ``z = x_{t-1} + d_{t-1}``:
        the prox residual ``||u_t - soft(z; theta)|| / ||z||``.
    d : ``||d_t - (d_{t-1} - u_t + x_t)|| / max(||d_t||, ||x_t||)`` (ADMM's multiplier update).
    The iterates are the encoder's own (its layers' step, recorded; ``readout_error`` is their
    read-out's largest relative difference from ``encoder(Y)``). ``asymmetry`` and ``cond``:
    ``||S_t - S_t^T||_F / ||S_t||_F`` and ``cond_2(S_t)`` of each distinct layer.
    """

    x: np.ndarray
    x_field: np.ndarray
    u: np.ndarray
    d: np.ndarray
    asymmetry: np.ndarray
    cond: np.ndarray
    readout_error: float

    @property
    def max(self) -> float:
        return float(max(self.x.max(), self.u.max(), self.d.max()))


def _relative(R: torch.Tensor, scale: torch.Tensor) -> float:
    """The largest row ratio ``||r|| / scale`` (rows whose scale is 0 compare with 1)."""
    s = torch.where(scale > 0, scale, torch.ones_like(scale))
    return float((torch.linalg.vector_norm(R, dim=1) / s).max())


def theorem1_residual(encoder: LSALSA, problem: LassoProblem, Y, *, cost: LearnedCost | None = None) -> Theorem1Check:
    """Check Theorem 1 layer by layer on signals ``Y: (B, M)`` (see :class:`Theorem1Check`).
    ``cost``: :func:`learned_cost` of the same encoder and problem, to reuse its inverted ``S``."""
    cost = cost or LearnedCost(encoder, problem)
    Y = _f64(Y, problem.n_features, "Y")
    net = copy.deepcopy(encoder).to("cpu", torch.float64).eval()
    b = filtered_input(Y, cost.W_e)
    W = V = X = b  # the layers' start x_0 = W_e y, d_0 = 0 (w_0 = v_0 = x_0)
    states = [(W, V)]
    for t in range(1, encoder.n_layers + 1):
        L = cost.layer(t)
        W, V, X = salsa_step(W, V, direct_update(b, L.S, L.mu), -L.threshold, L.threshold, 0.5, None, None, X)
        states.append((W, V))
    last = cost.layer(encoder.n_layers).threshold
    readout = soft_threshold(X if encoder.readout == "x" else V, last)
    with torch.no_grad():
        ref = net(Y)
    readout_error = float(torch.linalg.vector_norm(readout - ref) / max(float(torch.linalg.vector_norm(ref)), 1e-300))
    res = {"x": [], "x_field": [], "u": [], "d": []}
    d_prev = torch.zeros_like(b)
    for t in range(1, encoder.n_layers + 1):
        L = cost.layer(t)
        (_, v_prev), (w, v) = states[t - 1], states[t]
        x, d = (v + w) / 2, (v - w) / 2  # v_t = x_t + d_t, w_t = x_t - d_t
        u = w + d_prev  # w_t = u_t - d_{t-1}
        rhs = b + L.mu * (u - d_prev)
        rhs_norm = torch.linalg.vector_norm(rhs, dim=1)
        res["x"].append(_relative(cost.grad_x(x, u, d_prev, Y, t), rhs_norm))
        res["x_field"].append(_relative(x @ L.S_inv.T - rhs, rhs_norm))
        # the prox residual u - soft(z; theta), zero exactly at the minimiser (a subgradient test
        # would read the rounding left in a reconstructed zero as a sign)
        res["u"].append(_relative(u - soft_threshold(v_prev, L.threshold), torch.linalg.vector_norm(v_prev, dim=1)))
        scale = torch.maximum(torch.linalg.vector_norm(d, dim=1), torch.linalg.vector_norm(x, dim=1))
        res["d"].append(_relative(d - (d_prev - u + x), scale))
        d_prev = d
    asym = [float(torch.linalg.matrix_norm(L.S - L.S.T) / torch.linalg.matrix_norm(L.S)) for L in cost._layers]
    return Theorem1Check(*(np.array(res[k]) for k in ("x", "x_field", "u", "d")), np.array(asym),
                         np.array([L.cond for L in cost._layers]), readout_error)


# ---- the learned curvature P (Eq. 19-20, 30) and Theorem 2's moduli ------------------------------
@dataclass(frozen=True)
class LearnedCurvature:
    """``P = S^{-1} - (mu I + A^T A)`` and what it does to the x-subproblem.

    With one distinct layer (tied ``S``, fixed ``mu``): ``P: (N, N)``, ``eigenvalues: (N,)`` (of
    ``sym(P)``, ascending) and floats; with T distinct layers, a leading ``(T, ...)`` axis on each.

    beta, beta_hat : the convexity moduli in x of ``L_A`` (``lambda_min(mu I + A^T A)``) and of
        ``L_hat_A`` (``lambda_min(sym(S^{-1}))``); ``smooth``, ``smooth_hat`` the largest
        eigenvalues (Assumption 2's moduli). Theorem 2 assumes ``beta_hat > beta``
        (``assumption_holds``); ``delta_beta = (beta_hat^2 - beta^2) / (2 beta beta_hat)^2`` is
        Eq. 29's order of the gain. ``beta_hat <= 0`` means ``L_hat_A`` is not convex in x.
    norm_ratio : ``||P||_2 / ||mu I + A^T A||_2``.
    blocks : (D, D) Frobenius norms of P's dictionary blocks ``P_ij``; ``coupling`` the share of
        ``||P||_F^2`` in the off-diagonal blocks (how much of the learned change couples the
        dictionaries; 0 for D = 1).
    W_e_change : ``||W_e - A^T||_F / ||A^T||_F`` (0 when ``W_e`` was not learned).
    """

    P: np.ndarray
    eigenvalues: np.ndarray
    beta: float | np.ndarray
    beta_hat: float | np.ndarray
    smooth: float | np.ndarray
    smooth_hat: float | np.ndarray
    norm_ratio: float | np.ndarray
    blocks: np.ndarray
    coupling: float | np.ndarray
    W_e_change: float

    @property
    def assumption_holds(self) -> bool | np.ndarray:
        return np.asarray(self.beta_hat) > np.asarray(self.beta) if np.ndim(self.beta) else self.beta_hat > self.beta

    @property
    def delta_beta(self) -> float | np.ndarray:
        b, bh = np.asarray(self.beta, dtype=float), np.asarray(self.beta_hat, dtype=float)
        out = (bh**2 - b**2) / (2 * b * bh) ** 2
        return out if out.ndim else float(out)


def learned_curvature(encoder: LSALSA, problem: LassoProblem, *, cost: LearnedCost | None = None) -> LearnedCurvature:
    """The learned curvature of a (trained) LSALSA on ``problem`` (:class:`LearnedCurvature`);
    ``cost`` as in :func:`theorem1_residual`."""
    W_e, layers = (cost.W_e, cost._layers) if cost else _layers(encoder, problem)
    A = problem.A.detach().to("cpu", torch.float64)
    G, eye = A.T @ A, torch.eye(A.shape[1], dtype=torch.float64)
    g = torch.linalg.eigvalsh(G)  # H = mu I + G has the eigenvalues mu + g
    edges = np.cumsum([0, *problem.dict_sizes])
    per: dict[str, list] = {k: [] for k in ("P", "eig", "beta", "beta_hat", "smooth", "smooth_hat", "ratio",
                                            "blocks", "coupling")}
    for L in layers:
        H = L.mu * eye + G
        P = L.S_inv - H
        h, s = L.mu + g, torch.linalg.eigvalsh(_sym(L.S_inv))
        per["P"].append(P.numpy())
        per["eig"].append(torch.linalg.eigvalsh(_sym(P)).numpy())
        per["beta"].append(float(h[0]))
        per["smooth"].append(float(h[-1]))
        per["beta_hat"].append(float(s[0]))
        per["smooth_hat"].append(float(s[-1]))
        per["ratio"].append(float(torch.linalg.matrix_norm(P, 2)) / float(h[-1]))  # ||H||_2 = lambda_max(H)
        blocks = np.array([[np.linalg.norm(P[edges[i]:edges[i + 1], edges[j]:edges[j + 1]].numpy())
                            for j in range(len(edges) - 1)] for i in range(len(edges) - 1)])
        total = float((blocks**2).sum())
        per["blocks"].append(blocks)
        per["coupling"].append(float((total - (np.diag(blocks) ** 2).sum()) / total) if total > 0 else 0.0)
    one = len(layers) == 1

    def pick(key):
        return per[key][0] if one else np.array(per[key])

    change = float(torch.linalg.matrix_norm(W_e - A.T) / torch.linalg.matrix_norm(A))
    return LearnedCurvature(pick("P"), pick("eig"), pick("beta"), pick("beta_hat"), pick("smooth"),
                            pick("smooth_hat"), pick("ratio"), pick("blocks"), pick("coupling"), change)


# ---- Eq. 30: the learned descent direction, measured -------------------------------------------------
@dataclass(frozen=True)
class DescentCurves:
    """Code RMSE against ``X_star`` and the mean lasso objective (Eq. 4/6) of the sparse variable
    ``u_k`` after k = 0..K steps (index 0: the start), of the plain x-descent and of Eq. 30's."""

    step_size: float
    rmse_plain: np.ndarray
    rmse_learned: np.ndarray
    objective_plain: np.ndarray
    objective_learned: np.ndarray

    def gain(self, k: int) -> float:
        """``rmse_plain[k] / rmse_learned[k]``: above 1 where the learned direction is ahead."""
        return float(self.rmse_plain[k] / self.rmse_learned[k])


def descent_comparison(encoder: LSALSA, problem: LassoProblem, Y, X_star, n_steps: int = 20, *,
                       cost: LearnedCost | None = None) -> DescentCurves:
    """Eq. 30 on held-out signals ``Y: (B, M)`` with their optimal codes ``X_star: (B, N)``.

    Both runs alternate ADMM's u- and d-updates on ``L_A`` (thresholds ``alpha_i / mu``) with one
    gradient step in x instead of the exact x-minimisation (the "stochastic framework" of
    Section 5.2), from the same start ``x_0 = A^T y, d_0 = 0`` with the same step size
    ``eta = 1 / max(lambda_max(mu I + A^T A), lambda_max(sym S^{-1}))`` (safe for both):

        plain   : x <- x - eta grad_x L_A(x, u, d)
        learned : x <- (I - eta P) x - eta grad_x L_A(x, u, d)          (Eq. 30)

    As in Section 5, ``W_e = A^T`` is assumed (Eq. 30 holds only ``P``); step k uses layer
    ``min(k, T)``'s ``P`` and ``mu`` where they differ per layer. ``cost`` as in
    :func:`theorem1_residual`.
    """
    n_steps = check_positive_int(n_steps, "n_steps")
    layers = cost._layers if cost else _layers(encoder, problem)[1]
    Y = _f64(Y, problem.n_features, "Y")
    X_star = _f64(X_star, problem.n_atoms, "X_star", len(Y))
    ref = problem.to("cpu", torch.float64)
    A, alphas = ref.A, ref.thresholds
    G, eye = A.T @ A, torch.eye(A.shape[1], dtype=torch.float64)
    g_max = float(torch.linalg.eigvalsh(G)[-1])
    eta = 1.0 / max(max(L.mu + g_max, float(torch.linalg.eigvalsh(_sym(L.S_inv))[-1])) for L in layers)
    b = Y @ A
    curves = {}
    for kind in ("plain", "learned"):
        X, D = b.clone(), torch.zeros_like(b)
        rmse, obj = [], []
        for k in range(n_steps + 1):
            L = layers[min(max(k, 1), len(layers)) - 1]
            U = soft_threshold(X + D, alphas / L.mu)
            rmse.append(float(torch.sqrt(torch.mean((U - X_star) ** 2))))
            obj.append(float(ref.objective(U, Y).mean()))
            if k == n_steps:
                break
            grad = X @ G - b + L.mu * (X + D - U)
            X = X - eta * grad - (eta * (X @ (L.S_inv - L.mu * eye - G).T) if kind == "learned" else 0)
            D = D - U + X
        curves[kind] = (np.array(rmse), np.array(obj))
    return DescentCurves(eta, curves["plain"][0], curves["learned"][0], curves["plain"][1], curves["learned"][1])
