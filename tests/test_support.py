"""The exact finish on an identified support (solve_on_support) and SALSA's polished runs."""
import math
import sys

import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LassoProblem, LsalsaError
from lsalsa.solvers import solve_on_support


def optimum(problem, Y):
    """Codes to rounding by long, unpolished SALSA."""
    return lsalsa.salsa(problem, Y, mu=0.5, tol=1e-13, max_iter=50_000, polish=False).X


def finish(problem, Y, U):
    return solve_on_support(problem.gram, Y @ problem.A, problem.thresholds, U)


@pytest.mark.parametrize("which", ["single", "mca"])
def test_recovers_the_optimum_from_its_support_and_signs(which, request, Y64):
    problem = request.getfixturevalue(which)
    X_star = optimum(problem, Y64)
    assert (X_star != 0).sum(1).min() > 0
    # any code with the optimum's support and signs, here a rough one
    U = X_star * torch.linspace(0.3, 1.7, X_star.shape[1], dtype=X_star.dtype)
    X, ok = finish(problem, Y64, U)
    assert ok.all()
    torch.testing.assert_close(X, X_star, rtol=0, atol=1e-9)
    assert float(problem.kkt_violation(X, Y64).max()) < 1e-12


def test_a_wrong_support_is_refused_and_the_code_kept(single, Y64):
    X_star = optimum(single, Y64)
    U = X_star.clone()
    j = int(torch.nonzero(U[0]).flatten()[0])
    U[0, j] = 0.0  # one atom missing
    off = int(torch.nonzero(U[1] == 0).flatten()[0])
    U[1, off] = 1e-3  # one atom too many
    U[2] = -U[2]  # all signs wrong
    X, ok = finish(single, Y64, U)
    assert not ok[:3].any() and ok[3:].all()
    assert X[:3].equal(U[:3])


def test_a_singular_support_system_is_refused_without_nan():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((8, 20))
    problem = LassoProblem(A / np.linalg.norm(A, axis=0), alphas=0.01)
    Y = torch.from_numpy(rng.standard_normal((3, 8)))
    U = torch.from_numpy(rng.standard_normal((3, 20)))
    U[:, 12:] = 0.0  # 12 atoms in R^8: the support's Gram block is singular
    X, ok = finish(problem, Y, U)
    assert not ok.any() and X.equal(U)


def test_an_empty_support_is_accepted_only_above_alpha_max(single, Y64):
    zeros = torch.zeros(Y64.shape[0], single.n_atoms, dtype=Y64.dtype)
    amax = float(single.alpha_max(Y64).max())
    X, ok = finish(single.with_alphas(1.01 * amax), Y64, zeros)
    assert ok.all() and X.equal(zeros)
    X, ok = finish(single.with_alphas(0.5 * float(single.alpha_max(Y64).min())), Y64, zeros)
    assert not ok.any()


@pytest.mark.parametrize("which", ["single", "mca"])
def test_polished_salsa_is_optimal_to_rounding_and_stops_sooner(which, request, Y64):
    problem = request.getfixturevalue(which)
    polished = lsalsa.salsa(problem, Y64, mu=0.5, tol=1e-9, max_iter=5000, polish=True)
    plain = lsalsa.salsa(problem, Y64, mu=0.5, tol=1e-9, max_iter=5000, polish=False)
    assert polished.converged and polished.n_iter < plain.n_iter
    assert float(problem.kkt_violation(polished.X, Y64).max()) < 1e-12
    torch.testing.assert_close(polished.X, optimum(problem, Y64), rtol=0, atol=1e-9)


def test_polished_float32_matches_float64(mca, Y64):
    got = lsalsa.salsa(mca.to(dtype=torch.float32), Y64.float(), mu=0.5, tol=1e-6, polish=True)
    assert got.converged and got.X.dtype == torch.float32
    torch.testing.assert_close(got.X.double(), optimum(mca, Y64), rtol=0, atol=2e-4)


