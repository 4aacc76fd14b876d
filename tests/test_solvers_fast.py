"""The fast solver loops (in-place buffers, over-relaxation, spaced stopping checks, auto mu)
against plain implementations written from the algorithms' definitions."""
import math

import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LassoProblem, LsalsaError
from lsalsa.solvers import auto_mu, ista_operators, ista_step, salsa_operators
from lsalsa.solvers._common import row_change


def plain_salsa(problem, Y, mu, n_iter=None, tol=1e-6, max_iter=1000, relaxation=1.0, ridge_start=False):
    """Alg. 1/2 with the relaxation of Eckstein & Bertsekas on u: u_hat = rho u + (1 - rho) x.

    Starts at x = A^T y, or with ``ridge_start`` at the x-update from u = d = 0, x = S A^T y."""
    W_e, S, t = salsa_operators(problem, mu)
    B = Y @ W_e.T
    X, D = (B @ S.T if ridge_start else B), torch.zeros_like(B)
    iters = n_iter if n_iter is not None else max_iter
    k = 0
    for k in range(1, iters + 1):
        U = lsalsa.soft_threshold(X + D, t)
        U_hat = U if relaxation == 1.0 else relaxation * U + (1 - relaxation) * X
        X_new = (B + mu * (U_hat - D)) @ S.T
        D = D - U_hat + X_new
        change = float(row_change(X_new, X).max())
        X = X_new
        if n_iter is None and change < tol:
            break
    return lsalsa.soft_threshold(X + D, t), k


def plain_fista(problem, Y, n_iter):
    W_e, S, theta = ista_operators(problem)
    B = Y @ W_e.T
    X = torch.zeros_like(B)
    Z, t = X, 1.0
    for _ in range(n_iter):
        X_new = ista_step(Z, B, S, theta)
        t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
        Z = X_new + (t - 1) / t_new * (X_new - X)
        X, t = X_new, t_new
    return X


