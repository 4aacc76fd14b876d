"""A directory of computed codes, each stored under a key made from the inputs that asked for it.

An entry is two files in the cache directory: ``<name>-<key>.npy``, the codes as a
memory-mappable array, and ``<name>-<key>.json``, the inputs and what the computation reported.
The key is the first 16 hex digits of the SHA-256 of the inputs (canonical JSON), so asking again
with the same inputs finds the entry, and any change of them makes a new one. The array is
filled through a memmap under a temporary name and renamed when complete; the description is
written last, so its presence marks a finished entry. Leftovers that cannot be read are treated
as missing, recomputed and overwritten.

:meth:`CodeCache.store_batches` fills an entry batch by batch, resumably: the rows go into
``<name>-<key>.partial/codes.npy`` (a memmap), and once a batch's rows are flushed, a marker
``batches/<index>.json`` records the SHA-256 of those rows and what their computation reported.
Rows are flushed and markers written every :data:`CHECKPOINT_S` seconds and when the filling stops on an
exception (Ctrl-C). Asked again after an interruption (``kill -9`` included: it loses at most the
last few seconds), it computes only the batches without a marker whose rows still match it, then
moves the array into the entry.

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
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LsalsaError
from .files import atomic_write, check_free_space, read_json, remove_temporaries, reserve, write_json

logger = logging.getLogger(__name__)
Fill = Callable[[np.ndarray], dict[str, Any]]
"""``fill(out)`` writes every row of ``out: (n, N)`` and returns JSON-able facts to record."""
Compute = Callable[[int, int], tuple[np.ndarray, dict[str, Any]]]
"""``compute(start, stop)`` returns the rows ``start:stop`` of the entry, ``(stop - start, N)``,
and JSON-able facts about them."""
CHECKPOINT_S = 5.0
"""Seconds of computing between the checkpoints of :meth:`CodeCache.store_batches` (a flush of
the rows and their batches' markers): what a ``kill -9`` can lose, at the cost of one flush and a
few small files per checkpoint instead of per batch."""
Summarize = Callable[[list[dict[str, Any]]], dict[str, Any]]
"""``summarize(records)``: the entry's facts to record, from its batches' records (row order)."""


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

    @property
    def partial_dir(self) -> Path:
        """Where :meth:`store_batches` keeps an unfinished entry."""
        return self.array_path.with_suffix(".partial")

    def partial_state(self) -> dict[str, Any]:
        """The settings an unfinished entry was started with (``state`` of :meth:`store_batches`,
        e.g. a penalty resolved once for the data set), or ``{}`` when there is none."""
        try:
            state = read_json(self.partial_dir / "state.json")
        except LsalsaError:  # missing or unreadable: nothing to resume
            return {}
        return state if isinstance(state, dict) and state.get("key") == self.key else {}

    def store_batches(self, shape: tuple[int, int], dtype: np.dtype, batch_size: int, compute: Compute,
                      summarize: Summarize, state: dict[str, Any] | None = None, progress: bool = False,
                      desc: str = "codes") -> np.ndarray:
        """Fill a new ``(n, N)`` entry by ``compute`` over batches of ``batch_size`` rows, resuming
        the batches an interrupted call finished with the same key, ``batch_size`` and ``state``
        (JSON-able settings that the rows depend on beyond the key); an unfinished entry of other
        settings is discarded. The description records ``summarize(records)``, the time spent
        computing (over all calls) and ``batches_resumed``. Returns the codes as a read-only memmap.

        One process at a time fills an entry (the experiment runner holds its directory's lock);
        rows changed behind the description's back would fail its checksum on reuse."""
        from tqdm.auto import tqdm

        n = shape[0]
        want = {"key": self.key, "shape": list(shape), "dtype": str(np.dtype(dtype)), "batch_size": batch_size,
                **(state or {})}
        out = self._open_partial(want, shape, dtype)
        records, resumed, pending, last = [], 0, [], time.monotonic()
        try:
            for index, start in enumerate(tqdm(range(0, n, batch_size), desc=desc, disable=not progress)):
                stop = min(start + batch_size, n)
                record = self._finished_batch(index, out[start:stop])
                if record is None:
                    t0 = time.perf_counter()
                    X, facts = compute(start, stop)
                    out[start:stop] = X
                    record = {"rows": [start, stop], "time_s": time.perf_counter() - t0,
                              "X_sha256": _rows_sha256(out[start:stop]),
                              **facts}
                    pending.append((index, record))
                    if time.monotonic() - last >= CHECKPOINT_S:
                        self._checkpoint(out, pending)
                        pending, last = [], time.monotonic()
                else:
                    resumed += 1
                records.append(record)
        except BaseException:  # Ctrl-C or a failed batch: keep the batches finished so far
            self._checkpoint(out, pending)
            raise
        facts = summarize(records)
        codes = self.partial_dir / "codes.npy"
        del out
        with open(codes, "rb+") as f:
            os.fsync(f.fileno())
        digest = file_sha256(codes)
        os.replace(codes, self.array_path)
        from . import __version__

        write_json(self.meta_path, self.inputs | {"key": self.key, "lsalsa_version": __version__,
                                                  "time_s": sum(r["time_s"] for r in records),
                                                  "batches_resumed": resumed, **facts, "codes_sha256": digest})
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        return np.load(self.array_path, mmap_mode="r")

    def _checkpoint(self, out: np.memmap, pending: list[tuple[int, dict[str, Any]]]) -> None:
        """Flush the finished rows to disk, then write their batches' markers (in that order: a
        marker never names rows that are not on disk)."""
        if not pending:
            return
        out.flush()
        for index, record in pending:
            write_json(self.partial_dir / "batches" / f"{index:08d}.json", record)

    def _open_partial(self, want: dict[str, Any], shape: tuple[int, int], dtype: np.dtype) -> np.memmap:
        """The unfinished entry's array, writable: the one started with ``want``, or a new one."""
        work, codes = self.partial_dir, self.partial_dir / "codes.npy"
        if self.partial_state() == want:
            try:
                out = np.load(codes, mmap_mode="r+")
                if out.shape == shape and out.dtype == dtype:
                    return out
            except Exception as exc:  # a damaged header: start again
                logger.warning("%s: unreadable (%s); starting the codes again", codes, exc)
        shutil.rmtree(work, ignore_errors=True)
        self.array_path.parent.mkdir(parents=True, exist_ok=True)
        check_free_space(work, int(np.prod(shape)) * np.dtype(dtype).itemsize)
        try:
            (work / "batches").mkdir(parents=True)
            out = np.lib.format.open_memmap(codes, mode="w+", dtype=dtype, shape=shape)
            reserve(codes, out.offset + out.nbytes)
            write_json(work / "state.json", want)  # last: its presence says the array is there
        except BaseException as exc:  # a full disk or a file size limit: leave nothing half made
            shutil.rmtree(work, ignore_errors=True)
            if isinstance(exc, OSError) and not exc.filename:
                raise OSError(exc.errno, exc.strerror, str(codes)) from None
            raise
        return out

    def _finished_batch(self, index: int, rows: np.ndarray) -> dict[str, Any] | None:
        """The marker of batch ``index`` when its rows are still what it recorded, else None."""
        try:
            record = read_json(self.partial_dir / "batches" / f"{index:08d}.json")
        except LsalsaError:  # no marker, or one that cannot be read: compute the batch
            return None
        return record if isinstance(record, dict) and record.get("X_sha256") == _rows_sha256(rows) else None


def _rows_sha256(rows: np.ndarray) -> str:
    """SHA-256 of rows' bytes in C order (hashed through their buffer, without a copy)."""
    return hashlib.sha256(np.ascontiguousarray(rows)).hexdigest()
