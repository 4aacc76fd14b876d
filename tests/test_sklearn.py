"""lsalsa.sklearn: LSALSACoder / LISTACoder as scikit-learn transformers.

On real digits in a Pipeline; equal to the truncated solvers when untrained; pickling; params;
input errors; and scikit-learn's own estimator checks.
"""
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import lsalsa
from lsalsa import LassoProblem, LsalsaError
from lsalsa.sklearn import LISTACoder, LSALSACoder
from lsalsa.solvers.salsa import DEFAULT_MU

# Small settings for everything but the digits pipeline: the estimator checks fit ~100 times.
CHEAP = dict(n_atoms=8, n_layers=3, dict_epochs=2, epochs=2, solver_max_iter=200, random_state=0)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fitted(digits):
    """An LSALSACoder fitted (dictionary learned, encoder trained) on 300 digits."""
    return LSALSACoder(**{**CHEAP, "n_atoms": 32}).fit(digits[:300])


# ---- on real data -------------------------------------------------------------------------------
def test_pipeline_on_digits_beats_chance_by_far():
    """Learned dictionary -> optimal codes -> trained LSALSA codes -> logistic regression, on
    scikit-learn's 8x8 digits scaled to [0, 1] (10 classes: chance is 0.1)."""
    data = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data / 16.0, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    coder = LSALSACoder(n_atoms=64, alpha=0.1, n_layers=3, dict_epochs=3, epochs=5, random_state=0)
    clf = Pipeline([("codes", coder), ("logreg", LogisticRegression(max_iter=1000))])
    clf.fit(X_train, y_train)
    accuracy = clf.score(X_test, y_test)
    # measured 0.967 (logistic regression on the raw pixels: 0.969)
    assert accuracy > 0.93
    codes = clf.named_steps["codes"].transform(X_test)
    assert codes.shape == (len(X_test), 64) and codes.dtype == np.float32
    assert 0.05 < np.mean(codes != 0) < 0.9  # sparse, but not empty
    history = coder.history_
    assert history.epoch == [1, 2, 3, 4, 5] and history.train_loss[-1] < history.train_loss[0]
    # the trained encoder predicts held-out optimal codes better than the SALSA it started as
    problem = coder.problem_
    Y = torch.from_numpy(X_test.astype(np.float32))
    X_star = lsalsa.salsa(problem, Y, mu=coder.mu, tol=1e-5, max_iter=10_000).X
    untrained = lsalsa.salsa(problem, Y, mu=coder.mu, n_iter=coder.n_layers).X
    trained_rmse = lsalsa.code_rmse(torch.from_numpy(codes), X_star)
    untrained_rmse = lsalsa.code_rmse(untrained, X_star)
    assert trained_rmse < 0.9 * untrained_rmse  # measured 0.116 against 0.141


# ---- equal to the library ---------------------------------------------------------------------------
def test_transform_equals_encoder(fitted, digits):
    Y = digits[300:340]
    with torch.no_grad():
        expected = fitted.encoder_(torch.from_numpy(Y.astype(np.float32))).numpy()
    np.testing.assert_array_equal(fitted.transform(Y), expected)
    # components_ is the paper's A transposed: atoms as rows, unit norm when learned
    np.testing.assert_array_equal(fitted.components_, fitted.problem_.A.T.numpy())
    np.testing.assert_allclose(np.linalg.norm(fitted.components_, axis=1), 1, rtol=1e-5)
    assert fitted.components_.shape == (32, 64) and fitted.n_features_in_ == 64 and fitted.n_atoms_ == 32


def test_a_rows_code_does_not_depend_on_the_rows_encoded_with_it(fitted, digits):
    """float32 codes of 40 rows at once, one at a time and in uneven pieces: bit for bit equal
    (a chunk of fewer than 16 rows is padded, or BLAS sums its products in another order)."""
    Y = digits[300:340]
    together = fitted.transform(Y)
    np.testing.assert_array_equal(np.concatenate([fitted.transform(Y[i:i + 1]) for i in range(40)]), together)
    np.testing.assert_array_equal(np.concatenate([fitted.transform(Y[a:b]) for a, b in [(0, 3), (3, 20), (20, 40)]]), together)


