"""``LassoCoder``: lasso codes of a fixed dictionary, as a scikit-learn transformer (no training).

Exported from :mod:`lsalsa.sklearn`, whose input checks it shares. Where ``LSALSACoder`` trains an encoder to approximate the codes, ``LassoCoder`` solves
the lasso (Eq. 4) for every row to convergence with SALSA or FISTA, like scikit-learn's
``SparseCoder(transform_algorithm="lasso_cd")`` and with the same ``alpha``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._validation import check_positive, check_positive_int
from .errors import LsalsaError
from .problem import LassoProblem
from .solvers import auto_mu, fista, salsa

SOLVERS = ("salsa", "fista")


@dataclass(kw_only=True, repr=False, eq=False)
class LassoCoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Sparse codes of a fixed dictionary by the lasso, solved to convergence (no training).

    ``transform(X)`` returns, for every row ``y`` of ``X: (n_samples, n_features)``, the code
    ``c: (n_atoms,)`` minimising ``1/2 ||y - c @ dictionary||^2 + alpha ||c||_1`` (Eq. 4), by
    :func:`lsalsa.salsa` (default) or :func:`lsalsa.fista`. This is scikit-learn's
    ``SparseCoder(dictionary, transform_algorithm="lasso_cd", transform_alpha=alpha)``; its
    ``Lasso`` averages the data term over the n_features entries of a signal, so there the same
    code needs ``Lasso(alpha=alpha / n_features)``.

    Parameters
    ----------
    dictionary : array (n_atoms, n_features)
        The atoms as ROWS (scikit-learn's layout; lsalsa's ``A`` is its transpose), finite, none
        zero. Used as given (not normalised).
    alpha : float >= 0, default 1.0
        The l1 weight of every code.
    solver : {"salsa", "fista"}, default "salsa"
        SALSA (ADMM, with the exact finish on each row's support where it applies) or FISTA.
    solver_tol, solver_max_iter : default 1e-6, 10000
        The stopping rule: relative change of a code below ``solver_tol``, or that many iterations.
        Codes that then fail the KKT test at ``solver_tol`` raise a
        :class:`~lsalsa.errors.LsalsaConvergenceWarning` (see :class:`lsalsa.SolverResult`).
    mu : float > 0 or "auto", default "auto"
        SALSA's penalty: "auto" picks one in ``fit`` by :func:`lsalsa.solvers.auto_mu` on the
        fit rows (``mu_``); every ``transform`` uses it, so a row's code does not depend on the
        rows transformed with it. Ignored by FISTA.
    dtype : {"float32", "float64", None}, default None
        The precision of the codes; None follows ``fit``'s input (float32 stays float32,
        anything else becomes float64). ``transform`` converts its input to it.
    device : str, torch.device or None, default None (CPU)
        Where to solve; ``transform`` returns numpy arrays.

    Attributes
    ----------
    components_ : (n_atoms, n_features) ndarray, the dictionary in the fitted dtype.
    problem_ : :class:`lsalsa.LassoProblem` (``A = components_.T``).
    mu_ : float or None, SALSA's penalty (None for FISTA).
    n_features_in_, feature_names_in_ : as for any scikit-learn estimator.

    Examples
    --------
    >>> coder = LassoCoder(atoms, alpha=0.1).fit(X)  # doctest: +SKIP
    >>> codes = coder.transform(X)                    # (n_samples, n_atoms)  # doctest: +SKIP
    """

    n_atoms = None  # not a parameter (no annotation): the shared dictionary check reads it

    dictionary: Any = field(default=None, kw_only=False)
    alpha: float = 1.0
    solver: str = "salsa"
    solver_tol: float = 1e-6
    solver_max_iter: int = 10_000
    mu: float | str = "auto"
    dtype: Any = None
    device: Any = None

    def fit(self, X: Any, y: Any = None) -> "LassoCoder":
        """Check the parameters and the dictionary against ``X: (n_samples, n_features)``, and
        resolve SALSA's ``mu="auto"`` on its rows; ``y`` is ignored. Returns self."""
        dtype = _torch_dtype(self.dtype)
        if self.solver not in SOLVERS:
            raise LsalsaError(f"solver: expected one of {list(SOLVERS)}, got {self.solver!r}")
        check_positive(self.solver_tol, "solver_tol")
        check_positive_int(self.solver_max_iter, "solver_max_iter")
        try:
            device = torch.device("cpu" if self.device is None else self.device)
        except (RuntimeError, TypeError) as exc:
            raise LsalsaError(f"device: expected a torch device such as 'cpu' or 'cuda', got {self.device!r}") from exc
        X = _UnrolledCoder._validate(self, X, reset=True, dtype=dtype)
        dtype = _DTYPES[X.dtype.name]
        if self.dictionary is None:
            raise LsalsaError("dictionary: expected an array (n_atoms, n_features), got None")
        A = _UnrolledCoder._check_dictionary(self, X.shape[1], dtype, device)
        self.problem_ = LassoProblem(A, self.alpha)
        self.components_ = A.T.cpu().numpy().copy()
        self.mu_ = None
        if self.solver == "salsa":
            Y = _UnrolledCoder._to_tensor(X, dtype, device)
            self.mu_ = auto_mu(self.problem_, Y) if self.mu == "auto" else check_positive(self.mu, "mu")
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The lasso codes ``(n_samples, n_atoms)`` (numpy, the fitted dtype) of the rows of
        ``X: (n_samples, n_features)``, solved ``8192`` rows at a time."""
        check_is_fitted(self, "problem_")
        X = _UnrolledCoder._validate(self, X, reset=False, dtype=self.components_.dtype)
        Y = _UnrolledCoder._to_tensor(X, self.problem_.dtype, torch.device("cpu"))
        out = np.empty((X.shape[0], self.problem_.n_atoms), dtype=self.components_.dtype)
        kw = {"tol": self.solver_tol, "max_iter": self.solver_max_iter}
        for i in range(0, X.shape[0], _CHUNK):
            chunk = Y[i:i + _CHUNK]
            n = chunk.shape[0]
            if n < _MIN_ROWS:  # the padding of _UnrolledCoder.transform: batch-invariant float32 codes
                chunk = torch.cat([chunk, chunk.new_zeros(_MIN_ROWS - n, chunk.shape[1])])
            chunk = chunk.to(self.problem_.device)
            if self.solver == "salsa":
                res = salsa(self.problem_, chunk, mu=self.mu_, **kw)
            else:
                res = fista(self.problem_, chunk, **kw)
            out[i:i + n] = res.X[:n].cpu().numpy()
        return out

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Signals ``codes @ components_`` ``(n_samples, n_features)`` of codes ``(n_samples, n_atoms)``."""
        check_is_fitted(self, "problem_")
        codes = _UnrolledCoder._validate(self, X, reset=False, dtype=self.components_.dtype, check_features=False)
        if codes.shape[1] != self.problem_.n_atoms:
            raise LsalsaError(f"X: expected codes of shape (n_samples, {self.problem_.n_atoms}), got {codes.shape}")
        return codes @ self.components_

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        """A transformer, no target, no NaN; preserves float32 and float64 (with ``dtype=None``)."""
        tags = super().__sklearn_tags__()
        try:
            dtype = _torch_dtype(self.dtype)
        except LsalsaError:
            dtype = None  # invalid; fit will say so
        tags.transformer_tags.preserves_dtype = (
            ["float64", "float32"] if dtype is None else [str(dtype).removeprefix("torch.")]
        )
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        return tags


# lsalsa.sklearn's input checks, imported last: that module imports this one's class at its end,
# so either module may be imported first
from .sklearn import _CHUNK, _DTYPES, _MIN_ROWS, _UnrolledCoder, _torch_dtype  # noqa: E402
