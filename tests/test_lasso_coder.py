"""lsalsa.sklearn.LassoCoder (issue 20, item 1): fixed-dictionary lasso codes as a scikit-learn
transformer; the same codes as scikit-learn's Lasso and SparseCoder on real digits; its checks."""
import functools

import numpy as np
import pytest
from sklearn.decomposition import SparseCoder
from sklearn.linear_model import Lasso
from sklearn.utils.estimator_checks import parametrize_with_checks

from lsalsa import LsalsaError
from lsalsa.sklearn import LassoCoder


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def atoms(digit_atoms):
    return digit_atoms.T.copy()  # scikit-learn's layout: (48 atoms, 64 features)


@pytest.mark.parametrize("solver", ["salsa", "fista"])
def test_the_codes_of_scikit_learns_lasso_and_sparse_coder(solver, atoms, digits):
    """Per sample, Lasso minimises 1/(2 n_features) ||y - D^T c||^2 + a ||c||_1: the same codes
    at a = alpha / n_features; SparseCoder's lasso_cd does that division itself."""
    Y, alpha = digits[:60], 0.15
    codes = LassoCoder(atoms, alpha=alpha, solver=solver, solver_tol=1e-10, solver_max_iter=100_000).fit(Y).transform(Y)
    lasso = Lasso(alpha=alpha / 64, fit_intercept=False, tol=1e-12, max_iter=100_000)
    expected = np.array([lasso.fit(atoms.T, y).coef_ for y in Y])
    np.testing.assert_allclose(codes, expected, rtol=0, atol=1e-6)  # measured 3e-11 (SALSA), 2e-7 (FISTA)
    sparse = SparseCoder(atoms, transform_algorithm="lasso_cd", transform_alpha=alpha,
                         transform_max_iter=100_000).transform(Y)
    np.testing.assert_allclose(codes, sparse, rtol=0, atol=1e-6)  # measured 3.3e-7: SparseCoder's tol 1e-4
    assert codes.dtype == np.float64 and 0.05 < np.mean(codes != 0) < 0.9


def test_float32_codes_do_not_depend_on_the_batch(atoms, digits):
    coder = LassoCoder(atoms, alpha=0.15).fit(digits[:100].astype(np.float32))
    Y = digits[100:130].astype(np.float32)
    together = coder.transform(Y)
    assert together.dtype == np.float32 and coder.mu_ > 0
    np.testing.assert_array_equal(np.concatenate([coder.transform(Y[i:i + 1]) for i in range(30)]), together)
    np.testing.assert_allclose(coder.inverse_transform(together), together @ coder.components_)


def test_bad_arguments(atoms, digits):
    with pytest.raises(LsalsaError, match=r"^dictionary: expected an array \(n_atoms, n_features\), got None$"):
        LassoCoder().fit(digits[:5])
    with pytest.raises(LsalsaError, match=r"^dictionary: expected shape \(n_atoms, 63\) with atoms as rows"):
        LassoCoder(atoms).fit(digits[:5, :63])
    with pytest.raises(LsalsaError, match=r"^solver: expected one of \['salsa', 'fista'\], got 'lars'$"):
        LassoCoder(atoms, solver="lars").fit(digits[:5])
    with pytest.raises(LsalsaError, match=r"^solver_tol: expected a finite number > 0, got 0$"):
        LassoCoder(atoms, solver_tol=0).fit(digits[:5])


# scikit-learn's checks fit data of various widths: the features of each check's data, found by
# running them (3 for the others), so that the dictionary fits.
CHECK_FEATURES = {
    "check_fit2d_1feature": 1, "check_estimators_overwrite_params": 2, "check_estimators_fit_returns_self": 2,
    "check_readonly_memmap_input": 2, "check_fit_idempotent": 2, "check_fit_check_is_fitted": 2,
    "check_n_features_in": 2, "check_n_features_in_after_fitting": 4, "check_positive_only_tag_during_fit": 4,
    "check_estimators_dtypes": 5, "check_dtype_object": 10, "check_fit2d_1sample": 10,
}


@parametrize_with_checks([LassoCoder(np.random.default_rng(0).normal(size=(5, 3)))])
def test_sklearn_estimator_checks(estimator, check):
    name = check.func.__name__ if isinstance(check, functools.partial) else check.__name__
    estimator.set_params(dictionary=np.random.default_rng(0).normal(size=(5, CHECK_FEATURES.get(name, 3))))
    check(estimator)