@pytest.mark.parametrize("which", ["single", "mca"])
@pytest.mark.parametrize("mu", [0.3, 2.0])
def test_truncated_salsa_equals_plain_iteration(which, mu, request, Y64):
    problem = request.getfixturevalue(which)
    for T in (0, 1, 2, 9, 40):
        expected, _ = plain_salsa(problem, Y64, mu, n_iter=T)
        torch.testing.assert_close(lsalsa.salsa(problem, Y64, mu=mu, n_iter=T).X, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("which", ["single", "mca"])
@pytest.mark.parametrize("relaxation", [0.6, 1.5, 1.8])
def test_relaxed_salsa_equals_plain_relaxed_admm(which, relaxation, request, Y64):
    problem = request.getfixturevalue(which)
    for T in (1, 3, 25):
        expected, _ = plain_salsa(problem, Y64, 0.7, n_iter=T, relaxation=relaxation)
        got = lsalsa.salsa(problem, Y64, mu=0.7, n_iter=T, relaxation=relaxation).X
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_converged_salsa_checking_every_iteration_stops_each_row_where_the_plain_loop_does(mca, Y64):
    # without the polish, each row runs until its own change is below tol: the plain loop on
    # that row alone (started, like every run to convergence, at x = S A^T y), which stops there too
    for relaxation in (1.0, 1.8):
        res = lsalsa.salsa(mca, Y64, mu=0.5, tol=1e-7, max_iter=5000, relaxation=relaxation, check_every=1, polish=False)
        counts = []
        for i in range(Y64.shape[0]):
            expected, k = plain_salsa(mca, Y64[i : i + 1], 0.5, tol=1e-7, max_iter=5000, relaxation=relaxation, ridge_start=True)
            torch.testing.assert_close(res.X[i : i + 1], expected, rtol=0, atol=1e-11)
            counts.append(k)
        assert res.converged and res.n_iter == max(counts) and min(counts) < max(counts)


@pytest.mark.parametrize("method", ["salsa", "fista"])
def test_spaced_checks_stop_on_a_multiple_and_keep_the_solution(method, single, Y64):
    kw = {"mu": 0.5, "polish": False} if method == "salsa" else {}
    every1 = lsalsa.solve(single, Y64, method=method, tol=1e-8, max_iter=20_000, check_every=1, **kw)
    every7 = lsalsa.solve(single, Y64, method=method, tol=1e-8, max_iter=20_000, check_every=7, **kw)
    assert every1.converged and every7.converged
    assert every7.n_iter % 7 == 0 and every7.n_iter >= every1.n_iter
    if method == "salsa":  # its change decays steadily; FISTA's oscillates with the momentum
        assert every7.n_iter < every1.n_iter + 7
    torch.testing.assert_close(single.objective(every7.X, Y64), single.objective(every1.X, Y64), rtol=1e-9, atol=0)


def test_default_salsa_runs_relaxed_to_convergence_and_plain_when_truncated(single, Y64):
    mu = auto_mu(single, Y64)
    assert lsalsa.salsa(single, Y64, n_iter=6).X.equal(lsalsa.salsa(single, Y64, mu=mu, n_iter=6, relaxation=1.0).X)
    default = lsalsa.salsa(single, Y64, tol=1e-8, max_iter=5000)
    relaxed = lsalsa.salsa(single, Y64, mu=mu, tol=1e-8, max_iter=5000, relaxation=1.8)
    assert default.X.equal(relaxed.X) and default.n_iter == relaxed.n_iter


@pytest.mark.parametrize("which", ["single", "mca"])
def test_truncated_fista_equals_plain_iteration(which, request, Y64):
    problem = request.getfixturevalue(which)
    for T in (1, 2, 30):
        torch.testing.assert_close(lsalsa.fista(problem, Y64, n_iter=T).X, plain_fista(problem, Y64, T), rtol=0, atol=1e-13)


def test_fista_callback_gets_a_copy_not_the_reused_buffer(single, Y64):
    seen = []
    lsalsa.fista(single, Y64, n_iter=5, callback=lambda k, X: seen.append(X))
    for k, X in enumerate(seen, start=1):
        torch.testing.assert_close(X, plain_fista(single, Y64, k), rtol=0, atol=1e-13)


def test_float32_fast_loops_follow_dtype(mca, Y64):
    p32, Y32 = mca.to(dtype=torch.float32), Y64.float()
    for method in ("salsa", "fista"):
        res = lsalsa.solve(p32, Y32, method=method, n_iter=20)
        ref = lsalsa.solve(mca, Y64, method=method, n_iter=20, **({"mu": auto_mu(p32, Y32)} if method == "salsa" else {}))
        assert res.X.dtype == torch.float32
        torch.testing.assert_close(res.X.double(), ref.X, rtol=0, atol=1e-4)


# ---- auto mu -------------------------------------------------------------------------------
def iterations(problem, Y, mu, relaxation):
    return lsalsa.salsa(problem, Y, mu=mu, tol=1e-8, max_iter=20_000, relaxation=relaxation, check_every=1, polish=False).n_iter


@pytest.mark.parametrize("which", ["single", "mca"])
def test_auto_mu_within_1_5x_of_the_best_grid_mu(which, request, digits):
    problem = request.getfixturevalue(which)
    Y = torch.from_numpy(digits[:100].copy())
    mu = auto_mu(problem, Y)
    for relaxation in (1.0, 1.8):
        best = min(iterations(problem, Y, m, relaxation) for m in (0.125, 0.25, 0.5, 1.0, 2.0))
        assert iterations(problem, Y, mu, relaxation) <= 1.5 * best


def test_auto_mu_scales_with_the_problem(single, Y64):
    # (2A, 2y, 4 alpha) runs the same iterates with mu' = 4 mu: the trial's choice scales too
    scaled = LassoProblem(2 * single.A, alphas=4 * 0.15)
    assert auto_mu(scaled, 2 * Y64) == pytest.approx(4 * auto_mu(single, Y64), rel=1e-12)


def test_auto_mu_is_a_grid_value_and_handles_few_rows(single, mca, Y64):
    scale = float(single.A.square().sum()) / single.n_atoms
    grid = [scale * 2 ** (j / 2) for j in range(-6, 3)]
    for Y in (Y64, Y64[:1], Y64[:0]):
        mu = auto_mu(single, Y)
        assert any(mu == pytest.approx(g, rel=1e-12) for g in grid)
    # M < N (the Woodbury side) takes the eigendecomposition of A A^T
    wide = LassoProblem(np.concatenate([mca.A.numpy()] * 2, axis=1), alphas=0.2)
    assert wide.n_atoms > wide.n_features and auto_mu(wide, Y64) > 0


def test_auto_mu_reads_only_its_pilot_rows(single, digits):
    # at most PILOT_ROWS evenly spaced rows: the other rows cannot change the choice (or its cost)
    from lsalsa.solvers.penalty import PILOT_ROWS, pilot_rows

    Y = torch.from_numpy(digits[:500].copy())
    rows = pilot_rows(len(Y))
    assert len(rows) == PILOT_ROWS and rows[0] == 0 and rows[-1] == len(Y) - 1
    others = torch.ones(len(Y), dtype=torch.bool)
    others[rows] = False
    Y_other = Y.clone()
    Y_other[others] = 50 * torch.from_numpy(np.random.default_rng(0).standard_normal((int(others.sum()), 64)))
    assert auto_mu(single, Y_other) == auto_mu(single, Y) == auto_mu(single, Y[rows])


def test_salsa_argument_checks(single, Y64):
    with pytest.raises(LsalsaError, match="mu"):
        lsalsa.salsa(single, Y64, mu="fast")
    with pytest.raises(LsalsaError, match="mu"):
        lsalsa.salsa(single, Y64, mu=0.0)
    for bad in (0.0, 2.0, -1, "x"):
        with pytest.raises(LsalsaError, match="relaxation"):
            lsalsa.salsa(single, Y64, mu=1.0, relaxation=bad)
    for bad in (0, 1.5, True):
        with pytest.raises(LsalsaError, match="check_every"):
            lsalsa.salsa(single, Y64, mu=1.0, check_every=bad)
        with pytest.raises(LsalsaError, match="check_every"):
            lsalsa.fista(single, Y64, check_every=bad)
    with pytest.raises(LsalsaError, match="problem"):
        auto_mu(single.A, Y64)


@pytest.mark.parametrize("method", ["salsa", "fista"])
def test_row_blocks_give_the_batch_result(method, single, digits):
    # 6000 rows of N = 48 float64 atoms are two blocks (row_blocks: 2 MiB per buffer); a
    # callback keeps the whole batch in one
    rng = np.random.default_rng(0)
    Y = torch.from_numpy(digits[rng.integers(0, len(digits), 6000)] + 0.01 * rng.standard_normal((6000, 64)))
    assert len(lsalsa.solvers._common.row_blocks(Y @ single.A)) == 2
    kw = {"mu": 0.5} if method == "salsa" else {}
    for run in ({"n_iter": 7}, {"tol": 1e-5, "max_iter": 20_000}):
        blocks = lsalsa.solve(single, Y, method=method, **kw, **run)
        whole = lsalsa.solve(single, Y, method=method, callback=lambda k, X: False, **kw, **run)
        if "tol" in run and method == "fista":  # each block stops at its own worst row
            assert blocks.converged and whole.converged and blocks.n_iter == whole.n_iter
            f_blocks, f_whole = single.objective(blocks.X, Y).mean(), single.objective(whole.X, Y).mean()
            assert abs(float(f_blocks / f_whole) - 1) < 1e-6
        else:  # salsa's rows stop on their own: blocks or not, the same codes
            assert blocks.n_iter == whole.n_iter
            torch.testing.assert_close(blocks.X, whole.X, rtol=0, atol=1e-12)
