"""Solver operators prepared once (issue 21, item 3): the same codes bit for bit as operators
formed in each call, a stale prepared operator refused with a clear error, and the callers that
repeat calls (evaluation, separation, LassoCoder) preparing them once."""
import numpy as np
import pytest
import torch

import lsalsa
from _tiny import tiny  # noqa: F401  (the fixture)
from lsalsa import LISTA, LSALSA, LassoProblem, LsalsaError, prepare_solver
from lsalsa.files import read_json
from lsalsa.sklearn import LassoCoder
from lsalsa.solvers import IstaOperators, SalsaOperators

pytestmark = pytest.mark.usefixtures("one_thread")
MU = 2.0


@pytest.mark.parametrize("T", [1, 2, 5, 20])
@pytest.mark.parametrize("which", ["single", "mca"])
def test_prepared_truncated_salsa_equals_salsa_and_untrained_lsalsa(T, which, request, Y64):
    problem = request.getfixturevalue(which)
    ops = prepare_solver(problem, "salsa", mu=MU)
    assert isinstance(ops, SalsaOperators) and ops.mu == MU
    X = lsalsa.salsa(problem, Y64, mu=MU, n_iter=T, operators=ops).X
    torch.testing.assert_close(X, lsalsa.salsa(problem, Y64, mu=MU, n_iter=T).X, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(X, LSALSA.from_problem(problem, T, mu=MU)(Y64), rtol=0, atol=0)
    # the same operators serve the problem at other alphas (thresholds are the problem's)
    other = problem.with_alphas((problem.alphas * 0.5).tolist())
    torch.testing.assert_close(lsalsa.salsa(other, Y64, mu=MU, n_iter=T, operators=ops).X,
                               lsalsa.salsa(other, Y64, mu=MU, n_iter=T).X, rtol=0, atol=0)


@pytest.mark.parametrize("T", [1, 5])
@pytest.mark.parametrize("which", ["single", "mca"])
def test_prepared_ista_and_fista_equal_fresh_ones_and_untrained_lista(T, which, request, Y64):
    problem = request.getfixturevalue(which)
    ops = prepare_solver(problem, "fista")
    assert isinstance(ops, IstaOperators)
    for solver in (lsalsa.ista, lsalsa.fista):
        torch.testing.assert_close(solver(problem, Y64, n_iter=T, operators=ops).X,
                                   solver(problem, Y64, n_iter=T).X, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(lsalsa.ista(problem, Y64, n_iter=T, operators=ops).X,
                                   LISTA.from_problem(problem, T)(Y64), rtol=0, atol=0)


@pytest.mark.parametrize("method, mu", [("salsa", MU), ("fista", None), ("ista", None)])
def test_prepared_runs_to_convergence_equal_fresh_ones(method, mu, single, Y64):
    ops = prepare_solver(single, method, mu=mu)
    kw = {"mu": mu} if mu is not None else {}
    a = lsalsa.solve(single, Y64, method=method, tol=1e-6, max_iter=5000, operators=ops, **kw)
    b = lsalsa.solve(single, Y64, method=method, tol=1e-6, max_iter=5000, **kw)
    assert a.converged and a.n_iter == b.n_iter
    torch.testing.assert_close(a.X, b.X, rtol=0, atol=0)


def test_stale_prepared_operators_are_refused(single, mca, Y64):
    ops, ista_ops = prepare_solver(single, "salsa", mu=MU), prepare_solver(single, "fista")
    other = LassoProblem(single.A.flip(1), alphas=0.15)  # the same atoms in another order
    cases = [
        (lambda: lsalsa.salsa(other, Y64, mu=MU, n_iter=1, operators=ops),
         "operators: prepared for another dictionary (or this one before an edit in place); prepare them"),
        (lambda: lsalsa.salsa(mca, Y64, mu=MU, n_iter=1, operators=ops),
         f"operators: prepared for a (64, 48) dictionary, the problem's is (64, {mca.n_atoms})"),
        (lambda: lsalsa.salsa(single, Y64, mu=3.0, n_iter=1, operators=ops),
         "mu: the operators were prepared for mu=2, got mu=3; prepare them for this mu"),
        (lambda: lsalsa.salsa(single, Y64, n_iter=1, operators=ops),
         "mu: with prepared operators pass the mu they were made for (2), not 'auto'"),
        (lambda: lsalsa.salsa(single, Y64, mu=MU, n_iter=1, method="direct", operators=ops),
         "method: the operators' S was factored by 'auto', got 'direct'"),
        (lambda: lsalsa.salsa(single.to(dtype=torch.float32), Y64.float(), mu=MU, n_iter=1, operators=ops),
         "operators: prepared in torch.float64 on cpu, the problem is torch.float32 on cpu"),
        (lambda: lsalsa.salsa(single, Y64, mu=MU, n_iter=1, operators=ista_ops),
         "operators: expected the SalsaOperators of lsalsa.prepare_solver, got IstaOperators"),
        (lambda: lsalsa.fista(single, Y64, n_iter=1, operators=ops),
         "operators: expected the IstaOperators of lsalsa.prepare_solver, got SalsaOperators"),
        (lambda: lsalsa.ista(other, Y64, n_iter=1, operators=ista_ops), "operators: prepared for another dictionary"),
        (lambda: prepare_solver(single, "salsa"), "mu: SALSA's operators need a number > 0, got None"),
        (lambda: prepare_solver(single, "fista", mu=MU), "mu: fista has no penalty mu, got 2.0"),
        (lambda: prepare_solver(single, "lista"), "method: expected one of ['fista', 'ista', 'salsa'], got 'lista'"),
    ]
    for call, says in cases:
        with pytest.raises(LsalsaError) as exc:
            call()
        assert str(exc.value).startswith(says), str(exc.value)


def test_an_edit_of_the_dictionary_in_place_is_caught(single, Y64):
    problem = LassoProblem(single.A.clone(), alphas=0.15)
    ops = {m: prepare_solver(problem, m, mu=MU if m == "salsa" else None) for m in ("salsa", "fista")}
    with torch.no_grad():
        problem.A[0, 0] += 1e-3  # the operators hold a copy: they notice
    with pytest.raises(LsalsaError, match="prepared for another dictionary"):
        lsalsa.salsa(problem, Y64, mu=MU, n_iter=1, operators=ops["salsa"])
    with pytest.raises(LsalsaError, match="prepared for another dictionary"):
        lsalsa.fista(problem, Y64, n_iter=1, operators=ops["fista"])


# ---- where calls repeat: the evaluation, separation, the estimators -----------------------------
def test_the_evaluation_times_solvers_with_their_operators_prepared(tiny):
    row = read_json(tiny[1] / "results" / "fista_T1.json")  # the tiny run's one method, FISTA at T=1
    assert row["setup_s"] > 0 and row["time_s"] > 0


def test_separation_prepares_a_solvers_operators_once(single, monkeypatch):
    calls = []

    def counted(*args, **kw):
        calls.append(args[1])
        return prepare_solver(*args, **kw)

    monkeypatch.setattr(lsalsa.bundle, "prepare_solver", counted)
    problem = LassoProblem(single.A, alphas=0.15)  # 64 = 8 x 8 pixels
    model = lsalsa.SeparationModel(problem, "salsa", 8, n_iter=3, mu=MU)
    image = torch.rand(20, 24, generator=torch.Generator().manual_seed(0)).numpy()
    sep = lsalsa.separate_image(image, model, stride=2, batch_size=16)  # 63 patches: 4 batches
    assert calls == ["salsa"]
    patches = torch.as_tensor(image[:8, :8].reshape(1, 64), dtype=torch.float64)
    torch.testing.assert_close(model.coder()(patches), model.encode(patches), rtol=0, atol=0)
    assert sep.sources.shape == (1, 20, 24)


@pytest.mark.parametrize("solver, kind", [("salsa", SalsaOperators), ("fista", IstaOperators)])
def test_lasso_coder_prepares_its_operators_in_fit(solver, kind, digit_atoms, digits):
    coder = LassoCoder(digit_atoms.T.copy(), alpha=0.15, solver=solver, mu=MU).fit(digits[:50])
    assert isinstance(coder.operators_, kind) and getattr(coder.operators_, "mu", MU) == MU
    expected = lsalsa.solve(coder.problem_, torch.from_numpy(digits[:50]), method=solver, tol=1e-6, max_iter=10_000,
                            **({"mu": MU} if solver == "salsa" else {})).X.numpy()
    np.testing.assert_array_equal(coder.transform(digits[:50]), expected)
