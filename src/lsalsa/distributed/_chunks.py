"""A job over the rows of a data set, one Dask task per chunk of ``chunk_rows`` rows.

Each task reads its own rows (from a ``.npy`` file or zarr array that the workers can open, a
block of a dask array, or the block of an in-memory array sent with it), computes its output
rows with the object sent to every worker once (a problem or an encoder, :func:`share`), and
writes them as one chunk of the zarr array ``out`` (``(n, width)``, chunked ``(chunk_rows,
width)``: a chunk is written whole, by one task, atomically by zarr's file store). After the
chunk it writes a completion marker ``<out>/lsalsa_chunks/<index>.json`` with the SHA-256 of
the chunk's input rows and what the computation reported. A task that finds a marker of its job
and of the same input rows returns it without computing, so a job started again (after an
interruption, or when Dask re-runs a task whose finished result died with its worker) writes no
row a second time, and a chunk whose input changed is computed again.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import read_json, write_json
from ..errors import LsalsaError

MARKERS = "lsalsa_chunks"
Compute = Callable[[Any, np.ndarray, dict], tuple[np.ndarray, dict]]
"""``compute(payload, Y: (B, M), settings) -> (X: (B, width), JSON-able facts)``, run on a worker."""


@dataclass(frozen=True)
class Rows:
    """Where a job's input rows ``(n, M)`` are read, on the worker that needs them: a ``.npy``
    file (memory-mapped there), a zarr array, or ``"block"``: the task is given its rows."""

    kind: str
    ref: Any
    n: int
    M: int
    dtype: str

    def read(self, start: int, stop: int, block: Any) -> np.ndarray:
        """Rows ``start:stop`` as a C-contiguous, writable numpy copy."""
        if self.kind == "npy":
            Y = np.load(self.ref, mmap_mode="r")[start:stop]
        elif self.kind == "zarr":
            Y = self.ref[start:stop]
        else:
            Y = block
        return np.array(Y, order="C")


def as_rows(Y: Any, M: int, dtype: np.dtype, where: str = "Y") -> tuple[Rows, Any]:
    """``Y`` (dask array, zarr array or the path of one, numpy array or memmap, torch tensor, or
    a ``.npy`` path) as :class:`Rows` of width ``M`` and ``dtype``, and the array the tasks'
    blocks are cut from (None when the workers read the file themselves); :class:`LsalsaError`
    naming what does not fit."""
    import dask.array as da
    import zarr

    if isinstance(Y, (str, os.PathLike)):
        Y = _open_path(Path(Y).expanduser(), where)
    if isinstance(Y, Path):
        header = np.load(Y, mmap_mode="r")
        rows, source = Rows("npy", str(Y.resolve()), *_shape(header.shape, M, where), str(header.dtype)), None
    elif isinstance(Y, zarr.Array):
        rows, source = Rows("zarr", Y, *_shape(Y.shape, M, where), str(Y.dtype)), None
    elif isinstance(Y, da.Array):
        if any(np.isnan(s) for s in Y.shape):
            raise LsalsaError(f"{where}: the dask array's shape is not known ({Y.shape}); call compute_chunk_sizes()")
        rows, source = Rows("block", None, *_shape(Y.shape, M, where), str(Y.dtype)), Y
    elif isinstance(Y, np.ndarray) or _is_tensor(Y):
        Y = Y.detach().cpu().numpy() if _is_tensor(Y) else Y
        rows, source = Rows("block", None, *_shape(Y.shape, M, where), str(Y.dtype)), Y
    else:
        raise LsalsaError(f"{where}: expected a dask array, zarr array, numpy array, tensor or a .npy path, "
                          f"got {type(Y).__name__}")
    if np.dtype(rows.dtype) != dtype:
        raise LsalsaError(f"{where}: dtype {rows.dtype} does not match the model's {dtype}; convert one of them")
    return rows, source


def _open_path(path: Path, where: str) -> Any:
    """A ``.npy`` path as itself (checked readable), anything else as a zarr array."""
    import zarr

    if path.suffix == ".npy":
        try:
            np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise LsalsaError(f"{where}: cannot read {path} as a .npy array ({exc})") from None
        return path
    try:
        return zarr.open_array(str(path), mode="r")
    except Exception as exc:  # zarr raises FileNotFoundError, its own NodeNotFound, ValueError, ...
        raise LsalsaError(f"{where}: {path} is neither a .npy file nor a zarr array ({type(exc).__name__}: {exc})"
                          ) from None


def _is_tensor(Y: Any) -> bool:
    import torch

    return isinstance(Y, torch.Tensor)


def _shape(shape: tuple, M: int, where: str) -> tuple[int, int]:
    if len(shape) != 2 or shape[1] != M or shape[0] == 0:
        raise LsalsaError(f"{where}: expected shape (n, {M}) with n >= 1, got {tuple(shape)}")
    return int(shape[0]), M


def bounds(n: int, chunk_rows: int) -> list[tuple[int, int]]:
    """The row range of each chunk."""
    return [(i, min(i + chunk_rows, n)) for i in range(0, n, chunk_rows)]


def blocks(client: Any, rows: Rows, source: Any, chunk_rows: int) -> list[Any]:
    """Per chunk, what its task is given besides the rows' description: None (it reads a file),
    a future of the dask array's block (computed on the cluster), or the in-memory block."""
    if source is None:
        return [None] * len(bounds(rows.n, chunk_rows))
    import dask.array as da

    if isinstance(source, da.Array):
        return client.compute(source.rechunk((chunk_rows, rows.M)).to_delayed().ravel().tolist())
    return [source[a:b] for a, b in bounds(rows.n, chunk_rows)]


