"""A directory of computed codes, each stored under a key made from the inputs that asked for it.

An entry is two files in the cache directory: ``<name>-<key>.npy``, the codes as a
memory-mappable array, and ``<name>-<key>.json``, the inputs and what the computation reported.
The key is the first 16 hex digits of the SHA-256 of the inputs (canonical JSON), so asking again
with the same inputs finds the entry, and any change of them makes a new one. The array is
filled through a memmap under a temporary name and renamed when complete; the description is
written last, so its presence marks a finished entry. Leftovers that cannot be read are treated
as missing, recomputed and overwritten.

This module knows nothing of the lasso: :func:`lsalsa.codes.optimal_codes` says what the inputs
are and how to fill the array.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LsalsaError
from .files import atomic_write, read_json, write_json

Fill = Callable[[np.ndarray], dict[str, Any]]
"""``fill(out)`` writes every row of ``out: (n, N)`` and returns JSON-able facts to record."""


def cache_key(inputs: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of ``inputs`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"


class CodeCache:
    """The entry of ``directory`` for ``inputs`` (JSON-able), named after ``name``."""

    def __init__(self, directory: str | os.PathLike, name: str, inputs: dict[str, Any]) -> None:
        self.inputs = dict(inputs)
        self.key = cache_key(self.inputs)
        stem = Path(directory).expanduser() / f"{_safe_name(name)}-{self.key}"
        self.array_path, self.meta_path = stem.with_suffix(".npy"), stem.with_suffix(".json")

    def load(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray | None:
        """The stored codes as a read-only memmap, or None when the entry is missing, unreadable
        or not of this key, shape and dtype."""
        if not (self.array_path.is_file() and self.meta_path.is_file()):
            return None
        try:
            meta = read_json(self.meta_path)
            X = np.load(self.array_path, mmap_mode="r")
        except (LsalsaError, OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("key") != self.key or X.shape != shape or X.dtype != dtype:
            return None
        return X

    def store(self, shape: tuple[int, int], dtype: np.dtype, fill: Fill) -> np.ndarray:
        """Fill a new ``(n, N)`` array of ``dtype`` by ``fill`` and store it with its description:
        the inputs, the key, the lsalsa version, the time taken and what ``fill`` returned.
        Returns the stored codes as a read-only memmap; an interrupted ``fill`` leaves nothing."""
        facts: dict[str, Any] = {}

        def write(tmp: Path) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            facts.update(fill(out))
            out.flush()

        t0 = time.perf_counter()
        atomic_write(self.array_path, write)
        from . import __version__  # here: the package imports this module before it sets it

        write_json(self.meta_path, self.inputs | {"key": self.key, "lsalsa_version": __version__,
                                                  "time_s": time.perf_counter() - t0, **facts})
        return np.load(self.array_path, mmap_mode="r")
