import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LassoProblem, LsalsaError
from lsalsa.linalg import spectral_norm_sq, splitting_operator


def test_objective_matches_definition(digit_atoms, Y64):
    p = LassoProblem(digit_atoms, alphas=0.15)
    X = torch.randn(Y64.shape[0], 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    A = torch.from_numpy(digit_atoms)
    expected = 0.5 * ((Y64 - X @ A.T) ** 2).sum(1) + 0.15 * X.abs().sum(1)
    torch.testing.assert_close(p.objective(X, Y64), expected)


def test_multi_dictionary_layout(digit_atoms, dct_atoms, Y64):
    A1, A2 = torch.from_numpy(digit_atoms), torch.from_numpy(dct_atoms)
    p = LassoProblem.from_dictionaries([A1, A2], alphas=[0.1, 0.2])
    assert p.dict_sizes == (48, 24) and p.n_atoms == 72 and p.n_dicts == 2
    t = p.thresholds
    assert torch.all(t[:48] == 0.1) and torch.all(t[48:] == 0.2)
    X = torch.randn(5, 72, dtype=torch.float64)
    x1, x2 = p.split(X)
    assert x1.shape == (5, 48) and x2.shape == (5, 24)
    s1, s2 = p.reconstruct(X)
    torch.testing.assert_close(s1, x1 @ A1.T)
    torch.testing.assert_close(s1 + s2, X @ p.A.T)
    # the objective is Eq. 6 with one alpha per dictionary
    expected = 0.5 * ((Y64[:5] - X @ p.A.T) ** 2).sum(1) + 0.1 * x1.abs().sum(1) + 0.2 * x2.abs().sum(1)
    torch.testing.assert_close(p.objective(X, Y64[:5]), expected)


def test_three_dictionaries(digit_atoms, dct_atoms):
    p = LassoProblem.from_dictionaries([digit_atoms[:, :10], digit_atoms[:, 10:30], dct_atoms], alphas=[0.1, 0.2, 0.3])
    assert p.dict_sizes == (10, 20, 24)
    assert len(p.reconstruct(np.zeros((2, 54)))) == 3


def test_lipschitz_is_spectral_norm_squared(digit_atoms):
    p = LassoProblem(digit_atoms)
    assert p.lipschitz == pytest.approx(np.linalg.norm(digit_atoms, 2) ** 2, rel=1e-12)
    wide = np.random.default_rng(1).standard_normal((10, 30))
    assert float(spectral_norm_sq(torch.from_numpy(wide))) == pytest.approx(np.linalg.norm(wide, 2) ** 2, rel=1e-12)


def test_alpha_max_zeroes_the_code(digit_atoms, dct_atoms, Y64):
    p = LassoProblem.from_dictionaries([digit_atoms, dct_atoms], alphas=[1.0, 1.0])
    amax = p.alpha_max(Y64, per_dictionary=True)
    assert amax.shape == (20, 2)
    torch.testing.assert_close(p.alpha_max(Y64), amax.max(dim=1).values)
    # at alphas just above the per-dictionary bound the solution is exactly zero (KKT at x = 0)
    y = Y64[:1]
    q = p.with_alphas((amax[0] * 1.001).tolist())
    assert float(q.kkt_violation(torch.zeros(1, 72, dtype=torch.float64), y)) == 0.0
    r = q.with_alphas((amax[0] * 0.9).tolist())
    assert float(r.kkt_violation(torch.zeros(1, 72, dtype=torch.float64), y)) > 0.0


@pytest.mark.parametrize("M,N", [(64, 48), (20, 60)])
def test_woodbury_and_direct_splitting_operators_agree(M, N):
    A = torch.randn(M, N, dtype=torch.float64, generator=torch.Generator().manual_seed(M))
    for mu in (0.1, 1.0, 10.0):
        S_direct = splitting_operator(A, mu, "direct")
        S_wood = splitting_operator(A, mu, "woodbury")
        torch.testing.assert_close(S_direct, S_wood, rtol=1e-10, atol=1e-12)
        K = mu * torch.eye(N, dtype=torch.float64) + A.T @ A
        torch.testing.assert_close(S_direct @ K, torch.eye(N, dtype=torch.float64), rtol=0, atol=1e-9)


def test_soft_threshold_scalar_and_vector_agree():
    Z = torch.linspace(-2, 2, 41, dtype=torch.float64).reshape(1, -1)
    ref = torch.sign(Z) * torch.clamp(Z.abs() - 0.5, min=0)
    torch.testing.assert_close(lsalsa.soft_threshold(Z, 0.5), ref)
    torch.testing.assert_close(lsalsa.soft_threshold(Z, torch.full((41,), 0.5, dtype=torch.float64)), ref)


def test_to_changes_dtype(digit_atoms):
    p = LassoProblem(digit_atoms, alphas=0.15).to(dtype=torch.float32)
    assert p.A.dtype == torch.float32 and p.alphas.dtype == torch.float32
