"""What lsalsa's scikit-learn transformers share: input checks, the dictionary in scikit-learn's
layout, encoding in chunks, the inverse transform and the tags (:mod:`lsalsa.sklearn`)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted, validate_data

from .errors import LsalsaError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
CHUNK = 8192  # rows encoded at once by transform: bounds memory for large inputs
MIN_ROWS = 16
"""transform pads a chunk of fewer rows with zeros: BLAS multiplies a handful of rows with other
kernels (another summation order) than a larger block, so without it a row's float32 code would
depend on how many rows came with it (measured here: 1-11 rows differ, 12 or more agree)."""


def torch_dtype(dtype: Any) -> torch.dtype | None:
    """The parameter ``dtype`` as a torch dtype (None: follow the input)."""
    if dtype is None:
        return None
    try:
        name = str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise LsalsaError(f"dtype: expected 'float32', 'float64' or None, got {dtype!r}")
    return DTYPES[name]


def torch_device(device: Any) -> torch.device:
    """The parameter ``device`` as a torch device (None: the CPU)."""
    try:
        return torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise LsalsaError(f"device: expected a torch device such as 'cpu' or 'cuda', got {device!r}") from exc


class SignalTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A transformer from signals ``(n_samples, n_features)`` to codes ``(n_samples, n_atoms)``
    over a fitted :class:`lsalsa.LassoProblem` ``problem_`` (``A = components_.T``).

    Subclasses have the parameters ``dictionary``, ``n_atoms`` and ``dtype``, set ``problem_``
    and ``components_`` in ``fit``, and encode with :meth:`_encode_rows`.
    """

    def _encode_rows(self, X: Any, encode: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """``encode`` (``(B, M)`` tensor on the problem's device -> ``(B, N)``) of the rows of
        ``X``, as numpy of the fitted dtype, ``CHUNK`` rows at a time (chunks of fewer than
        ``MIN_ROWS`` rows padded, so that a row's code does not depend on the rows with it)."""
        check_is_fitted(self, "problem_")
        X = self._validate(X, reset=False, dtype=self.components_.dtype)
        Y = self._to_tensor(X, self.problem_.dtype, torch.device("cpu"))
        out = np.empty((X.shape[0], self.problem_.n_atoms), dtype=self.components_.dtype)
        for i in range(0, X.shape[0], CHUNK):  # chunks go to the device one at a time
            chunk = Y[i:i + CHUNK]
            n = chunk.shape[0]
            if n < MIN_ROWS:
                chunk = torch.cat([chunk, chunk.new_zeros(MIN_ROWS - n, chunk.shape[1])])
            out[i:i + n] = encode(chunk.to(self.problem_.device))[:n].cpu().numpy()
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
        check_is_fitted(self, "problem_")
        codes = self._validate(X, reset=False, dtype=self.components_.dtype, check_features=False)
        if codes.shape[1] != self.problem_.n_atoms:
            raise LsalsaError(f"X: expected codes of shape (n_samples, {self.problem_.n_atoms}), got {codes.shape}")
        return codes @ self.components_

    @property
    def _n_features_out(self) -> int:
        """Number of output features, for ``get_feature_names_out``."""
        return self.components_.shape[0]

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
        except (NotFittedError, LsalsaError):  # both are ValueErrors, already as meant
            raise
        except ValueError as exc:
            raise LsalsaError(f"X: {exc}") from exc

    @staticmethod
    def _to_tensor(X: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A validated numpy matrix as a tensor, sharing memory where it can."""
        if not X.flags.writeable or not X.flags.c_contiguous:
            X = np.array(X, order="C")  # torch cannot wrap read-only memory without a warning
        return torch.from_numpy(X).to(dtype=dtype, device=device)

    def _check_dictionary(self, n_features: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The given dictionary (rows = atoms, scikit-learn's layout) as the paper's ``A: (M, N)``."""
        try:
            atoms = np.asarray(self.dictionary.detach().cpu() if isinstance(self.dictionary, torch.Tensor)
                               else self.dictionary)
        except (TypeError, ValueError) as exc:
            raise LsalsaError(
                f"dictionary: expected an array (n_atoms, n_features), got {type(self.dictionary).__name__}"
            ) from exc
        if atoms.ndim != 2 or atoms.shape[1] != n_features or atoms.shape[0] == 0:
            raise LsalsaError(
                f"dictionary: expected shape (n_atoms, {n_features}) with atoms as rows (scikit-learn's "
                f"layout, the transpose of the paper's A), got {atoms.shape}"
            )
        if self.n_atoms is not None and atoms.shape[0] != self.n_atoms:
            raise LsalsaError(f"n_atoms: expected None or {atoms.shape[0]} (the dictionary's rows), got {self.n_atoms!r}")
        if not (np.issubdtype(atoms.dtype, np.floating) or np.issubdtype(atoms.dtype, np.integer)):
            raise LsalsaError(f"dictionary: expected real numbers, got dtype {atoms.dtype}")
        if not np.isfinite(atoms).all():
            n_bad = int((~np.isfinite(atoms)).sum())
            raise LsalsaError(f"dictionary: expected finite values, found {n_bad} NaN/Inf entries")
        zero = np.flatnonzero(~atoms.any(axis=1))
        if zero.size:
            raise LsalsaError(f"dictionary: expected no zero atom (row), but row(s) {zero[:10].tolist()} are all zero")
        # a copy: the problem and encoder must not share memory with the user's array
        return torch.tensor(atoms.T, dtype=dtype, device=device)

    def __sklearn_tags__(self):
        """A transformer, no target, no NaN; it preserves the dtype(s) its ``dtype`` argument allows."""
        tags = super().__sklearn_tags__()
        try:
            dtype = torch_dtype(self.dtype)
        except LsalsaError:
            dtype = None  # invalid; fit will say so
        tags.transformer_tags.preserves_dtype = (
            ["float64", "float32"] if dtype is None else [str(dtype).removeprefix("torch.")]
        )
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        return tags
