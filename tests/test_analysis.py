"""Section 5 as measurements (lsalsa.analysis): Theorem 1's learned Lagrangian, the learned
curvature P, Theorem 2's moduli and Eq. 30's descent."""
import warnings

import numpy as np
import pytest
import torch

from lsalsa import LSALSA, LassoProblem, TrainConfig, optimal_codes, train_encoder
from lsalsa import analysis
from lsalsa.encoders import LISTA
from lsalsa.errors import LsalsaError

pytestmark = pytest.mark.usefixtures("one_thread")
ROUNDING = 1e-12


def _perturb_symmetric(enc: LSALSA, size: float, seed: int) -> None:
    """Add a random symmetric matrix (one per layer when untied) to S, keeping it invertible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        E = size * torch.randn(enc.S.shape, generator=g, dtype=enc.S.dtype)
        enc.S.add_((E + E.transpose(-1, -2)) / 2)


@pytest.fixture(scope="module")
def signals(mca):
    """(40, 64) float64 signals: mixtures of the two dictionaries' atoms, sparse."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, mca.n_atoms, generator=g, dtype=torch.float64) * (torch.rand(40, mca.n_atoms, generator=g) < 0.1)
    return X @ mca.A.T + 0.01 * torch.randn(40, mca.n_features, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def problems(single, mca):
    return {1: single, 2: mca}


@pytest.mark.parametrize("D", [1, 2])
@pytest.mark.parametrize("tied", [True, False])
def test_theorem1_holds_for_a_perturbed_symmetric_S(problems, signals, D, tied):
    problem = problems[D]
    enc = LSALSA.from_problem(problem, 4, mu=1.0, tied=tied)
    _perturb_symmetric(enc, 1e-3, seed=D)
    check = analysis.theorem1_residual(enc, problem, signals)
    assert check.x.shape == check.u.shape == check.d.shape == (4,)
    assert check.max < ROUNDING and check.x_field.max() < ROUNDING
    assert check.readout_error < ROUNDING  # the recorded iterates are the encoder's own
    assert check.asymmetry.max() < ROUNDING
    assert len(check.cond) == (1 if tied else 4)


def test_an_asymmetric_S_is_measured_not_assumed(single, signals):
    """The quadratic form sees sym(S^-1): the skew part leaves the x-update off the minimiser (by a
    measured amount), while it still solves S^-1 x = W_e y + mu (u - d) exactly."""
    enc = LSALSA.from_problem(single, 3, mu=1.0)
    with torch.no_grad():
        enc.S.add_(1e-3 * torch.randn(enc.S.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    check = analysis.theorem1_residual(enc, single, signals)
    assert check.x.min() > 1e-6 and check.asymmetry[0] > 1e-3
    assert check.x_field.max() < 1e-10 and max(check.u.max(), check.d.max()) < ROUNDING


@pytest.mark.parametrize("D", [1, 2])
def test_at_initialisation_P_is_zero_and_the_learned_cost_is_L_A(problems, signals, D):
    problem = problems[D]
    enc = LSALSA.from_problem(problem, 5, mu=0.5, tied=False)
    curv = analysis.learned_curvature(enc, problem)
    H_norm = float(torch.linalg.matrix_norm(0.5 * torch.eye(problem.n_atoms, dtype=torch.float64) + problem.gram, 2))
    assert curv.P.shape == (5, problem.n_atoms, problem.n_atoms)
    assert np.abs(curv.P).max() / H_norm < 1e-12
    assert np.allclose(curv.beta_hat, curv.beta, rtol=1e-10) and curv.W_e_change == 0
    cost = analysis.learned_cost(enc, problem)
    g = torch.Generator().manual_seed(3)
    X, U, Dm = (torch.randn(len(signals), problem.n_atoms, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (1, 5):
        hat, orig = cost(X, U, Dm, signals, layer=t), cost.original(X, U, Dm, signals, layer=t)
        assert torch.allclose(hat, orig, rtol=1e-10, atol=0)


def test_theorem1_holds_for_a_trained_encoder(mca, signals):
    """A trained (untied) S: u- and d-updates are ADMM's to rounding, the x-update solves its
    linear system exactly, and with S made symmetric the x-update minimises L_hat_A exactly."""
    X_star = optimal_codes(mca, signals, solver="salsa", tol=1e-8, mu=1.0)
    enc = LSALSA.from_problem(mca, 3, mu=1.0, tied=False)
    train_encoder(enc, signals, X_star, TrainConfig(epochs=3, lr=1e-2, batch_size=20, warmup=0))
    curv = analysis.learned_curvature(enc, mca)
    assert curv.norm_ratio.min() > 1e-4  # training moved S
    check = analysis.theorem1_residual(enc, mca, signals)
    assert max(check.u.max(), check.d.max(), check.x_field.max(), check.readout_error) < 1e-10
    with torch.no_grad():
        enc.S.copy_((enc.S + enc.S.transpose(-1, -2)) / 2)
    assert analysis.theorem1_residual(enc, mca, signals).x.max() < 1e-10


def test_spectrum_and_moduli_against_numpy(small):
    enc = LSALSA.from_problem(small, 2, mu=0.7, tied=True)
    _perturb_symmetric(enc, 0.05, seed=4)
    with torch.no_grad():
        enc.S.add_(0.01 * torch.randn(enc.S.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    curv = analysis.learned_curvature(enc, small)
    S, A = enc.S.detach().numpy(), small.A.numpy()
    H = 0.7 * np.eye(8) + A.T @ A
    P = np.linalg.inv(S) - H
    assert np.allclose(curv.P, P, atol=1e-12)
    assert np.allclose(curv.eigenvalues, np.linalg.eigvalsh((P + P.T) / 2), atol=1e-12)
    S_inv = np.linalg.inv(S)
    assert np.isclose(curv.beta, np.linalg.eigvalsh(H)[0]) and np.isclose(curv.beta_hat, np.linalg.eigvalsh((S_inv + S_inv.T) / 2)[0])
    assert np.isclose(curv.norm_ratio, np.linalg.norm(P, 2) / np.linalg.norm(H, 2))
    assert curv.assumption_holds == (curv.beta_hat > curv.beta)
    b, bh = curv.beta, curv.beta_hat
    assert np.isclose(curv.delta_beta, (bh**2 - b**2) / (2 * b * bh) ** 2)
    blocks = [[np.linalg.norm(P[:5, :5]), np.linalg.norm(P[:5, 5:])], [np.linalg.norm(P[5:, :5]), np.linalg.norm(P[5:, 5:])]]
    assert np.allclose(curv.blocks, blocks)
    assert np.isclose(curv.coupling, (blocks[0][1] ** 2 + blocks[1][0] ** 2) / np.linalg.norm(P) ** 2)


def test_block_diagonal_P_does_not_couple_the_dictionaries(small):
    enc = LSALSA.from_problem(small, 1, mu=1.0)
    H = torch.eye(8, dtype=torch.float64) + small.gram
    E = torch.zeros(8, 8, dtype=torch.float64)
    E[:5, :5], E[5:, 5:] = 0.1 * torch.eye(5), 0.2 * torch.eye(3)
    with torch.no_grad():
        enc.S.copy_(torch.linalg.inv(H + E))
    curv = analysis.learned_curvature(enc, small)
    assert curv.coupling < 1e-20 and np.allclose(np.sort(curv.eigenvalues)[[0, -1]], [0.1, 0.2], atol=1e-10)
    # a positive definite P raises the modulus, by 0.1 to 0.2 here (Weyl)
    assert curv.assumption_holds and 0.1 - 1e-10 <= curv.beta_hat - curv.beta <= 0.2 + 1e-10


def test_singular_or_nan_S_is_a_clear_error(single, signals):
    enc = LSALSA.from_problem(single, 2, mu=1.0)
    with torch.no_grad():
        enc.S[3] = 0
    with pytest.raises(LsalsaError, match="S is singular"):
        analysis.learned_curvature(enc, single)
    with torch.no_grad():
        enc.S[3, 3] = float("nan")
    with pytest.raises(LsalsaError, match="NaN or Inf"):
        analysis.theorem1_residual(enc, single, signals)


def test_ill_conditioned_S_warns(single):
    enc = LSALSA.from_problem(single, 1, mu=1.0)
    with torch.no_grad():
        enc.S[0] *= 1e-10
    with pytest.warns(UserWarning, match="ill-conditioned"):
        analysis.learned_curvature(enc, single)


def test_bad_input_is_refused(single, mca, signals):
    with pytest.raises(LsalsaError, match="LSALSA encoders"):
        analysis.learned_curvature(LISTA.from_problem(single, 2), single)
    with pytest.raises(LsalsaError, match="dictionary sizes|A is"):
        analysis.learned_curvature(LSALSA.from_problem(single, 2), mca)
    with pytest.raises(LsalsaError, match="Y: expected shape"):
        analysis.theorem1_residual(LSALSA.from_problem(mca, 2), mca, signals[:, :10])
    with pytest.raises(LsalsaError, match="X_star: expected shape"):
        analysis.descent_comparison(LSALSA.from_problem(mca, 2), mca, signals, torch.zeros(3, mca.n_atoms))


def test_descent_directions_agree_at_initialisation_and_differ_once_learned(mca, signals):
    X_star = optimal_codes(mca, signals, solver="salsa", tol=1e-8, mu=1.0)
    enc = LSALSA.from_problem(mca, 2, mu=1.0)
    d0 = analysis.descent_comparison(enc, mca, signals, X_star, n_steps=8)
    assert d0.rmse_plain.shape == (9,) and np.allclose(d0.rmse_plain, d0.rmse_learned, rtol=1e-10, atol=0)
    assert d0.rmse_plain[-1] < d0.rmse_plain[0] and d0.gain(8) == pytest.approx(1.0, rel=1e-10)
    assert np.all(np.diff(d0.objective_plain[1:]) < 1e-9 * d0.objective_plain[0])  # descends
    # P = c I with c > 0: Eq. 30's step is x <- (1 - eta c) x - eta grad, a different curve
    H = torch.eye(mca.n_atoms, dtype=torch.float64) + mca.gram
    with torch.no_grad():
        enc.S.copy_(torch.linalg.inv(H + 0.5 * torch.eye(mca.n_atoms, dtype=torch.float64)))
    d1 = analysis.descent_comparison(enc, mca, signals, X_star, n_steps=8)
    assert d1.rmse_plain[0] == d1.rmse_learned[0] and not np.allclose(d1.rmse_plain[1:], d1.rmse_learned[1:])
    assert d1.step_size == pytest.approx(1 / (1 + float(torch.linalg.eigvalsh(mca.gram)[-1]) + 0.5))
