"""scikit-learn estimators: learned sparse coders (LSALSA, LISTA) as pipeline transformers.

``LSALSACoder`` and ``LISTACoder`` wrap the library's whole recipe in ``fit``: learn a dictionary
(Eq. 5) unless one is given, then :func:`lsalsa.pipeline.fit_encoder`: the optimal codes of the
training signals (Eq. 4) and the unrolled encoder (Alg. 3/4, or LISTA) trained to predict them
(Eq. 15). ``transform`` runs the trained encoder: a fixed number of layers, a fast and
differentiable approximation of the lasso codes, usable in a ``Pipeline``.

The estimators speak scikit-learn's conventions: a dictionary is stored as rows,
``components_: (n_atoms, n_features)`` (the paper's ``A: (M, N) = components_.T``), and the
signals scikit-learn calls ``X`` are the paper's ``Y: (B, M)``; ``transform`` returns the paper's
codes ``X: (B, N)``. One dictionary (a plain lasso, Eq. 4): source separation with several (MCA,
Eq. 6) needs the library API (``LassoProblem.from_dictionaries``, :func:`lsalsa.train_encoder`).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._lasso_coder import LassoCoder
from ._sklearn_base import DTYPES, SignalTransformer, torch_device, torch_dtype
from ._validation import check_nonneg_float, check_nonneg_int, check_positive, check_positive_int
from .codes import SOLVERS as CODE_SOLVERS
from .dictionary import learn_dictionary
from .errors import LsalsaError
from .pipeline import fit_encoder
from .problem import LassoProblem
from .solvers.salsa import DEFAULT_MU
from .train import TrainConfig

__all__ = ["LSALSACoder", "LISTACoder", "LassoCoder"]

@dataclass(kw_only=True, repr=False, eq=False)
class _UnrolledCoder(SignalTransformer):
    """What both coders share: parameters, dictionary, the fit recipe, transform.

    The parameters are dataclass fields, listed once: scikit-learn reads them from the signature
    of ``__init__``, which the dataclass writes. They are checked in ``fit``: the training
    settings by :class:`lsalsa.TrainConfig`, the encoder's by the encoder, the rest here.
    Subclasses name their method of :data:`lsalsa.methods.METHODS` in ``_method`` and add or
    re-default fields.
    """

    _method = ""  # a class attribute, not a parameter: no annotation

    # checked by _check_params
    n_atoms: int | None = field(default=None, kw_only=False)
    alpha: float = 0.1
    dictionary: Any = None
    dict_epochs: int = 10
    dict_batch_size: int = 256
    dict_lr: float = 3.0
    solver: str = "salsa"
    solver_tol: float = 1e-5
    solver_max_iter: int = 10_000
    epochs: int = 20
    dtype: Any = "float32"
    device: Any = None
    random_state: Any = None
    verbose: bool = False
    # checked by the encoder
    n_layers: int = 5
    tied: bool = False
    learn_thresholds: str | None = None
    # checked by TrainConfig
    batch_size: int = 100
    lr: float | str = "auto"
    schedule: str = "cosine"
    lr_decay: float = 1.0
    optimizer: str = "adam"
    rel_tol: float = 1e-6

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
        own = self._check_params()
        epochs = own["epochs"]
        # Built for epochs=0 too (as one epoch, then unused), so that every setting is checked
        # before anything is computed.
        train = TrainConfig(epochs=max(epochs, 1), batch_size=self.batch_size, lr=self.lr,
                            schedule=self.schedule, lr_decay=self.lr_decay, optimizer=self.optimizer,
                            rel_tol=self.rel_tol, seed=own["seed"])
        X = self._validate(X, reset=True, dtype=own["dtype"])
        Y = self._to_tensor(X, DTYPES[X.dtype.name], own["device"])
        A, dict_history = self._dictionary(Y, own)
        problem = LassoProblem(A, own["alpha"])
        mu = getattr(self, "mu", None)  # LSALSACoder's penalty, also for SALSA's optimal codes
        codes = {"solver": own["solver"], "tol": own["solver_tol"], "max_iter": own["solver_max_iter"], "mu": mu}
        encoder, history = fit_encoder(problem, Y, n_layers=self.n_layers, method=self._method, config=train,
                                       train=epochs > 0, codes=codes, mu=mu, progress=bool(self.verbose),
                                       return_history=True, tied=self.tied, learn_thresholds=self.learn_thresholds)
        self.problem_, self.encoder_, self.n_atoms_ = problem, encoder, problem.n_atoms
        self.components_ = problem.A.T.detach().cpu().numpy().copy()
        self.history_, self.dictionary_history_ = history, dict_history
        return self

    def _check_params(self) -> dict[str, Any]:
        """The arguments no library object downstream checks under the estimator's names
        (scikit-learn validates in fit, not __init__)."""
        p: dict[str, Any] = {}
        if self.n_atoms is not None:
            p["n_atoms"] = check_positive_int(self.n_atoms, "n_atoms")
        p["alpha"] = check_nonneg_float(self.alpha, "alpha")
        p["dict_epochs"] = check_nonneg_int(self.dict_epochs, "dict_epochs")
        p["dict_batch_size"] = check_positive_int(self.dict_batch_size, "dict_batch_size")
        p["dict_lr"] = check_positive(self.dict_lr, "dict_lr")
        if self.solver not in CODE_SOLVERS:
            raise LsalsaError(f"solver: expected one of {list(CODE_SOLVERS)}, got {self.solver!r}")
        p["solver"] = self.solver
        p["solver_tol"] = check_positive(self.solver_tol, "solver_tol")
        p["solver_max_iter"] = check_positive_int(self.solver_max_iter, "solver_max_iter")
        p["epochs"] = check_nonneg_int(self.epochs, "epochs")  # 0: no training (TrainConfig needs >= 1)
        p["dtype"] = torch_dtype(self.dtype)
        p["device"] = torch_device(self.device)
        p["seed"] = self._seed()
        return p

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

    def _dictionary(self, Y: torch.Tensor, own: dict[str, Any]) -> tuple[torch.Tensor, list[dict] | None]:
        """``A: (M, N)``: the given dictionary, or one learned on ``Y`` (with its history)."""
        if self.dictionary is not None:
            return self._check_dictionary(Y.shape[1], Y.dtype, Y.device), None
        n_atoms = own.get("n_atoms", Y.shape[1])
        # init="data" draws atoms from the non-zero signals; with fewer of them than atoms
        # (tiny data sets), Gaussian atoms are the only choice that exists.
        n_nonzero = int((torch.linalg.vector_norm(Y, dim=1) > 0).sum())
        return learn_dictionary(
            Y, n_atoms, own["alpha"], n_epochs=own["dict_epochs"], batch_size=own["dict_batch_size"],
            lr=own["dict_lr"], seed=own["seed"], init="data" if n_nonzero >= n_atoms else "random",
            progress=bool(self.verbose), return_history=True,
        )

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
            as ``encoder_(torch.from_numpy(X))`` (to rounding: a call of fewer than 16 rows is
            padded, so that a row's code does not depend on the rows encoded with it).
        """
        check_is_fitted(self, "encoder_")
        with torch.no_grad():
            return self._encode_rows(X, self.encoder_)


