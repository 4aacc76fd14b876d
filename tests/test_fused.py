"""The fused inference layers (:mod:`lsalsa.solvers.fused`) against the plain torch passes."""
from __future__ import annotations

import pytest
import torch

import lsalsa.solvers.fused as fused_mod
from lsalsa import LISTA, LSALSA, LassoProblem, salsa
from lsalsa.errors import LsalsaError
from lsalsa.solvers.iteration import unrolled_salsa

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(dtype, dicts=(40, 24), M=32):
    g = torch.Generator().manual_seed(1)
    A = torch.randn(M, sum(dicts), generator=g, dtype=dtype)
    return LassoProblem(A / A.norm(dim=0), alphas=[0.05, 0.1][:len(dicts)], dict_sizes=list(dicts))


def _signals(problem, B=300):
    g = torch.Generator().manual_seed(2)
    return torch.randn(B, problem.n_features, generator=g, dtype=problem.dtype)


def _perturbed(enc, scale=0.05):
    """An encoder whose parameters are no longer the solver's (as after training)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale * p.abs().mean())
    return enc


TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [dict(), dict(tied=False), dict(learn_mu=True, tied=False),
                                     dict(learn_thresholds="layer"), dict(learn_thresholds="coordinate")])
def test_fused_lsalsa_equals_the_plain_layers(dtype, options):
    problem = _problem(dtype)
    enc = _perturbed(LSALSA.from_problem(problem, 4, mu=0.7, **options)).eval()
    Y = _signals(problem)
    plain, fused = enc.encode(Y, fused=False), enc.encode(Y, fused=True)
    torch.testing.assert_close(fused, plain, **TOL[dtype])
    torch.testing.assert_close(fused, enc(Y).detach(), **TOL[dtype])  # forward, with autograd's ops
    assert (fused == 0).float().mean() > 0.1  # sparse codes: the thresholds acted


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [dict(), dict(tied=False), dict(learn_thresholds="layer")])
def test_fused_lista_equals_the_plain_layers(dtype, options):
    problem = _problem(dtype, dicts=(64,))
    enc = _perturbed(LISTA.from_problem(problem, 4, **options)).eval()
    Y = _signals(problem)
    torch.testing.assert_close(enc.encode(Y, fused=True), enc.encode(Y, fused=False), **TOL[dtype])
    torch.testing.assert_close(enc.encode(Y, fused=True), enc(Y).detach(), **TOL[dtype])


def test_untrained_lsalsa_fused_is_truncated_salsa():
    problem = _problem(torch.float64)
    Y = _signals(problem, B=512)
    enc = LSALSA.from_problem(problem, 5, mu=2.0)
    reference = salsa(problem, Y, mu=2.0, n_iter=5).X
    torch.testing.assert_close(enc.encode(Y, fused=True), reference, rtol=1e-12, atol=1e-13)


def test_fused_iterations_report_the_last_change():
    problem = _problem(torch.float64)
    b = _signals(problem) @ problem.A
    S = torch.linalg.inv(torch.eye(problem.n_atoms, dtype=torch.float64) + problem.A.T @ problem.A)
    plain = unrolled_salsa(b, S, 1.0, 0.05, 6, inplace=True, change=True, fused=False)
    fused = unrolled_salsa(b, S, 1.0, 0.05, 6, inplace=True, change=True, fused=True)
    torch.testing.assert_close(fused[0], plain[0], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(fused[2], plain[2], rtol=1e-9, atol=1e-12)
    assert fused[1] == plain[1] == 6


def test_the_default_fuses_only_batches_large_enough(monkeypatch):
    problem = _problem(torch.float32)
    enc = LSALSA.from_problem(problem, 3, mu=1.0)
    calls = []
    real = fused_mod.fused_salsa
    monkeypatch.setattr("lsalsa.solvers.iteration.fused_salsa", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    small = _signals(problem, B=fused_mod.MIN_ELEMENTS // problem.n_atoms - 1)
    large = _signals(problem, B=fused_mod.MIN_ELEMENTS // problem.n_atoms + 1)
    enc.encode(small)
    assert calls == []
    enc.encode(large)
    assert calls == [(len(large), problem.n_atoms)]
    enc.encode(large, fused=False)
    assert len(calls) == 1


def test_fused_is_refused_where_it_cannot_run():
    problem = _problem(torch.float32)
    enc = LSALSA.from_problem(problem, 2, mu=1.0)
    Y = _signals(problem)
    with pytest.raises(LsalsaError, match="fused: runs on a CPU with float32 or float64"):
        enc.encode(Y, dtype=torch.bfloat16, fused=True)
    with pytest.raises(LsalsaError, match="not combined with compile"):
        enc.encode(Y, compile=True, fused=True)
    with pytest.raises(LsalsaError, match="expected None, True or False"):
        enc.encode(Y, fused="yes")
    b = Y @ problem.A
    with pytest.raises(LsalsaError, match="rho = 1"):
        unrolled_salsa(b, torch.eye(problem.n_atoms), 1.0, 0.1, 2, inplace=True, half_rho=0.8, fused=True)
    # mixed precision falls back to the plain passes by default
    assert enc.encode(Y, dtype=torch.bfloat16).dtype == torch.float32
