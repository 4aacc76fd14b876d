"""Checks run at the public boundary (design notes, section 2): validate, then trust."""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from .errors import LsalsaError

FLOAT_DTYPES = (torch.float32, torch.float64)


def as_tensor(value: Any, name: str) -> torch.Tensor:
    """Turn a numpy array or tensor into a tensor without copying when possible."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if not value.flags.writeable:
            # a memory map opened read-only: torch warns that writing would be undefined, but
            # lsalsa never writes into its inputs
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                return torch.from_numpy(value)
        return torch.from_numpy(value)
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError) as exc:
        raise LsalsaError(f"{name}: expected a torch tensor or numpy array, got {type(value).__name__}") from exc


def check_float_matrix(value: Any, name: str, *, allow_empty_rows: bool = True) -> torch.Tensor:
    """A 2-D, float32/float64, finite tensor."""
    t = as_tensor(value, name)
    if t.ndim != 2:
        raise LsalsaError(f"{name}: expected a 2-D array, got shape {tuple(t.shape)}")
    if t.dtype not in FLOAT_DTYPES:
        raise LsalsaError(f"{name}: expected dtype float32 or float64, got {t.dtype}")
    if not allow_empty_rows and t.shape[0] == 0:
        raise LsalsaError(f"{name}: expected at least one row, got shape {tuple(t.shape)}")
    check_finite(t, name)
    return t


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of a float tensor is finite.

    One reduction instead of ``isfinite(t).all()``'s three passes: a NaN or Inf makes the sum
    non-finite; only a sum that overflows on finite entries needs the entry-by-entry test.
    """
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise when ``t`` holds a NaN or Inf, saying how many."""
    if t.numel() and not all_finite(t):
        n_bad = int((~torch.isfinite(t)).sum())
        raise LsalsaError(f"{name}: expected finite values, found {n_bad} NaN/Inf entries")


def check_rows(value: Any, n_columns: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """A batch of rows ``(B, n_columns)`` matching ``like``'s dtype and device, finite."""
    t = as_tensor(value, name)
    if t.ndim != 2 or t.shape[1] != n_columns:
        raise LsalsaError(f"{name}: expected shape (B, {n_columns}), got {tuple(t.shape)}")
    check_same(t, like, name)
    return check_float_matrix(t, name)


def check_signals(Y: Any, n_features: int, like: torch.Tensor, name: str = "Y") -> torch.Tensor:
    """Signals ``Y: (B, M)`` matching a problem's M, dtype and device."""
    return check_rows(Y, n_features, like, name)


def check_codes(X: Any, n_atoms: int, like: torch.Tensor, name: str = "X") -> torch.Tensor:
    """Codes ``X: (B, N)`` matching a problem's N, dtype and device."""
    return check_rows(X, n_atoms, like, name)


def check_same(t: torch.Tensor, like: torch.Tensor, name: str) -> None:
    if t.dtype != like.dtype:
        hint = (f"convert one of them (e.g. problem.to(dtype={t.dtype}))" if t.dtype.is_floating_point
                else f"convert it to the problem's (e.g. {name}.to({like.dtype}))")
        raise LsalsaError(f"{name}: dtype {t.dtype} does not match the problem's {like.dtype}; {hint}")
    if t.device != like.device:
        raise LsalsaError(f"{name}: device {t.device} does not match the problem's {like.device}")


def check_positive(value: Any, name: str) -> float:
    v = _as_float(value, name)
    if not v > 0:
        raise LsalsaError(f"{name}: expected a finite number > 0, got {value!r}")
    return v


def check_nonneg_float(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan  # not a number: the same message
    if not 0 <= v < math.inf:
        raise LsalsaError(f"{name}: expected finite numbers >= 0, got {value!r}")
    return v


def check_nonneg_int(value: Any, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise LsalsaError(f"{name}: expected an integer >= {low}, got {value!r}")
    if value < low:
        raise LsalsaError(f"{name}: expected an integer >= {low}, got {value}")
    return int(value)


def check_positive_int(value: Any, name: str) -> int:
    return check_nonneg_int(value, name, low=1)


def _as_float(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise LsalsaError(f"{name}: expected a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise LsalsaError(f"{name}: expected a finite number, got {value!r}")
    return v


def check_dict_sizes(dict_sizes: Any, n_atoms: int, total: str = "N") -> tuple[int, ...]:
    """The D dictionary sizes (ints > 0 summing to ``n_atoms``); None means one dictionary.
    ``total`` names ``n_atoms`` in the message as the caller's user knows it."""
    if dict_sizes is None:
        return (n_atoms,)
    try:
        sizes = tuple(check_nonneg_int(s, "dict_sizes") for s in dict_sizes)
    except TypeError as exc:
        raise LsalsaError(f"dict_sizes: expected a sequence of ints, got {dict_sizes!r}") from exc
    if not sizes or any(s == 0 for s in sizes) or sum(sizes) != n_atoms:
        raise LsalsaError(f"dict_sizes: expected positive sizes summing to {total}={n_atoms}, got {list(sizes)}")
    return sizes
