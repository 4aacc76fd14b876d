"""What every step of a run reads: :class:`RunContext` (the config, the run directory, a logger,
progress bars), and how a step reads back what it cached."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import LsalsaError
from ..files import load_npz
from .config import ExperimentConfig

Log = Callable[[str], None]
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def silent(message: str) -> None:
    """The default logger: says nothing."""


@dataclass
class RunContext:
    """One run of an experiment: its config, where its outputs go, how it reports progress."""

    config: ExperimentConfig
    run_dir: Path
    log: Log = silent
    progress: bool = False

    @property
    def dtype(self) -> torch.dtype:
        """The precision of the run's signals, dictionaries, codes and encoders (``data.dtype``)."""
        return _DTYPES[self.config.data.dtype]

    def path(self, *parts: str) -> Path:
        """A path inside the run directory."""
        return self.run_dir.joinpath(*parts)


def load_step(path: Path) -> dict[str, np.ndarray]:
    """The arrays a step cached in ``path``; a damaged file is named with what to do about it."""
    try:
        return load_npz(path)
    except LsalsaError as exc:
        raise LsalsaError(f"{exc}; delete it to recompute the step") from None
