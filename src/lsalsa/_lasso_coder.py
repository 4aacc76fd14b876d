"""``LassoCoder``: lasso codes of a fixed dictionary, as a scikit-learn transformer (no training).

Exported from :mod:`lsalsa.sklearn`, whose input checks it shares. Where ``LSALSACoder`` trains an encoder to approximate the codes, ``LassoCoder`` solves
the lasso (Eq. 4) for every row to convergence with SALSA or FISTA, like scikit-learn's
``SparseCoder(transform_algorithm="lasso_cd")`` and with the same ``alpha``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._sklearn_base import DTYPES, SignalTransformer, torch_device, torch_dtype
from ._validation import check_positive, check_positive_int
from .errors import LsalsaError
from .problem import LassoProblem
from .solvers import auto_mu, fista, prepare_solver, salsa

SOLVERS = ("salsa", "fista")


@dataclass(kw_only=True, repr=False, eq=False)
class LassoCoder(SignalTransformer):
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
    operators_ : the solver's operators for ``problem_`` (and ``mu_``), prepared once in ``fit``
        for every ``transform`` (:func:`lsalsa.prepare_solver`).
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
        dtype = torch_dtype(self.dtype)
        if self.solver not in SOLVERS:
            raise LsalsaError(f"solver: expected one of {list(SOLVERS)}, got {self.solver!r}")
        check_positive(self.solver_tol, "solver_tol")
        check_positive_int(self.solver_max_iter, "solver_max_iter")
        device = torch_device(self.device)
        X = self._validate(X, reset=True, dtype=dtype)
        dtype = DTYPES[X.dtype.name]
        if self.dictionary is None:
            raise LsalsaError("dictionary: expected an array (n_atoms, n_features), got None")
        A = self._check_dictionary(X.shape[1], dtype, device)
        self.problem_ = LassoProblem(A, self.alpha)
        self.components_ = A.T.cpu().numpy().copy()
        self.mu_ = None
        if self.solver == "salsa":
            Y = self._to_tensor(X, dtype, device)
            self.mu_ = auto_mu(self.problem_, Y) if self.mu == "auto" else check_positive(self.mu, "mu")
        self.operators_ = prepare_solver(self.problem_, self.solver, mu=self.mu_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The lasso codes ``(n_samples, n_atoms)`` (numpy, the fitted dtype) of the rows of
        ``X: (n_samples, n_features)``, solved 8192 rows at a time."""
        kw = {"tol": self.solver_tol, "max_iter": self.solver_max_iter, "operators": self.operators_}
        if self.solver == "salsa":
            return self._encode_rows(X, lambda Y: salsa(self.problem_, Y, mu=self.mu_, **kw).X)
        return self._encode_rows(X, lambda Y: fista(self.problem_, Y, **kw).X)
