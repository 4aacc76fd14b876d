"""Shared real-data fixtures: scikit-learn's 8x8 digits (1797 images, shipped in the wheel)."""
import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits
from scipy.fft import idctn
from sklearn.datasets import load_digits

from lsalsa import LassoProblem


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    thousands of small ops (64 x 48 matrices) lose nothing, and it avoids OpenMP barriers that
    made the FISTA fixture 60x slower (1.5 s -> 90 s) with two threads while another process
    kept the machine's 2 cores busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # numpy's BLAS too (scikit-learn's checks and baselines)
        yield
    torch.set_num_threads(threads)


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


@pytest.fixture(scope="module")
def small() -> LassoProblem:
    """M=6, N=8, two dictionaries of random unit-norm atoms: small enough for gradcheck."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 8, generator=g, dtype=torch.float64)
    return LassoProblem(A / torch.linalg.vector_norm(A, dim=0), alphas=[0.1, 0.3], dict_sizes=[5, 3])