_SHARED_PARAMETERS = """    n_atoms : int or None, default None
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
        step, step size (suits signals in [0, 1]; see ``dictionary_history_``). Atoms start as
        random training signals (Gaussian when fewer signals than atoms are non-zero).
    solver : {"salsa", "fista"}, default "salsa"
        The solver run to convergence for the optimal codes the encoder learns to predict
        (:func:`lsalsa.optimal_codes`). Both reach the same codes; SALSA usually in far fewer
        iterations (benchmarks/README.md). SALSA runs with LSALSACoder's ``mu``, and for
        LISTACoder with the penalty :func:`lsalsa.solvers.auto_mu` picks.
    solver_tol, solver_max_iter : default 1e-5, 10000
        Its stopping rule: relative change of the codes below ``solver_tol``, or that many
        iterations. In float32 rounding keeps the change from falling much below 1e-6, so a
        smaller ``solver_tol`` needs ``dtype="float64"`` to be reached.
    epochs : int >= 0, default 20
        Passes of encoder training (Eq. 15, :func:`lsalsa.train_encoder`); 0 skips training and
        the optimal codes: the encoder is then the truncated solver.
    batch_size, lr, schedule, lr_decay, optimizer, rel_tol : default 100, "auto", "cosine", 1.0,
        "adam", 1e-6
        Training settings, as in :class:`lsalsa.TrainConfig`, which checks them: by default a
        range test picks the (relative, for Adam) learning rate, and an epoch that diverges is
        rolled back and repeated at a lower rate (``history_.rollbacks``).
    tied : bool, default False
        One splitting matrix ``S`` per layer (measured to reach lower code errors,
        benchmarks/README.md) or, True, one shared by all layers (the paper's network).
    learn_thresholds : {None, "coordinate", "dictionary", "layer"}, default None
        Fixed thresholds (the paper) or learnable ones.
    dtype : {"float32", "float64", None}, default "float32"
        The precision of the dictionary, encoder and codes. Input of any numeric dtype (integer,
        float64, ...) is converted to it, and ``transform`` returns it. None follows the ``fit``
        input: float32 stays float32, anything else (float64, integers) becomes float64.
    device : str, torch.device or None, default None (CPU)
        Where to learn and encode (e.g. "cuda"); ``transform`` returns numpy arrays. A pickled
        estimator unpickles its encoder onto the same device.
    random_state : int >= 0, RandomState or None, default None
        Seeds the initial atoms, the dictionary's batch order and the training shuffle (through
        the library's own ``torch.Generator``s; no global state is touched). An int is used as
        the library's ``seed``; None gives a different run each ``fit``.
    verbose : bool, default False
        Show tqdm progress bars for the three stages of ``fit``.
"""

