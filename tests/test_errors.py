"""Every bad input named in the foundation issue raises LsalsaError naming the argument."""
import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LassoProblem, LsalsaError


@pytest.fixture
def problem(digit_atoms):
    return LassoProblem(digit_atoms, alphas=0.15)


def test_lsalsa_error_is_a_value_error():
    assert issubclass(LsalsaError, ValueError)


@pytest.mark.parametrize(
    "A, alphas, sizes, match",
    [
        (np.ones(5), 0.1, None, r"A: expected a 2-D array, got shape \(5,\)"),
        (np.ones((4, 3), dtype=np.int64), 0.1, None, "A: expected dtype float32 or float64"),
        (np.array([[1.0, 0.0], [1.0, 0.0]]), 0.1, None, r"A: expected no zero column, but column\(s\) \[1\]"),
        (np.array([[1.0, np.nan], [1.0, 2.0]]), 0.1, None, "A: expected finite values, found 1 NaN/Inf"),
        (np.array([[1.0, np.inf], [1.0, 2.0]]), 0.1, None, "A: expected finite values"),
        (np.eye(3), -0.1, None, r"alphas: expected values >= 0, got \[-0.1\]"),
        (np.eye(3), [0.1, 0.2], None, "alphas: expected 1 or 1 values"),
        (np.eye(3), [0.1, float("nan")], [1, 2], "alphas: expected finite values"),
        (np.eye(3), 0.1, [1, 1], "dict_sizes: expected positive sizes summing to N=3"),
    ],
)
def test_bad_problem(A, alphas, sizes, match):
    with pytest.raises(LsalsaError, match=match):
        LassoProblem(A, alphas=alphas, dict_sizes=sizes)


def test_bad_dictionaries():
    with pytest.raises(LsalsaError, match=r"dictionaries\[1\]: expected 3 rows"):
        LassoProblem.from_dictionaries([np.eye(3), np.eye(4)])
    with pytest.raises(LsalsaError, match=r"dictionaries\[1\]: dtype/device"):
        LassoProblem.from_dictionaries([np.eye(3), np.eye(3, dtype=np.float32)])
    with pytest.raises(LsalsaError, match="non-empty list"):
        LassoProblem.from_dictionaries([])


@pytest.mark.parametrize("method", ["ista", "fista", "salsa"])
def test_bad_signals(problem, method, Y64):
    solve = lsalsa.SOLVERS[method]
    with pytest.raises(LsalsaError, match=r"Y: expected shape \(B, 64\), got \(20, 63\)"):
        solve(problem, Y64[:, :63])
    with pytest.raises(LsalsaError, match=r"Y: expected shape \(B, 64\), got \(64,\)"):
        solve(problem, Y64[0])
    bad = Y64.clone()
    bad[3, 5] = float("nan")
    with pytest.raises(LsalsaError, match="Y: expected finite values, found 1 NaN/Inf"):
        solve(problem, bad)
    with pytest.raises(LsalsaError, match="Y: dtype torch.float32 does not match the problem's torch.float64"):
        solve(problem, Y64.float())
    with pytest.raises(LsalsaError, match="n_iter: expected an integer >= 0, got -1"):
        solve(problem, Y64, n_iter=-1)
    with pytest.raises(LsalsaError, match="max_iter: expected an integer >= 1"):
        solve(problem, Y64, max_iter=0)
    with pytest.raises(LsalsaError, match="tol: expected a finite number > 0"):
        solve(problem, Y64, tol=0.0)
    with pytest.raises(LsalsaError, match="problem: expected a LassoProblem"):
        solve("not a problem", Y64)


@pytest.mark.parametrize("mu", [0.0, -1.0, float("nan"), "ten"])
def test_bad_mu(problem, Y64, mu):
    with pytest.raises(LsalsaError, match="mu: expected"):
        lsalsa.salsa(problem, Y64, mu=mu, n_iter=2)


def test_mismatched_pair(problem, Y64):
    with pytest.raises(LsalsaError, match="X, Y: expected the same number of rows"):
        problem.objective(torch.zeros(3, 48, dtype=torch.float64), Y64)
    with pytest.raises(LsalsaError, match=r"X: expected shape \(B, 48\)"):
        problem.kkt_violation(torch.zeros(20, 47, dtype=torch.float64), Y64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_mismatched_device(problem, Y64):
    with pytest.raises(LsalsaError, match="Y: device cuda"):
        lsalsa.fista(problem, Y64.cuda())


def test_all_finite_fast_path_agrees_with_the_entrywise_test():
    from lsalsa._validation import all_finite

    big = torch.full((4, 3), 3e38, dtype=torch.float32)  # finite entries whose sum overflows
    assert all_finite(big)
    for bad in (float("nan"), float("inf"), -float("inf")):
        t = torch.ones(5, 4, dtype=torch.float64)
        t[2, 1] = bad
        assert not all_finite(t)
    both = torch.zeros(2, 2)
    both[0, 0], both[1, 1] = float("inf"), -float("inf")  # sum is NaN, still caught
    assert not all_finite(both)


def test_read_only_arrays_are_taken_without_a_warning():
    import warnings

    from lsalsa._validation import as_tensor

    Y = np.ones((3, 4))
    Y.flags.writeable = False  # as a memory map opened with mode "r"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = as_tensor(Y, "Y")
    assert t.shape == (3, 4) and float(t.sum()) == 12.0
