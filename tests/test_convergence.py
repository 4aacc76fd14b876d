"""Honest convergence (issue 20, item 2): ``converged=True`` means the codes pass the lasso's KKT
test at the run's tolerance (lsalsa.kkt.certify); a run to convergence that fails it warns with
LsalsaConvergenceWarning (how many rows, how far); truncated runs neither test nor warn."""
import warnings

import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import lsalsa
from lsalsa.errors import LsalsaConvergenceWarning

pytestmark = pytest.mark.usefixtures("one_thread")
SOLVERS = ["ista", "fista", "salsa"]


def test_the_warning_is_scikit_learns_convergence_warning():
    assert issubclass(LsalsaConvergenceWarning, ConvergenceWarning)


def test_fista_out_of_iterations_says_so(single, Y64):
    with pytest.warns(LsalsaConvergenceWarning) as record:
        res = lsalsa.fista(single, Y64, tol=1e-6, max_iter=20)
    assert not res.converged and len(record) == 1
    assert str(record[0].message).startswith("fista (max_iter=20, tol=1e-06): 20 of 20 rows did not converge: "
                                             "KKT violation up to ")
    assert str(record[0].message).endswith(" alpha, allowed 0.001 alpha plus rounding; raise max_iter or lower tol")
    worst = float(single.kkt_violation(res.X, Y64).max()) / 0.15
    assert f"up to {worst:.3g} alpha" in str(record[0].message)


def test_large_signals_no_longer_fool_the_relative_change_rule(single, Y64):
    """Signals x 1e6: SALSA (unpolished) and ISTA met the relative-change rule with codes whose
    KKT violation is alpha-sized or larger, and said converged=True. Both now keep a row whose
    change is small but whose codes fail the KKT test running (to max_iter here, where most rows
    are still 0.1 alpha off for SALSA, far off for ISTA) and say the codes are not optimal."""
    Y = Y64 * 1e6
    with pytest.warns(LsalsaConvergenceWarning, match=r"^salsa \(max_iter=1000, tol=1e-06\): 1\d of 20 rows did not "
                                                      r"converge: KKT violation up to 0\.1\d* alpha"):
        res = lsalsa.salsa(single, Y, polish=False)
    assert res.change < 1e-6 and not res.converged  # the stopping rule held; the codes are not optimal
    assert res.n_iter == 1000  # and it did not stop the rows there
    assert float(single.kkt_violation(res.X, Y).max()) > 0.015
    with pytest.warns(LsalsaConvergenceWarning, match=r"^ista \(max_iter=10000, tol=0.0001\): 20 of 20 rows"):
        res = lsalsa.ista(single, Y, tol=1e-4, max_iter=10_000)
    assert res.change < 1e-4 and not res.converged and res.n_iter == 10_000


@pytest.mark.parametrize("method", SOLVERS)
def test_float32_beyond_its_reach_is_not_converged(method, single, Y64):
    """float32 signals x 1e19: the rounding of A^T y dwarfs alpha; every solver used to report
    converged=True with change 0.0 and a KKT violation ~1e17."""
    problem = single.to(dtype=torch.float32)
    with pytest.warns(LsalsaConvergenceWarning, match=r"20 of 20 rows did not converge: .*; in 20 rows the rounding "
                                                      r"of A\^T y in float32 exceeds alpha, so no code can be "
                                                      r"certified: use float64 or scale the signals down$"):
        res = lsalsa.solve(problem, Y64.float() * 1e19, method=method)
    assert not res.converged


@pytest.mark.parametrize("method", SOLVERS)
def test_converged_means_the_kkt_test_holds(method, single, Y64):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = lsalsa.solve(single, Y64, method=method, tol=1e-6, max_iter=20_000)
    assert res.converged
    C = (Y64 @ single.A).abs().amax(dim=1)
    allowed = 1e-3 * 0.15 + 64 * torch.finfo(torch.float64).eps * C
    assert bool((single.kkt_violation(res.X, Y64) <= allowed).all())


@pytest.mark.parametrize("method", SOLVERS)
def test_truncated_runs_neither_test_nor_warn(method, single, Y64):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = lsalsa.solve(single, Y64 * 1e6, method=method, n_iter=3)
    assert res.n_iter == 3 and not res.converged


def test_optimal_codes_warn_once_for_the_data_set(single, digits):
    Y = digits[:30]
    with pytest.warns(LsalsaConvergenceWarning) as record:
        lsalsa.optimal_codes(single, Y, solver="fista", max_iter=5, batch_size=10)
    messages = [str(r.message) for r in record if r.category is LsalsaConvergenceWarning]
    assert len(messages) == 1
    assert messages[0].startswith("optimal codes (fista, max_iter=5, tol=1e-06): 30 of 30 rows did not converge: ")
