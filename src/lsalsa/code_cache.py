"""A directory of computed codes, each stored under a key made from the inputs that asked for it.

An entry is two files in the cache directory: ``<name>-<key>.npy``, the codes as a
memory-mappable array, and ``<name>-<key>.json``, the inputs and what the computation reported.
The key is the first 16 hex digits of the SHA-256 of the inputs (canonical JSON), so asking again
with the same inputs finds the entry, and any change of them makes a new one. The array is
filled through a memmap under a temporary name and renamed when complete; the description is
written last, so its presence marks a finished entry. Leftovers that cannot be read are treated
as missing, recomputed and overwritten.

The description holds the SHA-256 of the array file, checked whenever the entry is reused:
codes damaged in place (a bit flipped, a block zeroed, with shape and description intact) are
recomputed, not handed to training. Hashing reads the file once, as hashing the signals for
the key already does. The space for the array is reserved before the memmap is written: a
memmap that runs past a full disk kills the process (SIGBUS) instead of raising.

This module knows nothing of the lasso: :func:`lsalsa.codes.optimal_codes` says what the inputs
are and how to fill the array.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write, check_free_space, read_json, remove_temporaries, reserve, write_json

logger = logging.getLogger(__name__)
Fill = Callable[[np.ndarray], dict[str, Any]]
"""``fill(out)`` writes every row of ``out: (n, N)`` and returns JSON-able facts to record."""


def cache_key(inputs: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of ``inputs`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read a MiB at a time (bounded memory for any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"


def entries(directory: str | os.PathLike, name: str) -> set[Path]:
    """The codes files (``.npy``, resolved paths) of the finished entries of ``directory`` named after ``name``,
    of any key: a caller that asks for one name (a run's codes step) compares them with the
    file it gets back to say whether it was a cached entry."""
    directory = Path(directory).expanduser()
    return {p.with_suffix(".npy").resolve() for p in directory.glob(f"{_safe_name(name)}-*.json")
            if p.with_suffix(".npy").is_file()}


class CodeCache:
    """The entry of ``directory`` for ``inputs`` (JSON-able), named after ``name``."""

    def __init__(self, directory: str | os.PathLike, name: str, inputs: dict[str, Any]) -> None:
        self.inputs = dict(inputs)
        self.key = cache_key(self.inputs)
        stem = Path(directory).expanduser() / f"{_safe_name(name)}-{self.key}"
        self.array_path, self.meta_path = stem.with_suffix(".npy"), stem.with_suffix(".json")

    def load(self, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray | None:
        """The stored codes as a read-only memmap, or None when the entry is missing, unreadable,
        not of this key, shape and dtype, or not matching its checksum (then a warning says
        that it is recomputed)."""
        if not (self.array_path.is_file() and self.meta_path.is_file()):
            return None
        try:
            meta = read_json(self.meta_path)
            X = np.load(self.array_path, mmap_mode="r")
        except Exception as exc:  # a damaged .npy reaches numpy's header parser, which raises many types
            logger.warning("%s: unreadable (%s: %s); recomputing the codes", self.array_path, type(exc).__name__, exc)
            return None
        if not isinstance(meta, dict) or meta.get("key") != self.key or X.shape != shape or X.dtype != dtype:
            return None
        if meta.get("codes_sha256") != file_sha256(self.array_path):
            why = "do not match the checksum in" if "codes_sha256" in meta else "have no checksum in"
            logger.warning("%s: the codes %s %s; recomputing them", self.array_path, why, self.meta_path.name)
            return None
        return X

    @property
    def description(self) -> dict[str, Any]:
        """What :meth:`store` recorded (the inputs and what the computation reported)."""
        return read_json(self.meta_path)

    def store(self, shape: tuple[int, int], dtype: np.dtype, fill: Fill) -> np.ndarray:
        """Fill a new ``(n, N)`` array of ``dtype`` by ``fill`` and store it with its description:
        the inputs, the key, the lsalsa version, the time taken and what ``fill`` returned.
        Returns the stored codes as a read-only memmap; an interrupted ``fill`` leaves nothing
        (temporaries of killed processes are removed by the next store into the directory), and
        ``OSError`` (``ENOSPC``) is raised before filling when the disk cannot hold the array."""
        facts: dict[str, Any] = {}
        remove_temporaries(self.array_path.parent)
        n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize

        def write(tmp: Path) -> None:
            check_free_space(tmp, n_bytes)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            reserve(tmp, out.offset + out.nbytes)
            facts.update(fill(out))
            out.flush()
            del out
            facts["codes_sha256"] = file_sha256(tmp)

        t0 = time.perf_counter()
        atomic_write(self.array_path, write)
        from . import __version__  # here: the package imports this module before it sets it

        write_json(self.meta_path, self.inputs | {"key": self.key, "lsalsa_version": __version__,
                                                  "time_s": time.perf_counter() - t0, **facts})
        return np.load(self.array_path, mmap_mode="r")