def open_out(out: Any, shape: tuple[int, int], dtype: np.dtype, chunk_rows: int, inputs: dict) -> Path:
    """The zarr array at path ``out`` for this job: created ``shape``, ``dtype``, chunked
    ``(chunk_rows, width)``, holding ``inputs`` in its attributes; an existing one must agree on
    all of them (:class:`LsalsaError` naming what differs). Returns its path."""
    import zarr

    if not isinstance(out, (str, os.PathLike)):
        raise LsalsaError(f"out: expected the path of a zarr array (a directory on storage every worker reads), "
                          f"got {type(out).__name__}")
    path = Path(out).expanduser().resolve()
    want = {"key": key_of(inputs), "inputs": inputs}
    if not path.exists():
        zarr.create_array(store=str(path), shape=shape, chunks=(chunk_rows, shape[1]), dtype=dtype,
                          fill_value=np.nan, attributes={"lsalsa": want})
        return path
    try:
        arr = zarr.open_array(str(path), mode="r+")
    except Exception as exc:  # not a zarr array: a group, another file, a damaged zarr.json
        raise LsalsaError(f"out: {path} exists and is not a zarr array ({type(exc).__name__}: {exc}); "
                          "delete it or give another path") from None
    if tuple(arr.shape) != shape or arr.dtype != dtype:
        raise LsalsaError(f"out: the zarr array {path} has shape {tuple(arr.shape)} and dtype {arr.dtype}; "
                          f"this job writes {shape} {np.dtype(dtype)}: delete it or give another path")
    if tuple(arr.chunks) != (chunk_rows, shape[1]):
        raise LsalsaError(f"out: the zarr array {path} is chunked {tuple(arr.chunks)}; this job writes chunks of "
                          f"({chunk_rows}, {shape[1]}): pass chunk_rows={arr.chunks[0]} or give another path")
    held = arr.attrs.get("lsalsa")
    if held is None:
        arr.attrs["lsalsa"] = want  # an empty array the caller made for these codes
    elif held.get("key") != want["key"]:
        differ = sorted(k for k in inputs.keys() | held.get("inputs", {}).keys()
                        if inputs.get(k) != held.get("inputs", {}).get(k))
        raise LsalsaError(f"out: the zarr array {path} holds the output of other inputs (differing: "
                          f"{', '.join(differ) or 'its key'}); delete it or give another path")
    return path


