"""scikit-learn estimators: learned sparse coders (LSALSA, LISTA) as pipeline transformers.

``LSALSACoder`` and ``LISTACoder`` wrap the library's whole recipe in ``fit``: learn a dictionary
(Eq. 5) unless one is given, compute the optimal codes of the training signals (Eq. 4) with FISTA
or SALSA run to convergence, and train the unrolled encoder (Alg. 3/4, or LISTA) to predict them
(Eq. 15). ``transform`` then runs the trained encoder: a fixed number of layers, so a fast and
differentiable approximation of the lasso codes, usable in a ``Pipeline`` in front of a classifier.

Conventions differ between the two worlds, and these estimators speak scikit-learn's:

* scikit-learn stores a dictionary as rows, ``components_: (n_atoms, n_features)``; the paper and
  the rest of lsalsa store atoms as columns, ``A: (M, N) = components_.T``.
* scikit-learn calls the signals ``X`` (rows are samples); they are the paper's ``Y: (B, M)``,
  and what ``transform`` returns are the paper's codes ``X: (B, N)``.

Both estimators use one dictionary (a plain lasso, Eq. 4). Source separation with several
dictionaries and one alpha each (MCA, Eq. 6) needs the library API:
``LassoProblem.from_dictionaries`` with :class:`lsalsa.LSALSA` and :func:`lsalsa.train_encoder`.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import check_nonneg_float, check_nonneg_int, check_positive, check_positive_int
from .codes import SOLVERS as CODE_SOLVERS
from .codes import optimal_codes
from .dictionary import learn_dictionary
from .encoders import LISTA, LSALSA
from .encoders._base import LEARN_THRESHOLDS
from .errors import LsalsaError
from .problem import LassoProblem
from .solvers.salsa import DEFAULT_MU
from .train import OPTIMIZERS, TrainConfig, train_encoder

__all__ = ["LSALSACoder", "LISTACoder"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_CHUNK = 8192  # rows encoded at once by transform: bounds memory for large inputs


def _torch_dtype(dtype: Any) -> torch.dtype | None:
    """The parameter ``dtype`` as a torch dtype (None: follow the input)."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _DTYPES:
        raise LsalsaError(f"dtype: expected 'float32', 'float64' or None, got {dtype!r}")
    return _DTYPES[name]


