"""The paper's evaluation (Section 6): code error, time, sparsity, objective, PSNR, classification.

Timing is separated from the metrics: an encoder is timed on its own (warm-up, median of repeats,
inside ``torch.inference_mode``), and every metric is computed afterwards on its output.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.random_projection import GaussianRandomProjection

from ._validation import check_positive_int
from .errors import LsalsaError
from .methods import Method
from .metrics import code_rmse
from .problem import LassoProblem
from .solvers import prepare_solver

Encode = Callable[[torch.Tensor], torch.Tensor]


def time_encode(encode: Callable[[torch.Tensor], Any], Y: torch.Tensor, *, repeats: int = 5,
                warmup: int = 1) -> tuple[Any, float]:
    """Run ``encode(Y)`` ``warmup`` times untimed, then ``repeats`` times timed.

    Returns the codes (what ``encode`` returns) of the last run and the median wall-clock
    seconds. CUDA work is synchronised before each clock read so that the time is the
    encoder's, not the launch's. Also times a set-up on ``Y``'s device (see :func:`time_setup`).
    """
    repeats = check_positive_int(repeats, "repeats")
    sync = torch.cuda.synchronize if Y.device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            encode(Y)
        times, X = [], None
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            X = encode(Y)
            sync()
            times.append(time.perf_counter() - t0)
    return X, statistics.median(times)


def time_setup(method: Method, problem: LassoProblem, Y: torch.Tensor, *, mu: float | None = None,
               repeats: int = 5) -> tuple[Any, float]:
    """The operators of a solver method (:func:`lsalsa.prepare_solver`; ``mu`` for the SALSA
    family only) and the median seconds taken to prepare them, as :func:`time_encode` times."""
    return time_encode(lambda _: prepare_solver(problem, method.name, **method.mu_keywords(mu)), Y, repeats=repeats)


def solver_encode(method: Method, problem: LassoProblem, n_iter: int, operators: Any, *,
                  mu: float | None = None) -> Encode:
    """``Y: (B, M) -> X: (B, N)``: ``n_iter`` iterations of a solver method with its prepared
    ``operators`` (:func:`time_setup`), so that timing a call times the iterations only."""
    return lambda Y: method.solve(problem, Y, n_iter=n_iter, mu=mu, operators=operators).X


def psnr(estimate: Any, reference: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``, over all entries."""
    est = torch.as_tensor(estimate).double()
    ref = torch.as_tensor(reference).double()
    if est.shape != ref.shape:
        raise LsalsaError(f"estimate, reference: expected one shape, got {tuple(est.shape)} and {tuple(ref.shape)}")
    mse = float(torch.mean((est - ref) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def per_sample_stats(X: torch.Tensor, X_star: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-signal sparsity (fraction of zero entries) and code RMSE, each ``(B,)`` (Fig. 6/20)."""
    sparsity = (X == 0).double().mean(dim=1)
    rmse = torch.sqrt(((X.double() - X_star.double()) ** 2).mean(dim=1))
    return sparsity.cpu().numpy(), rmse.cpu().numpy()


def evaluate_codes(
    problem: LassoProblem,
    Y: torch.Tensor,
    X: torch.Tensor,
    X_star: torch.Tensor,
    *,
    components: list[torch.Tensor] | None = None,
) -> dict[str, float]:
    """Metrics of codes ``X: (B, N)`` for signals ``Y: (B, M)`` against ``X_star: (B, N)``.

    ``rmse`` (:func:`lsalsa.code_rmse`), ``sparsity`` (fraction of zeros), ``objective`` (mean
    Eq. 6) and, when the ground-truth ``components`` (one ``(B, M)`` per dictionary) are given,
    ``psnr_i``: the PSNR of each separated source ``A_i x_i`` against its ground truth.
    """
    X = X.to(dtype=problem.dtype)
    row = {
        "rmse": code_rmse(X, X_star.to(X.dtype)),
        "sparsity": float((X == 0).double().mean()),
        "objective": float(problem.objective(X, Y).mean()),
    }
    if components is not None:
        for i, (est, ref) in enumerate(zip(problem.reconstruct(X), components), start=1):
            row[f"psnr_{i}"] = psnr(est, ref)
    return row


def image_features(codes: np.ndarray, image_index: np.ndarray, n_images: int) -> np.ndarray:
    """Concatenate the codes of each image's patches in patch order: ``(n_images, k * N)``.

    Every image must contribute the same number k of patches (the paper's 9 per Fashion-MNIST
    image, 196 per ASIRRA image).
    """
    codes = np.asarray(codes)
    image_index = np.asarray(image_index)
    counts = np.bincount(image_index, minlength=n_images)
    if counts.min() != counts.max():
        raise LsalsaError(f"image_index: every image needs the same number of patches, got {counts.min()}..{counts.max()}")
    order = np.argsort(image_index, kind="stable")
    return codes[order].reshape(n_images, -1)


class CodeClassifier:
    """The paper's probe of code quality: a logistic regression trained on the *optimal* codes,
    then asked to recognise each method's estimates of them (Section 6.1).

    Features longer than ``max_dim`` are first mapped by a random Gaussian projection to
    ``max_dim`` dimensions (the paper's 50176 -> 500 for ASIRRA).
    """

    def __init__(self, max_dim: int = 500, C: float = 10.0, seed: int = 0, max_iter: int = 2000):
        self.max_dim, self.C, self.seed, self.max_iter = max_dim, C, seed, max_iter
        self.projection: GaussianRandomProjection | None = None

    def _project(self, F: np.ndarray) -> np.ndarray:
        return F if self.projection is None else self.projection.transform(F)

    def fit(self, features_star: np.ndarray, labels: np.ndarray) -> "CodeClassifier":
        F = np.asarray(features_star, dtype=np.float64)
        if F.shape[1] > self.max_dim:
            self.projection = GaussianRandomProjection(n_components=self.max_dim, random_state=self.seed).fit(F)
        self.model = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(self._project(F), labels)
        self.train_error = self.error(F, labels)
        return self

    def error(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Classification error in percent."""
        pred = self.model.predict(self._project(np.asarray(features, dtype=np.float64)))
        return 100.0 * float(np.mean(pred != np.asarray(labels)))
