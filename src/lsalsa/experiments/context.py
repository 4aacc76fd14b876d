"""What every step of a run reads: :class:`RunContext` (the config, the run directory, a logger,
progress bars, the device), and how a step reads back what it cached.

A cached file that cannot be used (truncated, emptied, a bit flipped, a key missing, a JSON
file of another shape) ends the run with one line naming it and saying to delete it: the step
that wrote it then writes it again. Nothing is recomputed behind the user's back, since the
damage may come from a disk that needs looking at.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import LsalsaError
from ..files import load_npz, read_json
from .config import ExperimentConfig

Log = Callable[[str], None]
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
RECOMPUTE = "delete it to recompute the step"


def silent(message: str) -> None:
    """The default logger: says nothing."""


def resolve_device(name: str) -> torch.device:
    """The torch device of a config's or the command line's ``device`` ("auto": CUDA when
    there is one); :class:`LsalsaError` when this machine does not have it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise LsalsaError(f"device: expected 'cpu', 'cuda', 'cuda:<index>', 'mps' or 'auto', got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "is a CPU build" if torch.version.cuda is None else "sees no CUDA device"
            raise LsalsaError(f"device: {name!r} is not available (torch {torch.__version__} {why}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LsalsaError(f"device: {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise LsalsaError(f"device: {name!r} is not available on this machine; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise LsalsaError(f"device: expected 'cpu', 'cuda', 'cuda:<index>', 'mps' or 'auto', got {name!r}")
    return device


@dataclass
class RunContext:
    """One run of an experiment: its config, where its outputs go, how it reports progress."""

    config: ExperimentConfig
    run_dir: Path
    log: Log = silent
    progress: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def dtype(self) -> torch.dtype:
        """The precision of the run's signals, dictionaries, codes and encoders (``data.dtype``)."""
        return _DTYPES[self.config.data.dtype]

    def path(self, *parts: str) -> Path:
        """A path inside the run directory."""
        return self.run_dir.joinpath(*parts)


def load_step(path: Path, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays a step cached in ``path`` (which must hold ``keys``); a damaged file is named
    with what to do about it."""
    try:
        return load_npz(path, keys)
    except LsalsaError as exc:
        raise LsalsaError(f"{exc}; {RECOMPUTE}") from None


def read_step_json(path: Path, valid: Callable[[Any], bool], what: str) -> Any:
    """The JSON value a step cached in ``path``, which ``valid`` accepts (else the file is
    named as not holding ``what``, with what to do about it)."""
    try:
        value = read_json(path)
    except LsalsaError as exc:
        raise LsalsaError(f"{exc}; {RECOMPUTE}") from None
    if not valid(value):
        raise LsalsaError(f"{path}: does not hold {what}; {RECOMPUTE}")
    return value


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_row(value: Any, numbers: tuple[str, ...] = ("time_s",)) -> bool:
    """Whether ``value`` is a result row: a dict with a ``method`` name, an integer ``T`` and
    the numbers ``numbers``."""
    return (isinstance(value, dict) and isinstance(value.get("method"), str)
            and isinstance(value.get("T"), int) and all(_number(value.get(k)) for k in numbers))


def is_rows(value: Any, numbers: tuple[str, ...]) -> bool:
    """Whether ``value`` is a list of result rows (:func:`is_row`)."""
    return isinstance(value, list) and all(is_row(r, numbers) for r in value)


def step_file_hint(exc: LsalsaError) -> LsalsaError:
    """``exc`` (about a file a step wrote) with what to do about it."""
    return LsalsaError(f"{exc}; {RECOMPUTE}")