@pytest.mark.parametrize("T", [1, 4])
def test_untrained_lsalsa_coder_equals_salsa(digits, digit_atoms, T):
    """With a given dictionary and epochs=0, transform is T iterations of SALSA (float64)."""
    Y = digits[:20]
    dictionary = digit_atoms.T.copy()  # sklearn layout: atoms as rows
    coder = LSALSACoder(dictionary=dictionary, alpha=0.15, mu=0.7, n_layers=T, epochs=0, dtype="float64")
    codes = coder.fit(Y).transform(Y)
    problem = LassoProblem(digit_atoms, alphas=0.15)
    expected = lsalsa.salsa(problem, torch.from_numpy(Y), mu=0.7, n_iter=T).X.numpy()
    np.testing.assert_allclose(codes, expected, rtol=0, atol=1e-12)
    assert codes.dtype == np.float64 and coder.history_ is None and coder.dictionary_history_ is None
    np.testing.assert_array_equal(coder.components_, dictionary)
    np.testing.assert_array_equal(dictionary, digit_atoms.T)  # the argument is not modified


def test_untrained_lista_coder_equals_ista(digits, digit_atoms):
    Y = digits[:20]
    coder = LISTACoder(dictionary=digit_atoms.T, alpha=0.15, n_layers=3, epochs=0, dtype="float64")
    codes = coder.fit(Y).transform(Y)
    expected = lsalsa.ista(LassoProblem(digit_atoms, alphas=0.15), torch.from_numpy(Y), n_iter=3).X.numpy()
    np.testing.assert_allclose(codes, expected, rtol=0, atol=1e-12)


def test_inverse_transform_and_feature_names(fitted, digits):
    codes = fitted.transform(digits[:5])
    np.testing.assert_allclose(fitted.inverse_transform(codes), codes @ fitted.components_, rtol=1e-6)
    names = fitted.get_feature_names_out()
    assert names[0] == "lsalsacoder0" and len(names) == 32
    with pytest.raises(LsalsaError, match=r"X: expected codes of shape \(n_samples, 32\), got \(5, 64\)"):
        fitted.inverse_transform(digits[:5])


# ---- dtypes ----------------------------------------------------------------------------------------
def test_dtypes(digits):
    """float32 by default whatever comes in (integers too); dtype=None follows the input."""
    pixels = load_digits().data[:60].astype(np.int64)  # the raw 0..16 integer images
    coder = LISTACoder(**CHEAP).fit(pixels / 16.0)
    assert coder.components_.dtype == np.float32 and coder.encoder_.W_e.dtype == torch.float32
    assert coder.transform(pixels).dtype == np.float32
    follow = dict(CHEAP, dtype=None)
    assert LSALSACoder(**follow).fit(digits[:60]).transform(digits[:5]).dtype == np.float64
    assert LSALSACoder(**follow).fit(digits[:60].astype(np.float32)).transform(digits[:5]).dtype == np.float32
    assert LSALSACoder(**follow).fit(pixels).components_.dtype == np.float64


# ---- pickling, params -------------------------------------------------------------------------------
def test_pickle_round_trip_gives_identical_codes(fitted, digits):
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(digits[300:400]), fitted.transform(digits[300:400]))
    assert restored.get_params() == fitted.get_params()
    assert restored.history_.train_loss == fitted.history_.train_loss


def test_get_set_params_and_clone():
    coder = LSALSACoder(n_atoms=16, alpha=0.2)
    params = coder.get_params()
    assert params["n_atoms"] == 16 and params["alpha"] == 0.2 and params["mu"] == DEFAULT_MU
    assert params["dictionary"] is None and params["epochs"] == 20 and params["dtype"] == "float32"
    assert "mu" not in LISTACoder().get_params()
    assert coder.set_params(alpha=0.05, n_layers=7) is coder
    assert coder.alpha == 0.05 and coder.n_layers == 7
    twin = clone(coder)
    assert twin.get_params() == coder.get_params() and not hasattr(twin, "encoder_")
    # invalid values are stored as given (scikit-learn validates in fit), then refused there
    coder.set_params(alpha=-1.0)
    assert coder.alpha == -1.0
    with pytest.raises(LsalsaError, match="alpha: expected finite numbers >= 0, got -1.0"):
        coder.fit(np.ones((10, 4)))


