"""Optimal codes ``X_star`` for a whole data set, computed in batches and cached on disk.

The encoders are trained to approximate the optimal codes (Eq. 15), which the paper computes
once, before training, by running FISTA or SALSA to convergence (Section 6). For data sets of
hundreds of thousands of patches that is the most expensive step, so the codes are written to a
memory-mappable ``.npy`` file with a JSON description, and reused when asked for again.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._validation import check_positive, check_positive_int
from .errors import LsalsaError
from .problem import LassoProblem
from .solvers import fista, salsa
from .solvers.salsa import CONVERGENT_RELAXATION, auto_mu, check_polish

SOLVERS = ("fista", "salsa")
_HASH_ROWS = 65536  # rows hashed per read, so hashing a memmap needs bounded memory


def _rows(Y: Any, i: int, j: int) -> np.ndarray:
    """Rows ``i:j`` of Y as a C-contiguous, writable numpy copy (reads only those rows of a memmap)."""
    block = Y[i:j]
    if isinstance(block, torch.Tensor):
        block = block.detach().cpu().numpy()
    return np.array(block, order="C")


def _hash_rows(Y: Any, n: int) -> str:
    h = hashlib.sha256()
    for i in range(0, n, _HASH_ROWS):
        h.update(_rows(Y, i, i + _HASH_ROWS).tobytes())
    return h.hexdigest()


def _check_Y(problem: LassoProblem, Y: Any) -> tuple[int, np.dtype]:
    if not isinstance(Y, (np.ndarray, torch.Tensor)):
        raise LsalsaError(f"Y: expected a numpy array, memmap or torch tensor, got {type(Y).__name__}")
    if Y.ndim != 2 or Y.shape[1] != problem.n_features or Y.shape[0] == 0:
        raise LsalsaError(f"Y: expected shape (n, {problem.n_features}) with n >= 1, got {tuple(Y.shape)}")
    want = torch.empty(0, dtype=problem.dtype).numpy().dtype
    got = Y.dtype if isinstance(Y, np.ndarray) else torch.empty(0, dtype=Y.dtype).numpy().dtype
    if got != want:
        raise LsalsaError(f"Y: dtype {got} does not match the problem's {want}; convert one of them")
    return Y.shape[0], want


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"


def optimal_codes(
    problem: LassoProblem,
    Y: Any,
    *,
    solver: str = "fista",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    mu: float | str | None = None,
    polish: bool | None = None,
    batch_size: int = 4096,
    cache_dir: str | os.PathLike | None = None,
    dataset_name: str = "data",
    progress: bool = False,
) -> np.ndarray:
    """The optimal codes ``X_star = argmin_x E_A(x; y)`` (Eq. 4/6) of every row of ``Y``.

    Rows are solved ``batch_size`` at a time with FISTA or SALSA run to convergence, so memory
    stays bounded by the batch for inputs larger than RAM (``Y`` may itself be a memmap).

    With ``cache_dir``, the codes go to ``<cache_dir>/<dataset_name>-<key>.npy``, written batch by
    batch into a memmap under a temporary name and renamed when complete, next to a ``.json``
    describing them (data set name, SHA-256 of the dictionary and of ``Y``, alphas, dict sizes,
    solver, mu as asked, SALSA's relaxation and polish, tol, max_iter; then the mu used, the
    largest KKT violation reached, n, dtype). The key hashes the inputs (not what was computed
    from them), so asking again with the same ones returns the stored codes (read-only memmap)
    without solving anything; any change computes, and stores, new codes.

    Parameters
    ----------
    problem : the LassoProblem (dictionaries and alphas).
    Y : (n, M) numpy array, memmap or tensor of the problem's dtype.
    solver : "fista" or "salsa" (SALSA often converges in far fewer iterations; the paper uses
        FISTA for single dictionaries and SALSA for MCA).
    tol, max_iter : the solver's stopping rule (relative change of x below ``tol``).
    mu : SALSA's penalty: a number, or "auto" (default, also for None): :func:`lsalsa.solvers.auto_mu`
        on up to 32 rows spread over all of ``Y``, chosen once and used for every batch (recorded
        as ``mu_used``). Ignored by FISTA. SALSA runs over-relaxed (:func:`lsalsa.salsa`'s
        default when converging), checking its stopping rule every 10 iterations.
    polish : SALSA's exact finish on each row's support (:func:`lsalsa.salsa`), for codes
        certified optimal to rounding where the support is found: None (default) resolves as
        ``salsa`` does (on a CPU up to 256 atoms, and from 512 on), True or False force it
        (recorded, and part of the cache key). Ignored by FISTA.
    batch_size : rows solved together.
    cache_dir : where to store and look up codes; None computes them in memory.
    dataset_name : names the cache files (and is recorded in the metadata).
    progress : show a tqdm bar over the batches.

    Returns
    -------
    X_star : (n, N) numpy array of the problem's dtype; a read-only memmap when cached.
    """
    if not isinstance(problem, LassoProblem):
        raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
    if solver not in SOLVERS:
        raise LsalsaError(f"solver: expected one of {list(SOLVERS)}, got {solver!r}")
    n, dtype = _check_Y(problem, Y)
    tol, max_iter = check_positive(tol, "tol"), check_positive_int(max_iter, "max_iter")
    batch_size = check_positive_int(batch_size, "batch_size")
    relaxation = None
    if solver == "salsa":
        mu = "auto" if mu is None or (isinstance(mu, str) and mu == "auto") else check_positive(mu, "mu")
        relaxation = CONVERGENT_RELAXATION
        polish = check_polish(polish, False, problem.n_atoms, problem.A.device)
    else:
        mu = polish = None  # FISTA has neither; keep them out of the cache key
    N = problem.n_atoms
    kwargs = {"tol": tol, "max_iter": max_iter}
    if solver == "salsa":
        kwargs |= {"mu": mu, "relaxation": relaxation, "polish": polish}

    if cache_dir is None:
        X_star = np.empty((n, N), dtype=dtype)
        _solve_into(X_star, problem, Y, solver, _with_mu(kwargs, problem, Y, n), batch_size, progress)
        return X_star

    meta = {
        "dataset_name": dataset_name,
        "dictionary_sha256": hashlib.sha256(np.ascontiguousarray(problem.A.detach().cpu().numpy()).tobytes()).hexdigest(),
        "Y_sha256": _hash_rows(Y, n),
        "n": n, "n_features": problem.n_features, "n_atoms": N, "dtype": str(dtype),
        "alphas": problem.alphas.tolist(), "dict_sizes": list(problem.dict_sizes),
        "solver": solver, "mu": mu, "tol": tol, "max_iter": max_iter,
    } | ({"relaxation": relaxation, "polish": polish} if solver == "salsa" else {})
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    directory = Path(cache_dir).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{_safe_name(dataset_name)}-{key}"
    npy, js = stem.with_suffix(".npy"), stem.with_suffix(".json")

    cached = _load_cached(npy, js, key, (n, N), dtype)
    if cached is not None:
        return cached

    tmp = npy.with_name(f"{npy.name}.{os.getpid()}.tmp")
    t0 = time.perf_counter()
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n, N))
        kwargs = _with_mu(kwargs, problem, Y, n)
        stats = _solve_into(out, problem, Y, solver, kwargs, batch_size, progress)
        out.flush()
        del out
        os.replace(tmp, npy)  # complete codes appear under the real name, or nothing does
    finally:
        tmp.unlink(missing_ok=True)
    from . import __version__

    meta |= {"key": key, "lsalsa_version": __version__, "time_s": time.perf_counter() - t0, **stats}
    if solver == "salsa":
        meta["mu_used"] = kwargs["mu"]
    tmp_js = js.with_name(f"{js.name}.{os.getpid()}.tmp")
    tmp_js.write_text(json.dumps(meta, indent=2))
    os.replace(tmp_js, js)  # the metadata is written last: its presence marks a finished file
    return np.load(npy, mmap_mode="r")


def _with_mu(kwargs: dict, problem: LassoProblem, Y: Any, n: int) -> dict:
    """Resolve ``mu="auto"`` once for the whole data set, from rows spread over all of it, so
    every batch runs with the same mu (and a memmap is only read at those rows)."""
    if kwargs.get("mu") != "auto":
        return kwargs
    idx = np.unique(np.linspace(0, n - 1, min(n, 32)).round().astype(np.int64))
    sample = Y[idx] if isinstance(Y, np.ndarray) else Y[torch.from_numpy(idx)]
    if isinstance(sample, torch.Tensor):
        sample = sample.detach().cpu().numpy()
    sample = torch.from_numpy(np.array(sample, order="C")).to(problem.device)
    return kwargs | {"mu": auto_mu(problem, sample)}


def _load_cached(npy: Path, js: Path, key: str, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray | None:
    if not (npy.is_file() and js.is_file()):
        return None
    try:
        meta = json.loads(js.read_text())
        X = np.load(npy, mmap_mode="r")
    except (OSError, ValueError):
        return None  # unreadable leftovers are recomputed and overwritten
    if meta.get("key") != key or X.shape != shape or X.dtype != dtype:
        return None
    return X


def _solve_into(
    out: np.ndarray, problem: LassoProblem, Y: Any, solver: str, kwargs: dict, batch_size: int, progress: bool
) -> dict[str, Any]:
    """Solve ``Y`` batch by batch into ``out``; returns convergence statistics."""
    from tqdm.auto import tqdm

    n = out.shape[0]
    max_kkt, max_n_iter, all_converged = 0.0, 0, True
    for i in tqdm(range(0, n, batch_size), desc="optimal codes", disable=not progress):
        Yb = torch.from_numpy(_rows(Y, i, i + batch_size)).to(problem.device)
        res = _solve_batch(problem, Yb, solver, kwargs)
        out[i:i + len(Yb)] = res.X.cpu().numpy()
        max_kkt = max(max_kkt, float(problem.kkt_violation(res.X, Yb).max()))
        max_n_iter, all_converged = max(max_n_iter, res.n_iter), all_converged and res.converged
    return {"max_kkt_violation": max_kkt, "max_n_iter": max_n_iter, "all_converged": all_converged}


def _solve_batch(problem: LassoProblem, Yb: torch.Tensor, solver: str, kwargs: dict):
    return (fista if solver == "fista" else salsa)(problem, Yb, **kwargs)