def key_of(inputs: dict) -> str:
    """16 hex digits of the SHA-256 of ``inputs`` as canonical JSON."""
    import json

    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """One run of a chunked job: what every task needs besides its payload and rows."""

    compute: Compute
    settings: dict
    rows: Rows
    chunk_rows: int
    out: str | None  # the zarr array's path, or None: the output rows come back to the client
    key: str  # of the job's inputs: a marker of another key marks nothing
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # which run wrote a chunk

    def marker(self, index: int) -> Path:
        return Path(self.out) / MARKERS / f"{index:08d}.json"


def run_chunk(job: Job, index: int, block: Any, payload: Any) -> dict:
    """The task of chunk ``index`` on a worker: its output rows, written to ``job.out`` with
    their marker (or returned in the record under ``"X"`` when there is no ``out``); a chunk
    already written from the same rows is not computed again. Returns the chunk's record."""
    start, stop = bounds(job.rows.n, job.chunk_rows)[index]
    Y = job.rows.read(start, stop, block)
    digest = hashlib.sha256(Y.tobytes()).hexdigest()
    if job.out is not None:
        done = _done(job, index)
        if done is not None and done.get("Y_sha256") == digest:
            return done | {"computed": False}
    t0 = time.perf_counter()
    X, facts = job.compute(payload, Y, job.settings)
    record = {"chunk": index, "rows": [start, stop], "key": job.key, "Y_sha256": digest, "run": job.run_id,
              "pid": os.getpid(), "time_s": time.perf_counter() - t0, **facts}
    if job.out is None:
        return record | {"computed": True, "X": X}
    import zarr

    zarr.open_array(job.out, mode="r+")[start:stop] = X
    write_json(job.marker(index), record)  # atomic, after the chunk: its presence means the rows are there
    return record | {"computed": True}


def _done(job: Job, index: int) -> dict | None:
    path = job.marker(index)
    if not path.is_file():
        return None
    try:
        record = read_json(path)
    except LsalsaError:  # a marker that cannot be read marks nothing
        return None
    return record if isinstance(record, dict) and record.get("key") == job.key else None


def run(client: Any, job: Job, source: Any, payload: Any, *, progress: bool = False, name: str = "lsalsa"
        ) -> list[dict]:
    """Every chunk of ``job`` on ``client``'s cluster (rows cut from ``source``, see
    :func:`blocks`), ``payload`` sent to each worker once (:func:`share`); the chunks' records
    in row order (with ``"X"`` when ``job.out`` is None)."""
    from distributed import progress as dask_progress

    shared = share(client, payload, f"{name}-{job.run_id[:8]}")
    parts = blocks(client, job.rows, source, job.chunk_rows)
    with warnings.catch_warnings():  # an in-memory block goes with its task, once, on purpose
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        futures = [client.submit(run_chunk, job, i, part, shared, key=f"{name}-{job.run_id[:8]}-{i}", pure=False)
                   for i, part in enumerate(parts)]
    try:
        if progress:
            dask_progress(futures)
        return client.gather(futures)
    finally:
        client.cancel(futures + [shared] + [p for p in parts if hasattr(p, "key")])


def _identity(payload: Any) -> Any:
    return payload


def share(client: Any, payload: Any, name: str) -> Any:
    """A future of ``payload`` for the tasks that take it: sent to the cluster once, then to
    each worker once (from a worker that holds it), and recomputed from the scheduler's copy if
    every worker holding it dies. (``client.scatter(broadcast=True)`` would not survive that:
    the scheduler keeps no copy of scattered data, and it drops replicas it deems superfluous.)"""
    with warnings.catch_warnings():  # the payload is in the graph once, on purpose
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        return client.submit(_identity, payload, key=f"{name}-payload", pure=False)
