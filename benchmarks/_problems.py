"""The benchmarks' problems and their references.

Real-data lasso problems of the paper's sizes (``patch10``, ``mca32``; their dictionaries are
learned once and cached in ``benchmarks/.cache``), the reference solvers (scikit-learn's
``sparse_encode``; SPAMS' LARS when ``import spams`` works: ``pip install lsalsa[bench]``) and
the optimum ``F*`` they give.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import sparse_encode

import lsalsa

CACHE = Path(__file__).with_name(".cache")

try:
    import spams
except ImportError:  # optional reference (pip install lsalsa[bench])
    spams = None


# ---- real-data problems ------------------------------------------------------------------------
def cached(name: str, make) -> np.ndarray:
    """``make()``, saved as ``benchmarks/.cache/<name>.npy`` and loaded from there after."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{name}.npy"
    if path.exists():
        return np.load(path)
    arr = make()
    np.save(path, arr)
    return arr


def patch10_patches() -> np.ndarray:
    """MNIST training digits padded to 32x32, their 10x10 non-overlapping patches with std >= 0.1,
    shuffled (seed 0): ``(P, 100)``. The first 20,000 learn the patch10 dictionary."""
    images, _ = lsalsa.data.load_images("mnist", split="train")
    patches, _ = lsalsa.data.extract_patches(images, size=10, stride=10, min_std=0.1, pad_to=32)
    return patches[np.random.default_rng(0).permutation(len(patches))]


def patch10_dictionary(patches: np.ndarray) -> np.ndarray:
    """The patch10 dictionary ``A: (100, 100)``, learned on ``patches[:20_000]`` (alpha = 0.15)."""
    return cached("patch10_A", lambda: lsalsa.learn_dictionary(patches[:20_000], n_atoms=100, alpha=0.15, seed=0))


def patch10_problem(n_signals: int):
    """The patch10 problem (M = N = 100, alpha = 0.15) and ``n_signals`` held-out patches ``Y: (B, 100)``."""
    patches = patch10_patches()
    A = patch10_dictionary(patches)
    return lsalsa.LassoProblem(A, alphas=0.15), patches[20_000:20_000 + n_signals]


def mca32_problem(n_signals: int):
    """The mca32 problem (Section 6.2): 32x32 MNIST digit + natural-photo patch mixtures, two
    1024-atom dictionaries learned on each source alone, alphas = (0.125, 0.2); and up to
    ``n_signals`` held-out mixtures ``Y: (B, 1024)``."""
    digits, _ = lsalsa.data.load_images("mnist", split="train")
    digit_rows, _ = lsalsa.data.extract_patches(digits, size=32, pad_to=32)
    photos, _ = lsalsa.data.load_images("natural", split="train")
    photo_rows, _ = lsalsa.data.extract_patches(photos, size=32, stride=32)
    rng = np.random.default_rng(0)
    digit_rows, photo_rows = digit_rows[rng.permutation(len(digit_rows))], photo_rows[rng.permutation(len(photo_rows))]
    n_train = min(4000, len(photo_rows) - n_signals)
    A_digits = cached("mca32_A1", lambda: lsalsa.learn_dictionary(digit_rows[:4000], n_atoms=1024, alpha=0.125,
                                                                  seed=0))
    A_photos = cached("mca32_A2", lambda: lsalsa.learn_dictionary(photo_rows[:n_train], n_atoms=1024, alpha=0.2,
                                                                  seed=0))
    test_d = digit_rows[4000:4000 + n_signals]
    test_p = photo_rows[n_train:n_train + n_signals]
    Y = test_d[: len(test_p)] + test_p[: len(test_d)]
    return lsalsa.LassoProblem.from_dictionaries([A_digits, A_photos], alphas=[0.125, 0.2]), Y


@dataclass(frozen=True)
class Case:
    """A problem and its signals in float64 (objectives, gaps) and float32 (the timed runs)."""

    problem64: lsalsa.LassoProblem
    Y64: torch.Tensor  # (B, M)
    problem32: lsalsa.LassoProblem
    Y32: torch.Tensor  # (B, M)

    @classmethod
    def of(cls, problem, Y) -> "Case":
        Y64 = torch.from_numpy(np.asarray(Y, dtype=np.float64))
        return cls(problem.to(dtype=torch.float64), Y64, problem.to(dtype=torch.float32), Y64.float())

    @property
    def n_signals(self) -> int:
        return self.Y64.shape[0]

    def relative_gap(self, X: torch.Tensor, f_star: float, rows=slice(None)) -> float:
        """``(mean F(X) - F*) / F*`` over ``Y[rows]``, in float64; ``X`` codes those rows."""
        return (float(self.problem64.objective(X.double(), self.Y64[rows]).mean()) - f_star) / f_star


# ---- references and F* -------------------------------------------------------------------------
def _rescaled(problem64):
    """Per-dictionary alphas as one alpha: atoms divided by ``c_j = alpha_j / alpha_0``."""
    t = problem64.thresholds.numpy()
    c = t / t[0]
    return problem64.A.numpy() / c, float(t[0]), c


def sklearn_codes(problem64, Y64, algorithm: str, max_iter: int = 10_000) -> np.ndarray:
    """``sparse_encode`` on our problem (float64, n_jobs=2): codes ``(B, N)``."""
    A, alpha, c = _rescaled(problem64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the gap it reaches is reported instead
        codes = sparse_encode(Y64.numpy(), A.T, algorithm=algorithm, alpha=alpha, n_jobs=2, max_iter=max_iter)
    return codes / c


def spams_codes(problem64, Y64) -> np.ndarray:
    """SPAMS' LARS-lasso (``mode=2``: ``min 1/2 ||y - A x||^2 + lambda1 ||x||_1``), 2 threads: ``(B, N)``."""
    A, alpha, c = _rescaled(problem64)
    X = spams.lasso(np.asfortranarray(Y64.numpy().T), D=np.asfortranarray(A), lambda1=alpha, mode=2, numThreads=2)
    return np.asarray(X.todense()).T / c


def f_star(case: Case) -> float:
    """Mean optimal objective: SPAMS' exact LARS, or without SPAMS a long float64 polished SALSA run."""
    if spams is not None:
        X = torch.from_numpy(spams_codes(case.problem64, case.Y64))
    else:
        X = lsalsa.salsa(case.problem64, case.Y64, tol=1e-11, max_iter=20_000, polish=True).X
    return float(case.problem64.objective(X, case.Y64).mean())


def f_star_rows(case: Case, cd_max_iter: int, ref_iter: int) -> torch.Tensor:
    """Optimal objective per signal ``(B,)``: the lower of scikit-learn's lasso_cd and SPAMS' LARS
    (exact up to rounding), or without SPAMS of lasso_cd and a long float64 over-relaxed SALSA run."""
    problem64, Y64 = case.problem64, case.Y64
    candidates = [torch.from_numpy(sklearn_codes(problem64, Y64, "lasso_cd", cd_max_iter))]
    if spams is not None:
        candidates.append(torch.from_numpy(spams_codes(problem64, Y64)))
    else:
        candidates.append(lsalsa.salsa(problem64, Y64, tol=1e-11, max_iter=ref_iter).X)
    return torch.stack([problem64.objective(X, Y64) for X in candidates]).amin(dim=0)