_SHARED_ATTRIBUTES = """
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
    Conventions and scope: :mod:`lsalsa.sklearn`. The estimator pickles, and ``get_params``,
    ``set_params`` and ``clone`` work as for any scikit-learn estimator.
"""


@dataclass(kw_only=True, repr=False, eq=False)
class LSALSACoder(_UnrolledCoder):
    __doc__ = """\
Sparse coding by a trained LSALSA network (Alg. 3/4), as a scikit-learn transformer.

    ``fit(X)`` learns a dictionary for the signals ``X: (n_samples, n_features)`` (Eq. 5, unless
    ``dictionary`` is given), solves the lasso (Eq. 4) for every training signal to convergence,
    and trains ``LSALSA.from_problem(problem, n_layers, mu)`` to predict those codes (Eq. 15).
    ``transform(X)`` returns the network's codes ``(n_samples, n_atoms)``: T = ``n_layers``
    SALSA-like layers, approximating the lasso codes at a fixed cost. Untrained
    (``epochs=0``), it equals ``lsalsa.salsa(problem_, X, mu, n_iter=n_layers).X`` exactly.

    Parameters
    ----------
    mu : float > 0, default 1.0
        SALSA's ADMM penalty, fixed in the network (thresholds are ``alpha / mu``); also used by
        ``solver="salsa"`` for the optimal codes. The paper uses 10; smaller values often
        converge faster on unit-norm dictionaries.
""" + _SHARED_PARAMETERS + _SHARED_ATTRIBUTES + """
    Examples
    --------
    >>> clf = make_pipeline(LSALSACoder(n_atoms=100, alpha=0.1, random_state=0),
    ...                     LogisticRegression(max_iter=1000))  # doctest: +SKIP
    >>> clf.fit(images / 16.0, labels).score(test_images / 16.0, test_labels)  # doctest: +SKIP
    """

    _method = "lsalsa"

    mu: float = DEFAULT_MU


@dataclass(kw_only=True, repr=False, eq=False)
class LISTACoder(_UnrolledCoder):
    __doc__ = """\
Sparse coding by a trained LISTA network (Gregor & LeCun), as a scikit-learn transformer.

    ``fit(X)`` learns a dictionary for the signals ``X: (n_samples, n_features)`` (Eq. 5, unless
    ``dictionary`` is given), solves the lasso (Eq. 4) for every training signal to convergence,
    and trains ``LISTA.from_problem(problem, n_layers)`` to predict those codes (Eq. 15).
    ``transform(X)`` returns the network's codes ``(n_samples, n_atoms)``. Untrained
    (``epochs=0``), it equals ``lsalsa.ista(problem_, X, n_iter=n_layers).X`` exactly.

    Parameters
    ----------
""" + _SHARED_PARAMETERS + _SHARED_ATTRIBUTES

    _method = "lista"