def test_rows_stop_on_their_own(single, Y64):
    # a row's code does not depend on the rest of the batch (mu fixed: auto_mu looks at the batch)
    batch = lsalsa.salsa(single, Y64, mu=0.5, tol=1e-8, polish=True)
    for i in (0, 7, 19):
        alone = lsalsa.salsa(single, Y64[i : i + 1], mu=0.5, tol=1e-8, polish=True)
        torch.testing.assert_close(batch.X[i : i + 1], alone.X, rtol=0, atol=1e-12)


@pytest.mark.parametrize("stop_at", [7, 25])
def test_callback_sees_every_row_and_can_stop(single, Y64, stop_at):
    # stopped before the first check (7), or never asked to stop because every row was
    # certified at a check (the run ends there, before 25)
    seen = []

    def cb(k, U):
        seen.append(U.shape)
        return k == stop_at

    res = lsalsa.salsa(single, Y64, mu=0.5, tol=1e-12, callback=cb, polish=True)
    assert set(seen) == {tuple(Y64.shape[:1]) + (single.n_atoms,)}
    assert res.X.shape == (Y64.shape[0], single.n_atoms) and torch.isfinite(res.X).all()
    if stop_at == 7:
        assert res.n_iter == 7 and len(seen) == 7
    else:
        assert res.n_iter == len(seen) < 25 and res.converged
        assert float(single.kkt_violation(res.X, Y64).max()) < 1e-12


def test_polish_argument_checks(single, Y64):
    with pytest.raises(LsalsaError, match="polish"):
        lsalsa.salsa(single, Y64, mu=1.0, n_iter=5, polish=True)
    with pytest.raises(LsalsaError, match="polish"):
        lsalsa.salsa(single, Y64, mu=1.0, polish="yes")
    assert lsalsa.salsa(single, Y64, mu=1.0, n_iter=5, polish=False).n_iter == 5


def _wide(n_atoms, seed=1, n_features=64, alpha=0.1):
    A = np.random.default_rng(seed).standard_normal((n_features, n_atoms))
    return LassoProblem(A / np.linalg.norm(A, axis=0), alphas=alpha)


def test_default_polish_rule(single, digits):
    # polish=None: on a CPU polished up to 256 atoms (the compiled solve) and from 512 on
    Y = torch.from_numpy(digits[:5].copy())
    for problem, polished in ((single, True), (_wide(300), False), (_wide(512), True)):
        default = lsalsa.salsa(problem, Y, mu=0.5, tol=1e-8)
        assert default.X.equal(lsalsa.salsa(problem, Y, mu=0.5, tol=1e-8, polish=polished).X)
        if polished:
            assert float(problem.kkt_violation(default.X, Y).max()) < 1e-12
    assert lsalsa.salsa(single, Y, mu=0.5, tol=1e-8).n_iter < lsalsa.salsa(single, Y, mu=0.5, tol=1e-8, polish=False).n_iter


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_and_lapack_solves_agree(dtype, single, mca, Y64):
    # the CPU's compiled row loop against batched LAPACK on the same rows: exact supports, rough
    # values, wrong supports, empty supports, and rows above the loop's 64 atoms (sent to LAPACK)
    from lsalsa.solvers import _support_kernel, support

    assert support.cpu_kernel_available()
    for problem in (single, mca):
        X_star = optimum(problem, Y64)
        U = torch.cat([X_star * 1.3, -X_star, X_star * (torch.arange(problem.n_atoms) % 3 != 0), torch.zeros_like(X_star)])
        Y = Y64.repeat(4, 1)
        p, Y, U = problem.to(dtype=dtype), Y.to(dtype), U.to(dtype)
        C = Y @ p.A
        X, ok = support.solve_on_support(p.gram, C, p.thresholds, U)
        X_ref, ok_ref = support._solve_batched(p.gram, C, p.thresholds, U)
        assert ok.equal(ok_ref) and ok[:20].all() and not ok[20:40].any() and not ok[40:60].all()
        torch.testing.assert_close(X, X_ref, rtol=0, atol=1e-12 if dtype == torch.float64 else 5e-5)
    big = _wide(300, seed=2, n_features=128, alpha=0.01)  # supports above 64 atoms: left to LAPACK
    Yb = torch.from_numpy(np.random.default_rng(3).standard_normal((3, 128)))
    Xb = lsalsa.salsa(big, Yb, mu=0.5, tol=1e-12, max_iter=20_000, polish=False).X
    assert ((Xb != 0).sum(1) > _support_kernel.MAX_SUPPORT).all()
    X, ok = support.solve_on_support(big.gram, Yb @ big.A, big.thresholds, Xb)
    X_ref, ok_ref = support._solve_batched(big.gram, Yb @ big.A, big.thresholds, Xb)
    assert ok.equal(ok_ref) and ok.all()
    torch.testing.assert_close(X, X_ref, rtol=0, atol=1e-10)


