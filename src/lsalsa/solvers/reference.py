"""An independent reference solver (scikit-learn's coordinate descent) for tests and benchmarks."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import Lasso

from .._validation import check_signals
from ..errors import LsalsaError
from ..problem import LassoProblem


def sklearn_lasso(problem: LassoProblem, Y: Any, tol: float = 1e-12, max_iter: int = 100_000) -> np.ndarray:
    """Codes ``X: (B, N)`` (numpy float64) from scikit-learn's ``Lasso``, one signal at a time.

    scikit-learn minimises ``1/(2 n_samples) ||y - A x||^2 + a ||x||_1`` with ``n_samples = M``,
    so ``a = alpha / M``. Per-dictionary alphas are reduced to one by rescaling columns:
    with ``c_j = alpha_j / alpha_0``, ``alpha_j |x_j| = alpha_0 |c_j x_j|``, so solve for
    ``x'_j = c_j x_j`` with atoms ``a_j / c_j`` and map back.
    """
    Y = check_signals(Y, problem.n_features, problem.A).detach().cpu().double().numpy()
    A = problem.A.detach().cpu().double().numpy()
    t = problem.thresholds.detach().cpu().double().numpy()
    if (t <= 0).any():
        raise LsalsaError("problem.alphas: the scikit-learn reference needs every alpha > 0")
    c = t / t[0]
    A_scaled = A / c
    M = A.shape[0]
    model = Lasso(alpha=t[0] / M, fit_intercept=False, tol=tol, max_iter=max_iter)
    X = np.empty((Y.shape[0], A.shape[1]))
    for b, y in enumerate(Y):
        X[b] = model.fit(A_scaled, y).coef_ / c
    return X
