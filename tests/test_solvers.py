import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LassoProblem
from lsalsa.solvers.reference import sklearn_lasso

SOLVERS = ["ista", "fista", "salsa"]


def run(method, problem, Y, **kw):
    kw.setdefault("tol", 1e-11)
    kw.setdefault("max_iter", 60_000)
    return lsalsa.solve(problem, Y, method=method, **kw)


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize("which", ["single", "mca"])
def test_converged_solution_satisfies_kkt(method, which, request, Y64):
    problem = request.getfixturevalue(which)
    res = run(method, problem, Y64)
    assert res.converged and res.X.shape == (20, problem.n_atoms)
    # |a_j^T (y - Ax)| <= alpha_j off the support, = alpha_j sign(x_j) on it
    assert float(problem.kkt_violation(res.X, Y64).max()) < 1e-7
    assert float((res.X == 0).double().mean()) > 0.3  # the solution is genuinely sparse


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize("which", ["single", "mca"])
def test_agrees_with_scikit_learn_lasso(method, which, request, Y64):
    problem = request.getfixturevalue(which)
    Y = Y64[:8]
    X_ref = torch.from_numpy(sklearn_lasso(problem, Y))
    X = run(method, problem, Y).X
    f_ref, f = problem.objective(X_ref, Y), problem.objective(X, Y)
    torch.testing.assert_close(f, f_ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(X, X_ref, rtol=0, atol=1e-4)


def test_mca_with_equal_alphas_equals_single_dictionary_on_concatenation(digit_atoms, dct_atoms, Y64):
    mca = LassoProblem.from_dictionaries([digit_atoms, dct_atoms], alphas=[0.2, 0.2])
    cat = LassoProblem(np.concatenate([digit_atoms, dct_atoms], axis=1), alphas=0.2)
    for n_iter in (1, 7):
        torch.testing.assert_close(lsalsa.salsa(mca, Y64, mu=2.0, n_iter=n_iter).X,
                                   lsalsa.salsa(cat, Y64, mu=2.0, n_iter=n_iter).X, rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", SOLVERS)
def test_float32_agrees_with_float64(method, mca, Y64):
    res64 = run(method, mca, Y64, tol=1e-9)
    res32 = run(method, mca.to(dtype=torch.float32), Y64.float(), tol=1e-6)
    assert res32.X.dtype == torch.float32
    f64 = mca.objective(res64.X, Y64)
    f32 = mca.objective(res32.X.double(), Y64)
    torch.testing.assert_close(f32, f64, rtol=1e-5, atol=0)


def test_truncated_runs_do_exactly_n_iter(single, Y64):
    seen = []
    res = lsalsa.fista(single, Y64, n_iter=7, callback=lambda k, X: seen.append(k))
    assert res.n_iter == 7 and seen == list(range(1, 8))
    assert lsalsa.ista(single, Y64, n_iter=0).X.abs().sum() == 0  # ISTA/FISTA start at x = 0
    # SALSA with 0 iterations reads out soft(A^T y; alpha / mu)
    mu = 3.0
    expected = lsalsa.soft_threshold(Y64 @ single.A, 0.15 / mu)
    torch.testing.assert_close(lsalsa.salsa(single, Y64, mu=mu, n_iter=0).X, expected)


def test_salsa_first_iteration_by_hand(mca, Y64):
    A, mu = mca.A, 5.0
    t = mca.thresholds / mu
    x = Y64 @ A
    u = lsalsa.soft_threshold(x, t)
    x = torch.linalg.solve(mu * torch.eye(72, dtype=torch.float64) + A.T @ A, (Y64 @ A + mu * u).T).T
    d = -u + x
    torch.testing.assert_close(lsalsa.salsa(mca, Y64, mu=mu, n_iter=1).X, lsalsa.soft_threshold(x + d, t))


def test_callback_can_stop_early(single, Y64):
    res = lsalsa.salsa(single, Y64, callback=lambda k, X: k == 3, max_iter=100)
    assert res.n_iter == 3 and not res.converged


def test_numpy_inputs_return_tensors(digit_atoms, digits):
    p = LassoProblem(digit_atoms, alphas=0.15)
    res = lsalsa.salsa(p, digits[:4], mu=1.0, n_iter=3)
    assert isinstance(res.X, torch.Tensor) and res.X.shape == (4, 48)


def test_unknown_method():
    with pytest.raises(lsalsa.LsalsaError, match="method"):
        lsalsa.solve(None, None, method="lars")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
@pytest.mark.parametrize("method", SOLVERS)
def test_cuda_matches_cpu(method, mca, Y64):
    cpu = run(method, mca, Y64, n_iter=25).X
    gpu = run(method, mca.to("cuda"), Y64.cuda(), n_iter=25).X
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-11)