# ---- errors -------------------------------------------------------------------------------------
def test_bad_input_errors(fitted, digits):
    with pytest.raises(NotFittedError):
        LSALSACoder().transform(digits[:3])
    with pytest.raises(LsalsaError, match="X has 10 features, but LSALSACoder is expecting 64 features"):
        fitted.transform(digits[:3, :10])
    bad = digits[:40].copy()
    bad[3, 5] = np.nan
    for call in (fitted.transform, LSALSACoder(**CHEAP).fit):
        with pytest.raises(LsalsaError, match="X: Input X contains NaN"):
            call(bad)
    with pytest.raises(ValueError, match="Expected 2D array"):  # LsalsaError is a ValueError
        fitted.transform(digits[0])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"alpha": -0.1}, "alpha: expected finite numbers >= 0"),
        ({"n_layers": 0}, "n_layers: expected an integer >= 1, got 0"),
        ({"mu": 0}, "mu: expected a finite number > 0"),
        ({"solver": "ista"}, r"solver: expected one of \['fista', 'salsa'\], got 'ista'"),
        ({"optimizer": "rmsprop"}, "optimizer: expected one of"),
        ({"dtype": "float16"}, "dtype: expected 'float32', 'float64' or None, got 'float16'"),
        ({"random_state": -3}, "random_state: expected an integer >= 0"),
        ({"lr_decay": 2.0}, "lr_decay: expected 0 < lr_decay <= 1"),
        ({"dictionary": np.ones((5, 3))}, r"dictionary: expected shape \(n_atoms, 4\) .* got \(5, 3\)"),
        ({"dictionary": np.eye(4)[[0, 1, 1]] * [[1], [1], [0]]}, r"dictionary: expected no zero atom .* \[2\]"),
        ({"dictionary": np.full((3, 4), np.inf)}, "dictionary: expected finite values"),
        ({"dictionary": np.eye(4), "n_atoms": 5}, "n_atoms: expected None or 4"),
    ],
)
def test_bad_parameters_fail_in_fit(params, message):
    coder = LSALSACoder(**{**CHEAP, "n_atoms": None, **params})  # construction never raises
    with pytest.raises(LsalsaError, match=message):
        coder.fit(np.random.default_rng(0).random((12, 4)))


# ---- scikit-learn's estimator checks ---------------------------------------------------------------
# scikit-learn 1.9.1, check_estimator(legacy=True), both coders with the CHEAP settings (and,
# measured once, with dtype=None and dtype="float64" too): 46 checks pass, none is expected to
# fail, one is skipped:
#   passed: check_estimator_cloneable, check_estimator_tags_renamed, check_valid_tag_types,
#     check_estimator_repr, check_no_attributes_set_in_init, check_fit_score_takes_y,
#     check_estimators_overwrite_params, check_dont_overwrite_parameters,
#     check_estimators_fit_returns_self, check_readonly_memmap_input, check_estimators_unfitted,
#     check_do_not_raise_errors_in_init_or_set_params, check_n_features_in_after_fitting,
#     check_mixin_order, check_positive_only_tag_during_fit, check_estimators_dtypes,
#     check_complex_data, check_dtype_object, check_estimators_empty_data_messages,
#     check_pipeline_consistency, check_estimators_nan_inf, check_estimator_sparse_tag,
#     check_estimator_sparse_array, check_estimator_sparse_matrix (sparse input is refused with
#     scikit-learn's TypeError), check_estimators_pickle (twice: plain and readonly memmap),
#     check_f_contiguous_array_estimator, check_transformer_data_not_an_array,
#     check_transformer_general (twice), check_transformer_preserve_dtypes (tag preserves_dtype is
#     the `dtype` argument: ["float32"] by default, ["float64", "float32"] for dtype=None),
#     check_transformers_unfitted, check_transformer_n_iter, check_parameters_default_constructible,
#     check_methods_sample_order_invariance, check_methods_subset_invariance (float32 codes equal
#     to 1e-7 whatever the batch), check_fit2d_1sample, check_fit2d_1feature,
#     check_get_params_invariance, check_set_params, check_dict_unchanged, check_fit_idempotent,
#     check_fit_check_is_fitted, check_n_features_in, check_fit1d, check_fit2d_predict1d.
#   skipped: check_array_api_input -- does not apply: the coders do not declare array-API
#     support (input is converted to numpy, computed in torch); scikit-learn skips it anyway
#     unless SCIPY_ARRAY_API=1 is set.
# Not covered by check_estimator: sample_weight checks (fit takes none), classifier/regressor
# checks (a transformer), allow_nan (NaN is refused, as the tags say).
@parametrize_with_checks([LSALSACoder(**CHEAP), LISTACoder(**CHEAP)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