class _UnrolledCoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """What both coders share: validation, dictionary, optimal codes, training, transform.

    Subclasses list their arguments in ``__init__`` and implement ``_build_encoder``.
    """

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "_UnrolledCoder":
        """Learn the dictionary (unless given), the optimal codes and the encoder from ``X``.

        Parameters
        ----------
        X : array-like (n_samples, n_features), the training signals as rows (the paper's Y).
            Integer and float input is accepted and converted to the estimator's ``dtype``.
        y : ignored; present for the scikit-learn API (pipelines pass their target here).

        Returns
        -------
        self
        """
        params = self._check_params()
        dtype = params["dtype"]
        X = self._validate(X, reset=True, dtype=dtype)
        torch_dtype = _DTYPES[X.dtype.name]
        device = params["device"]
        Y = self._to_tensor(X, torch_dtype, device)
        seed = params["seed"]

        if self.dictionary is None:
            n_atoms = X.shape[1] if self.n_atoms is None else params["n_atoms"]
            # init="data" draws atoms from the non-zero signals; with fewer of them than atoms
            # (tiny data sets), Gaussian atoms are the only choice that exists.
            n_nonzero = int((torch.linalg.vector_norm(Y, dim=1) > 0).sum())
            A, dict_history = learn_dictionary(
                Y, n_atoms, params["alpha"], n_epochs=params["dict_epochs"],
                batch_size=params["dict_batch_size"], lr=params["dict_lr"], seed=seed,
                init="data" if n_nonzero >= n_atoms else "random", progress=bool(self.verbose),
                return_history=True,
            )
        else:
            A = self._check_dictionary(X.shape[1], torch_dtype, device)
            dict_history = None
        problem = LassoProblem(A, params["alpha"])
        encoder = self._build_encoder(problem, params)

        history = None
        if params["epochs"] > 0:
            X_star = optimal_codes(
                problem, X, solver=params["solver"], tol=params["solver_tol"],
                max_iter=params["solver_max_iter"], mu=params.get("mu"),
                progress=bool(self.verbose),
            )
            config = TrainConfig(
                epochs=params["epochs"], batch_size=params["batch_size"], lr=params["lr"],
                lr_decay=params["lr_decay"], optimizer=params["optimizer"], rel_tol=params["rel_tol"],
                seed=seed,
            )
            history = train_encoder(encoder, Y, torch.from_numpy(X_star).to(device), config,
                                    progress=bool(self.verbose))
        encoder.eval()

        self.problem_ = problem
        self.encoder_ = encoder
        self.components_ = problem.A.T.detach().cpu().numpy().copy()
        self.n_atoms_ = problem.n_atoms
        self.history_ = history
        self.dictionary_history_ = dict_history
        return self

    def _check_params(self) -> dict[str, Any]:
        """Validate the constructor's arguments (scikit-learn validates in fit, not __init__)."""
        p: dict[str, Any] = {}
        if self.n_atoms is not None:
            p["n_atoms"] = check_positive_int(self.n_atoms, "n_atoms")
        p["alpha"] = check_nonneg_float(self.alpha, "alpha")
        p["n_layers"] = check_positive_int(self.n_layers, "n_layers")
        p["dict_epochs"] = check_nonneg_int(self.dict_epochs, "dict_epochs")
        p["dict_batch_size"] = check_positive_int(self.dict_batch_size, "dict_batch_size")
        p["dict_lr"] = check_positive(self.dict_lr, "dict_lr")
        if self.solver not in CODE_SOLVERS:
            raise LsalsaError(f"solver: expected one of {list(CODE_SOLVERS)}, got {self.solver!r}")
        p["solver"] = self.solver
        p["solver_tol"] = check_positive(self.solver_tol, "solver_tol")
        p["solver_max_iter"] = check_positive_int(self.solver_max_iter, "solver_max_iter")
        p["epochs"] = check_nonneg_int(self.epochs, "epochs")
        p["batch_size"] = check_positive_int(self.batch_size, "batch_size")
        p["lr"] = check_positive(self.lr, "lr")
        p["lr_decay"] = check_positive(self.lr_decay, "lr_decay")
        if p["lr_decay"] > 1:
            raise LsalsaError(f"lr_decay: expected 0 < lr_decay <= 1, got {self.lr_decay!r}")
        if self.optimizer not in OPTIMIZERS:
            raise LsalsaError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        p["optimizer"] = self.optimizer
        p["rel_tol"] = 0.0 if self.rel_tol == 0 else check_positive(self.rel_tol, "rel_tol")
        if not isinstance(self.tied, bool):
            raise LsalsaError(f"tied: expected True or False, got {self.tied!r}")
        if self.learn_thresholds not in LEARN_THRESHOLDS:
            raise LsalsaError(
                f"learn_thresholds: expected one of {list(LEARN_THRESHOLDS)}, got {self.learn_thresholds!r}"
            )
        p["tied"], p["learn_thresholds"] = self.tied, self.learn_thresholds
        p["dtype"] = _torch_dtype(self.dtype)
        try:
            p["device"] = torch.device("cpu" if self.device is None else self.device)
        except (RuntimeError, TypeError) as exc:
            raise LsalsaError(f"device: expected a torch device such as 'cpu' or 'cuda', got {self.device!r}") from exc
        p["seed"] = self._seed()
        p.update(self._encoder_params())
        return p

    def _encoder_params(self) -> dict[str, Any]:
        """The subclass's own validated arguments."""
        return {}

    def _seed(self) -> int:
        """An int ``random_state`` is the library's seed itself; None or a RandomState draws one."""
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            if rs < 0:
                raise LsalsaError(f"random_state: expected an integer >= 0, None or a RandomState, got {rs}")
            return int(rs)
        if rs is None or isinstance(rs, np.random.RandomState):
            return int(check_random_state(rs).randint(np.iinfo(np.int32).max))
        raise LsalsaError(f"random_state: expected an integer >= 0, None or a RandomState, got {rs!r}")

    def _check_dictionary(self, n_features: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The given dictionary (rows = atoms, scikit-learn's layout) as the paper's ``A: (M, N)``."""
        try:
            D = np.asarray(self.dictionary.detach().cpu() if isinstance(self.dictionary, torch.Tensor)
                           else self.dictionary)
        except (TypeError, ValueError) as exc:
            raise LsalsaError(
                f"dictionary: expected an array (n_atoms, n_features), got {type(self.dictionary).__name__}"
            ) from exc
        if D.ndim != 2 or D.shape[1] != n_features or D.shape[0] == 0:
            raise LsalsaError(
                f"dictionary: expected shape (n_atoms, {n_features}) with atoms as rows (scikit-learn's "
                f"layout, the transpose of the paper's A), got {D.shape}"
            )
        if self.n_atoms is not None and D.shape[0] != self.n_atoms:
            raise LsalsaError(f"n_atoms: expected None or {D.shape[0]} (the dictionary's rows), got {self.n_atoms!r}")
        if not (np.issubdtype(D.dtype, np.floating) or np.issubdtype(D.dtype, np.integer)):
            raise LsalsaError(f"dictionary: expected real numbers, got dtype {D.dtype}")
        if not np.isfinite(D).all():
            n_bad = int((~np.isfinite(D)).sum())
            raise LsalsaError(f"dictionary: expected finite values, found {n_bad} NaN/Inf entries")
        zero = np.flatnonzero(~D.any(axis=1))
        if zero.size:
            raise LsalsaError(f"dictionary: expected no zero atom (row), but row(s) {zero[:10].tolist()} are all zero")
        # a copy: the problem and encoder must not share memory with the user's array
        return torch.tensor(D.T, dtype=dtype, device=device)

    # ---- encoding ---------------------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """Codes of the signals ``X`` by the trained encoder (``n_layers`` unrolled iterations).

        Parameters
        ----------
        X : array-like (n_samples, n_features), signals as rows; converted to the dtype the
            estimator was fitted in.

        Returns
        -------
        codes : (n_samples, n_atoms) numpy array of the fitted dtype, the paper's ``X``; the same
            as ``encoder_(torch.from_numpy(X))``.
        """
        check_is_fitted(self, "encoder_")
        X = self._validate(X, reset=False, dtype=self.components_.dtype)
        Y = self._to_tensor(X, self.problem_.dtype, torch.device("cpu"))
        out = np.empty((X.shape[0], self.n_atoms_), dtype=self.components_.dtype)
        with torch.no_grad():
            for i in range(0, X.shape[0], _CHUNK):  # chunks go to the device one at a time
                out[i:i + _CHUNK] = self.encoder_(Y[i:i + _CHUNK].to(self.problem_.device)).cpu().numpy()
        return out

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Signals synthesised from codes, ``codes @ components_`` (the paper's ``A x``).

        Parameters
        ----------
        X : array-like (n_samples, n_atoms), codes (e.g. from :meth:`transform`).

        Returns
        -------
        signals : (n_samples, n_features) numpy array.
        """
        check_is_fitted(self, "encoder_")
        codes = self._validate(X, reset=False, dtype=self.components_.dtype, check_features=False)
        if codes.shape[1] != self.n_atoms_:
            raise LsalsaError(f"X: expected codes of shape (n_samples, {self.n_atoms_}), got {codes.shape}")
        return codes @ self.components_

    @property
    def _n_features_out(self) -> int:
        """Number of output features, for ``get_feature_names_out``."""
        return self.components_.shape[0]

    # ---- helpers ----------------------------------------------------------------------------
    def _validate(self, X: Any, *, reset: bool, dtype: Any, check_features: bool = True) -> np.ndarray:
        """scikit-learn's input checks (and ``n_features_in_``); their ValueErrors become
        LsalsaError (a ValueError too) with the same message."""
        if isinstance(dtype, torch.dtype):
            dtype = torch.empty(0, dtype=dtype).numpy().dtype
        # dtype None: float32 input stays float32, anything else becomes float64
        dtype = [np.float64, np.float32] if dtype is None else dtype
        try:
            if check_features:
                return validate_data(self, X, reset=reset, dtype=dtype)
            return check_array(X, dtype=dtype)
        except NotFittedError:
            raise
        except LsalsaError:
            raise
        except ValueError as exc:
            raise LsalsaError(f"X: {exc}") from exc

    @staticmethod
    def _to_tensor(X: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A validated numpy matrix as a tensor, sharing memory where it can."""
        if not X.flags.writeable or not X.flags.c_contiguous:
            X = np.array(X, order="C")  # torch cannot wrap read-only memory without a warning
        return torch.from_numpy(X).to(dtype=dtype, device=device)

    def __sklearn_tags__(self):
        """A transformer, no target, no NaN; it preserves the dtype(s) its ``dtype`` argument allows."""
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


_COMMON_DOC = """    n_atoms : int or None, default None
        N, the number of atoms of the dictionary learned in ``fit``; None: as many as features
        (a complete dictionary). Must be None or match the rows of ``dictionary`` when one is given.
    alpha : float >= 0, default 0.1
        The l1 weight of Eq. 4: each code minimises ``1/2 ||y - x @ components_||^2 +
        alpha ||x||_1`` (per sample, not averaged: scikit-learn's ``Lasso`` alpha is this alpha
        divided by n_features). Used for the dictionary, the optimal codes and the encoder.
    n_layers : int >= 1, default 5
        T, the unrolled iterations (layers) of the encoder: the cost of ``transform``.
    dictionary : array (n_atoms, n_features) or None, default None
        A fixed dictionary, atoms as ROWS (scikit-learn's layout, like ``components_``; the
        paper's ``A`` is its transpose). Used as given (not normalised); no atom may be zero.
        None learns one in ``fit`` with :func:`lsalsa.learn_dictionary` (unit-norm atoms).
    dict_epochs, dict_batch_size, dict_lr : default 10, 256, 3.0
        Dictionary learning (when ``dictionary`` is None): passes over the data, signals per SGD
        step, step size (the default suits signals scaled to [0, 1]; see ``dictionary_history_``).
        Atoms start as random training signals (Gaussian when there are fewer non-zero signals
        than atoms).
    solver : {"salsa", "fista"}, default "salsa"
        The solver run to convergence for the optimal codes the encoder learns to predict
        (:func:`lsalsa.optimal_codes`). Both reach the same codes; on 8x8 digits with 100 learned
        atoms SALSA needed ~500 iterations where FISTA needed ~4000.
    solver_tol, solver_max_iter : default 1e-5, 10000
        Its stopping rule: relative change of the codes below ``solver_tol``, or that many
        iterations. In float32 the change stalls near 1e-6, so a smaller ``solver_tol`` needs
        ``dtype="float64"`` to be reached.
    epochs : int >= 0, default 20
        Passes of encoder training (Eq. 15, :func:`lsalsa.train_encoder`). 0 skips training (and
        the optimal codes): the encoder is then exactly the truncated solver.
    batch_size, lr, lr_decay, optimizer, rel_tol : default 100, <<lr>>, 1.0, "adam", 1e-6
        Training settings, as in :class:`lsalsa.TrainConfig` (``rel_tol`` stops training early when
        the loss changes by less, relatively; 0 disables it). The learning rate is
        problem-dependent; the default suited [0, 1]-scaled digits. Training that diverges
        raises :class:`lsalsa.LsalsaError` asking for a lower ``lr``.
    tied : bool, default True
        One splitting matrix ``S`` shared by all layers (the paper) or one per layer.
    learn_thresholds : {None, "coordinate", "dictionary"}, default None
        Fixed thresholds (the paper) or learnable ones.
    dtype : {"float32", "float64", None}, default "float32"
        The precision of the dictionary, encoder and codes. Input of any numeric dtype (integer,
        float64, ...) is converted to it, and ``transform`` returns it. None follows the ``fit``
        input: float32 stays float32, anything else (float64, integers) becomes float64.
    device : str, torch.device or None, default None (CPU)
        Where to learn and encode (e.g. "cuda"); ``transform`` always returns a numpy array. A
        pickled estimator unpickles its encoder onto the same device.
    random_state : int >= 0, RandomState or None, default None
        Seeds the initial atoms, the dictionary's batch order and the training shuffle (through
        the library's own ``torch.Generator``s; no global state is touched). An int is used as
        the library's ``seed``; None gives a different run each ``fit``.
    verbose : bool, default False
        Show tqdm progress bars for the three stages of ``fit``.

    Attributes
    ----------
    components_ : (n_atoms, n_features) ndarray
        The dictionary, atoms as rows (scikit-learn's layout; ``problem_.A`` is its transpose).
    encoder_ : torch.nn.Module
        The trained encoder, ``(B, n_features) tensor -> (B, n_atoms) tensor``.
    problem_ : :class:`lsalsa.LassoProblem`
        The lasso problem (dictionary and alpha) the encoder approximates.
    n_atoms_ : int
        Number of atoms (output features).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit``, when ``X`` was a DataFrame with string column names.
    history_ : :class:`lsalsa.TrainHistory` or None
        Per-epoch training loss, learning rate, seconds; None when ``epochs == 0``.
    dictionary_history_ : list of dict or None
        Per-epoch rows of dictionary learning; None when ``dictionary`` was given.

    Notes
    -----
    One dictionary only: separating sources with several dictionaries (MCA, Eq. 6) needs the
    library API (``LassoProblem.from_dictionaries``, :func:`lsalsa.train_encoder`).
    The estimator pickles (the encoder is a torch module); ``get_params``/``set_params``/``clone``
    work as for any scikit-learn estimator, and arguments are validated in ``fit``.

"""


class LSALSACoder(_UnrolledCoder):
    """Sparse coding by a trained LSALSA network (Alg. 3/4), as a scikit-learn transformer.

    ``fit(X)`` learns a dictionary for the signals ``X: (n_samples, n_features)`` (Eq. 5, unless
    ``dictionary`` is given), solves the lasso (Eq. 4) for every training signal to convergence,
    and trains ``LSALSA.from_problem(problem, n_layers, mu)`` to predict those codes (Eq. 15).
    ``transform(X)`` returns the network's codes ``(n_samples, n_atoms)``: T = ``n_layers``
    SALSA-like layers, approximating the lasso codes at a fixed cost. Untrained
    (``epochs=0``), it equals ``lsalsa.salsa(problem_, X, mu, n_iter=n_layers).X`` exactly.

    scikit-learn stores dictionaries as rows (``components_: (n_atoms, n_features)``); the paper
    and the rest of lsalsa as columns (``A: (M, N) = components_.T``). The signals scikit-learn
    calls ``X`` are the paper's ``Y``, and the codes ``transform`` returns the paper's ``X``.

    Parameters
    ----------
    <<parameters>>
    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> from lsalsa.sklearn import LSALSACoder
    >>> clf = make_pipeline(LSALSACoder(n_atoms=100, alpha=0.1, random_state=0),
    ...                     LogisticRegression(max_iter=1000))  # doctest: +SKIP
    >>> clf.fit(images / 16.0, labels).score(test_images / 16.0, test_labels)  # doctest: +SKIP
    """


    def __init__(
        self,
        n_atoms: int | None = None,
        *,
        alpha: float = 0.1,
        mu: float = DEFAULT_MU,
        n_layers: int = 5,
        dictionary: Any = None,
        dict_epochs: int = 10,
        dict_batch_size: int = 256,
        dict_lr: float = 3.0,
        solver: str = "salsa",
        solver_tol: float = 1e-5,
        solver_max_iter: int = 10_000,
        epochs: int = 20,
        batch_size: int = 100,
        lr: float = 1e-4,
        lr_decay: float = 1.0,
        optimizer: str = "adam",
        rel_tol: float = 1e-6,
        tied: bool = True,
        learn_thresholds: str | None = None,
        dtype: Any = "float32",
        device: Any = None,
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_atoms = n_atoms
        self.alpha = alpha
        self.mu = mu
        self.n_layers = n_layers
        self.dictionary = dictionary
        self.dict_epochs = dict_epochs
        self.dict_batch_size = dict_batch_size
        self.dict_lr = dict_lr
        self.solver = solver
        self.solver_tol = solver_tol
        self.solver_max_iter = solver_max_iter
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_decay = lr_decay
        self.optimizer = optimizer
        self.rel_tol = rel_tol
        self.tied = tied
        self.learn_thresholds = learn_thresholds
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _encoder_params(self) -> dict[str, Any]:
        return {"mu": check_positive(self.mu, "mu")}

    def _build_encoder(self, problem: LassoProblem, params: dict[str, Any]) -> LSALSA:
        return LSALSA.from_problem(problem, params["n_layers"], mu=params["mu"], tied=params["tied"],
                                   learn_thresholds=params["learn_thresholds"])


class LISTACoder(_UnrolledCoder):
    """Sparse coding by a trained LISTA network (Gregor & LeCun), as a scikit-learn transformer.

    ``fit(X)`` learns a dictionary for the signals ``X: (n_samples, n_features)`` (Eq. 5, unless
    ``dictionary`` is given), solves the lasso (Eq. 4) for every training signal to convergence,
    and trains ``LISTA.from_problem(problem, n_layers)`` to predict those codes (Eq. 15).
    ``transform(X)`` returns the network's codes ``(n_samples, n_atoms)``. Untrained
    (``epochs=0``), it equals ``lsalsa.ista(problem_, X, n_iter=n_layers).X`` exactly.

    scikit-learn stores dictionaries as rows (``components_: (n_atoms, n_features)``); the paper
    and the rest of lsalsa as columns (``A: (M, N) = components_.T``). The signals scikit-learn
    calls ``X`` are the paper's ``Y``, and the codes ``transform`` returns the paper's ``X``.

    Parameters
    ----------
    <<parameters>>
    """


    def __init__(
        self,
        n_atoms: int | None = None,
        *,
        alpha: float = 0.1,
        n_layers: int = 5,
        dictionary: Any = None,
        dict_epochs: int = 10,
        dict_batch_size: int = 256,
        dict_lr: float = 3.0,
        solver: str = "salsa",
        solver_tol: float = 1e-5,
        solver_max_iter: int = 10_000,
        epochs: int = 20,
        batch_size: int = 100,
        lr: float = 1e-3,
        lr_decay: float = 1.0,
        optimizer: str = "adam",
        rel_tol: float = 1e-6,
        tied: bool = True,
        learn_thresholds: str | None = None,
        dtype: Any = "float32",
        device: Any = None,
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_atoms = n_atoms
        self.alpha = alpha
        self.n_layers = n_layers
        self.dictionary = dictionary
        self.dict_epochs = dict_epochs
        self.dict_batch_size = dict_batch_size
        self.dict_lr = dict_lr
        self.solver = solver
        self.solver_tol = solver_tol
        self.solver_max_iter = solver_max_iter
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_decay = lr_decay
        self.optimizer = optimizer
        self.rel_tol = rel_tol
        self.tied = tied
        self.learn_thresholds = learn_thresholds
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _build_encoder(self, problem: LassoProblem, params: dict[str, Any]) -> LISTA:
        return LISTA.from_problem(problem, params["n_layers"], tied=params["tied"],
                                  learn_thresholds=params["learn_thresholds"])


_MU_DOC = """    mu : float > 0, default 1.0
        SALSA's ADMM penalty, fixed in the network (thresholds are ``alpha / mu``); also used by
        ``solver="salsa"`` for the optimal codes. The paper uses 10; smaller values often
        converge faster on unit-norm dictionaries.
"""
# The long parameter list is shared; written once here and spliced into both docstrings.
LSALSACoder.__doc__ = LSALSACoder.__doc__.replace(
    "    <<parameters>>\n",
    _COMMON_DOC.replace("    n_layers :", _MU_DOC + "    n_layers :", 1).replace("<<lr>>", "1e-4"), 1)
LISTACoder.__doc__ = LISTACoder.__doc__.replace(
    "    <<parameters>>\n", _COMMON_DOC.replace(
        "iterations.", "iterations. ``solver=\"salsa\"`` uses SALSA's default ``mu``.", 1
    ).replace("<<lr>>", "1e-3"), 1)
