"""Shared real-data fixtures: scikit-learn's 8x8 digits (1797 images, shipped in the wheel)."""
import numpy as np
import pytest
import torch
from scipy.fft import idctn
from sklearn.datasets import load_digits

from lsalsa import LassoProblem


@pytest.fixture(scope="session")
def digits() -> np.ndarray:
    """(1797, 64) float64 in [0, 1]."""
    return load_digits().data / 16.0


def _unit_columns(A: np.ndarray) -> np.ndarray:
    return A / np.linalg.norm(A, axis=0)


@pytest.fixture(scope="session")
def digit_atoms(digits) -> np.ndarray:
    """(64, 48) unit-norm atoms: digit images (from the tail of the set) plus a little noise."""
    rng = np.random.default_rng(0)
    A = digits[rng.choice(np.arange(1000, len(digits)), 48, replace=False)].T
    return _unit_columns(A + 0.05 * rng.standard_normal(A.shape))


@pytest.fixture(scope="session")
def dct_atoms() -> np.ndarray:
    """(64, 24) unit-norm 8x8 2-D DCT atoms of mid/high frequency: a second morphology for MCA."""
    atoms = []
    for k in range(64):
        e = np.zeros((8, 8))
        e[k // 8, k % 8] = 1.0
        atoms.append(idctn(e, norm="ortho").ravel())
    return _unit_columns(np.array(atoms[20:44]).T)


@pytest.fixture(scope="session")
def Y64(digits) -> torch.Tensor:
    """(20, 64) float64 digits signals, disjoint from the ones used as atoms."""
    return torch.from_numpy(digits[:20].copy())


@pytest.fixture(scope="session")
def single(digit_atoms) -> LassoProblem:
    """One dictionary of digit atoms, alpha = 0.15."""
    return LassoProblem(digit_atoms, alphas=0.15)


@pytest.fixture(scope="session")
def mca(digit_atoms, dct_atoms) -> LassoProblem:
    """Two dictionaries (digit atoms, DCT atoms) with different alphas."""
    return LassoProblem.from_dictionaries([digit_atoms, dct_atoms], alphas=[0.1, 0.25])