def test_lapack_polish_tries_stable_signs(single, Y64, monkeypatch):
    # off a CPU (here: with the eager rule switched off) rows are tried once their signs held
    polish_module = sys.modules["lsalsa.solvers.polish"]
    eager = lsalsa.salsa(single, Y64, mu=0.5, tol=1e-9, polish=True)
    monkeypatch.setattr(polish_module, "eager_polish", lambda device, n_atoms: False)
    stable = lsalsa.salsa(single, Y64, mu=0.5, tol=1e-9, polish=True)
    assert stable.converged and stable.n_iter > eager.n_iter
    torch.testing.assert_close(stable.X, eager.X, rtol=0, atol=1e-9)
    torch.testing.assert_close(stable.X, optimum(single, Y64), rtol=0, atol=1e-9)


def test_grouped_and_single_group_solves_agree(single, Y64):
    # more rows than _ONE_GROUP_ROWS are solved in groups of similar support size; fewer in one
    # padded group: both must give the same codes
    from lsalsa.solvers import support

    X_star = optimum(single, Y64)
    reps = support._ONE_GROUP_ROWS // Y64.shape[0] + 1
    Y = Y64.repeat(reps, 1)
    scales = torch.linspace(0.5, 1.5, Y.shape[0], dtype=Y.dtype)[:, None]
    U = X_star.repeat(reps, 1) * scales  # same supports and signs, rough values
    U[::3, :] *= (torch.arange(single.n_atoms) % 4 != 0).to(Y.dtype)  # smaller supports in some rows
    assert Y.shape[0] > support._ONE_GROUP_ROWS and len(torch.unique(support._padded_size((U != 0).sum(1)))) > 1
    X_grouped, ok_grouped = finish(single, Y, U)
    X_one, ok_one = finish(single, Y[:200], U[:200])
    assert ok_grouped[:200].equal(ok_one) and ok_one.any() and not ok_one.all()
    torch.testing.assert_close(X_grouped[:200], X_one, rtol=0, atol=1e-12)


def test_active_set_steps_repair_a_nearly_right_support(single, Y64):
    # SALSA's finish on a CPU: from a support one atom short, a correction step adds it back
    from lsalsa.solvers import support

    X_star = optimum(single, Y64)
    U = X_star.clone()
    for i in range(3):
        U[i, int(torch.nonzero(U[i]).flatten()[-1])] = 0.0  # each of rows 0-2 one atom short
    n = U.shape[0]
    C = Y64 @ single.A
    for steps in (0, 4):
        certify = support.row_certifier(single.gram, C, single.thresholds, 0.0, steps)  # codes = soft(U; 0) = U
        out, last = torch.full_like(U, math.nan), torch.zeros(n, dtype=torch.int64)
        ok = certify(U, torch.arange(n), out, last)
        assert ok.all() if steps else ok[3:].all() and not ok[:3].any()
        torch.testing.assert_close(out[ok], X_star[ok], rtol=0, atol=1e-9)
        assert out[~ok].isnan().all()  # rows not certified are left alone
        # the same sign patterns again are not tried again
        again = certify(U, torch.arange(n), out, last)
        assert not again.any()
