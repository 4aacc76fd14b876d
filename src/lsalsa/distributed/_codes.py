"""Optimal codes of a data set on a Dask cluster: :func:`lsalsa.optimal_codes`, one task per chunk.

Every chunk is solved by :func:`lsalsa.codes`'s per-batch solve, in batches of ``batch_size``
rows from the chunk's first row, with SALSA's ``mu="auto"`` resolved once for the data set on
the client (as in process): with ``chunk_rows`` a multiple of ``batch_size`` the batches are
the in-process run's, so the codes are the same numbers.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .. import codes as _inprocess
from .._validation import check_positive_int
from ..code_cache import CodeCache
from ..problem import LassoProblem
from . import _chunks
from ._session import client_of, require_extra


def solve_chunk(problem: LassoProblem, Y: np.ndarray, settings: dict) -> tuple[np.ndarray, dict]:
    """Codes ``X: (B, N)`` of one chunk ``Y: (B, M)``, batch by batch with the in-process solve
    (:func:`lsalsa.codes.solve_rows`), and the chunk's convergence facts."""
    return _inprocess.solve_rows(problem, Y, settings["solver"], settings["run"], settings["batch_size"])


def _pilot_source(rows: _chunks.Rows, source: Any) -> Any:
    """An array the client can index by the pilot rows of ``mu="auto"``."""
    return np.load(rows.ref, mmap_mode="r") if rows.kind == "npy" else (rows.ref if source is None else source)


def codes_job(problem: LassoProblem, Y: Any, *, client: Any, chunk_rows: int, out: Any = None, solver: str = "fista",
              tol: float = 1e-6, max_iter: int = 10_000, mu: float | str | None = None, polish: bool | None = None,
              batch_size: int = 4096, progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """:func:`optimal_codes` and the facts :func:`lsalsa.optimal_codes` records in its cache
    description (``max_kkt_violation``, ``max_n_iter``, ``all_converged``; SALSA's
    ``mu_used``, ``relaxation``, ``polish``), plus ``n_chunks`` and ``chunks_computed``."""
    require_extra()
    run = _inprocess.solver_options(problem, solver, tol, max_iter, mu, polish)
    chunk_rows = check_positive_int(chunk_rows, "chunk_rows")
    batch_size = check_positive_int(batch_size, "batch_size")
    dtype = torch.empty(0, dtype=problem.dtype).numpy().dtype
    rows, source = _chunks.as_rows(Y, problem.n_features, dtype)
    shape = (rows.n, problem.n_atoms)
    inputs = {"job": "optimal_codes", "dictionary_sha256": _inprocess.dictionary_sha256(problem), "n": rows.n,
              "n_features": problem.n_features, "n_atoms": problem.n_atoms, "dtype": str(dtype),
              "alphas": problem.alphas.tolist(), "dict_sizes": list(problem.dict_sizes), "solver": solver,
              "batch_size": batch_size, **{("polish_asked" if k == "polish" else k): v for k, v in run.items()}}
    path = None if out is None else _chunks.open_out(out, shape, dtype, chunk_rows, inputs)
    with client_of(client) as c:
        if run.get("mu") == "auto":
            run["mu"] = _stored_mu(path) or _inprocess._dataset_mu(problem, _pilot_source(rows, source), rows.n)
            if path is not None:
                _store_attr(path, "mu_used", run["mu"])
        job = _chunks.Job(solve_chunk, {"solver": solver, "run": run, "batch_size": batch_size}, rows, chunk_rows,
                          None if path is None else str(path), _chunks.key_of(inputs | {"mu": run.get("mu")}))
        records = _chunks.run(c, job, source, problem,
                              progress=progress, name="optimal-codes")
    facts = _inprocess.summarize(problem, records, solver, run) | {"n_chunks": len(records),
                                                       "chunks_computed": sum(r["computed"] for r in records)}
    if path is None:
        return np.concatenate([r["X"] for r in records]), facts
    import zarr

    _store_attr(path, "facts", facts)
    return zarr.open_array(str(path), mode="r"), facts


def _stored_mu(path: Any) -> float | None:
    import zarr

    return None if path is None else zarr.open_array(str(path), mode="r").attrs["lsalsa"].get("mu_used")


def _store_attr(path: Any, name: str, value: Any) -> None:
    import zarr

    arr = zarr.open_array(str(path), mode="r+")
    arr.attrs["lsalsa"] = dict(arr.attrs["lsalsa"]) | {name: value}


def optimal_codes(problem: LassoProblem, Y: Any, *, client: Any, chunk_rows: int, out: Any = None,
                  solver: str = "fista", tol: float = 1e-6, max_iter: int = 10_000, mu: float | str | None = None,
                  polish: bool | None = None, batch_size: int = 4096, progress: bool = False) -> Any:
    """The optimal codes ``X_star`` of every row of ``Y`` (:func:`lsalsa.optimal_codes`) on a
    Dask cluster, one task per ``chunk_rows`` rows.

    The problem is sent to every worker once; each task reads its own rows (from a
    ``.npy`` file or zarr array on storage the workers share, a block of a dask array, or the
    block of an in-memory array sent with it) and solves them in batches of ``batch_size``.

    Parameters
    ----------
    problem : the LassoProblem (dictionaries and alphas).
    Y : (n, M) signals of the problem's dtype: a dask array, a zarr array (or its path), a
        ``.npy`` path, or a numpy array / tensor in this process's memory.
    client : a ``distributed.Client``, or a scheduler address (connected for this call).
    chunk_rows : rows per task (and per zarr chunk of ``out``); a multiple of ``batch_size``
        gives the in-process run's batches, hence its codes exactly.
    out : None (the codes come back as one numpy array), or the path of a zarr array written
        chunk by chunk, each with a completion marker: running the same call again computes
        only the chunks not yet written (and those whose input rows changed). An existing
        array must have shape ``(n, N)``, the problem's dtype and chunks ``(chunk_rows, N)``,
        and have been written for the same problem and options.
    solver, tol, max_iter, mu, polish, batch_size : as in :func:`lsalsa.optimal_codes`
        (``mu="auto"`` is resolved once, on the client, from rows spread over all of ``Y``).
    progress : show Dask's progress bar over the chunks.

    Returns
    -------
    X_star : (n, N) numpy array, or the zarr array ``out`` (read-only) when given. Codes that
    fail the KKT test raise one :class:`LsalsaConvergenceWarning` for the data set, as in process.
    """
    return codes_job(problem, Y, client=client, chunk_rows=chunk_rows, out=out, solver=solver, tol=tol,
                     max_iter=max_iter, mu=mu, polish=polish, batch_size=batch_size, progress=progress)[0]


def cached_codes(problem: LassoProblem, Y: Any, *, client: Any, chunk_rows: int, cache_dir: str | os.PathLike,
                 dataset_name: str = "data", solver: str = "fista", tol: float = 1e-6, max_iter: int = 10_000,
                 mu: float | str | None = None, polish: bool | None = None, progress: bool = False) -> np.ndarray:
    """:func:`lsalsa.optimal_codes` with ``cache_dir``, computed on Dask: the same cache entry
    (key, ``.npy`` codes, description with checksum), so either path reuses what the other
    stored. ``Y``: (n, M) numpy array (hashed here for the key). The chunks are written into
    ``<cache_dir>/<entry>.zarr`` first (an interrupted job resumes there), copied into the
    entry, and removed. Returns the codes as a read-only memmap."""
    import shutil

    run = _inprocess.solver_options(problem, solver, tol, max_iter, mu, polish)
    n, dtype = _inprocess._check_Y(problem, Y)
    cache = CodeCache(cache_dir, dataset_name, _inprocess.cache_inputs(problem, Y, n, dtype, solver, run, dataset_name))
    shape = (n, problem.n_atoms)
    cached = cache.load(shape, dtype)
    if cached is not None:
        return cached
    work = cache.array_path.with_suffix(".zarr")

    def fill(target: np.ndarray) -> dict[str, Any]:
        codes, facts = codes_job(problem, Y, client=client, chunk_rows=chunk_rows, out=work, solver=solver, tol=tol,
                                 max_iter=max_iter, mu=mu, polish=polish, progress=progress)
        for a, b in _chunks.bounds(n, chunk_rows):
            target[a:b] = codes[a:b]
        return {k: v for k, v in facts.items() if k not in ("n_chunks", "chunks_computed")}

    X = cache.store(shape, dtype, fill)
    shutil.rmtree(work)
    return X
