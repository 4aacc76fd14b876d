"""Optimal codes ``X_star`` of a whole data set, computed in batches.

The encoders are trained to approximate the optimal codes (Eq. 15), which the paper computes
once, before training, by running FISTA or SALSA to convergence (Section 6). For data sets of
hundreds of thousands of patches that is the most expensive step, so the data set is read and
solved a batch at a time (it may be a memmap larger than memory), and the codes can be kept in
a :class:`lsalsa.code_cache.CodeCache` and reused when asked for again.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any

import numpy as np
import torch

from ._validation import check_positive, check_positive_int
from .code_cache import CodeCache
from .errors import LsalsaConvergenceWarning, LsalsaError
from .problem import LassoProblem
from .solvers import auto_mu, fista, salsa
from .solvers._common import convergence_message
from .solvers.penalty import pilot_rows

SOLVERS = ("fista", "salsa")
_HASH_ROWS = 65536  # rows hashed per read, so hashing a memmap needs bounded memory


def _rows(Y: Any, index: Any) -> np.ndarray:
    """Rows ``Y[index]`` (a slice or an index array) as a C-contiguous, writable numpy copy;
    a memmap is read at those rows only."""
    block = Y[index]
    if isinstance(block, torch.Tensor):
        block = block.detach().cpu().numpy()
    return np.array(block, order="C")


def _hash_rows(Y: Any, n: int) -> str:
    h = hashlib.sha256()
    for i in range(0, n, _HASH_ROWS):
        h.update(_rows(Y, slice(i, i + _HASH_ROWS)).tobytes())
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

    With ``cache_dir``, the codes are an entry of a :class:`lsalsa.code_cache.CodeCache`:
    ``<cache_dir>/<dataset_name>-<key>.npy`` and a ``.json`` describing them. The key hashes the
    inputs as asked (data set name, SHA-256 of the dictionary and of ``Y``, alphas, dict sizes,
    solver, tol, max_iter, and SALSA's mu and polish as asked), so asking again with the same
    ones returns the stored codes (read-only memmap) without solving anything; any change
    computes, and stores, new codes. The description adds what ran and what came out: SALSA's
    mu used, relaxation and polish, the largest KKT violation reached, the most iterations a
    batch took, whether every batch converged. The entry is filled batch by batch with a marker
    after each (:meth:`lsalsa.code_cache.CodeCache.store_batches`): a call interrupted at any
    point (Ctrl-C, ``kill -9``) and made again computes only the batches it had not finished.

    Parameters
    ----------
    problem : the LassoProblem (dictionaries and alphas).
    Y : (n, M) numpy array, memmap or tensor of the problem's dtype.
    solver : "fista" or "salsa" (SALSA often converges in far fewer iterations; the paper uses
        FISTA for single dictionaries and SALSA for MCA).
    tol, max_iter : the solver's stopping rule (relative change of x below ``tol``).
    mu : SALSA's penalty: a number, or "auto" (default, also for None): :func:`lsalsa.solvers.auto_mu`
        on rows spread over all of ``Y`` (:func:`lsalsa.solvers.penalty.pilot_rows`), chosen
        once and used for every batch (recorded as ``mu_used``). Ignored by FISTA.
    polish : SALSA's exact finish on each row's support, passed to :func:`lsalsa.salsa` (None,
        the default, lets it decide). Ignored by FISTA.
    batch_size : rows solved together.
    cache_dir : where to store and look up codes; None computes them in memory.
    dataset_name : names the cache files (and is recorded in the metadata).
    progress : show a tqdm bar over the batches.

    Returns
    -------
    X_star : (n, N) numpy array of the problem's dtype; a read-only memmap when cached.
    """
    kwargs = solver_options(problem, solver, tol, max_iter, mu, polish)
    n, dtype = _check_Y(problem, Y)
    batch_size = check_positive_int(batch_size, "batch_size")
    shape = (n, problem.n_atoms)
    cache = None
    if cache_dir is not None:
        cache = CodeCache(cache_dir, dataset_name, cache_inputs(problem, Y, n, dtype, solver, kwargs, dataset_name))
        cached = cache.load(shape, dtype)
        if cached is not None:
            return cached
    run = dict(kwargs)
    if run.get("mu") == "auto":  # once for the data set; an interrupted run resumes with its own
        run["mu"] = (cache.partial_state().get("mu_used") if cache else None) or _dataset_mu(problem, Y, n)

    def compute(start: int, stop: int) -> tuple[np.ndarray, dict[str, Any]]:
        return solve_rows(problem, _rows(Y, slice(start, stop)), solver, run, batch_size)

    def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
        return summarize(problem, records, solver, run)

    if cache is not None:
        return cache.store_batches(shape, dtype, batch_size, compute, summary, state={"mu_used": run.get("mu")},
                                   progress=progress, desc="optimal codes")
    from tqdm.auto import tqdm

    X_star, records = np.empty(shape, dtype=dtype), []
    for start in tqdm(range(0, n, batch_size), desc="optimal codes", disable=not progress):
        stop = min(start + batch_size, n)
        X_star[start:stop], facts = compute(start, stop)
        records.append(facts | {"rows": [start, stop]})
    summary(records)
    return X_star


def solver_options(problem: Any, solver: str, tol: Any, max_iter: Any, mu: Any, polish: Any) -> dict[str, Any]:
    """The options of :func:`optimal_codes`, checked: ``{"tol", "max_iter"}`` and for SALSA
    ``"mu"`` (a number or "auto") and ``"polish"`` (FISTA has neither: they stay out of its key)."""
    if not isinstance(problem, LassoProblem):
        raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
    if solver not in SOLVERS:
        raise LsalsaError(f"solver: expected one of {list(SOLVERS)}, got {solver!r}")
    kwargs = {"tol": check_positive(tol, "tol"), "max_iter": check_positive_int(max_iter, "max_iter")}
    if solver == "salsa":
        if polish is not None and not isinstance(polish, bool):
            raise LsalsaError(f"polish: expected True, False or None, got {polish!r}")
        auto = mu is None or (isinstance(mu, str) and mu == "auto")
        kwargs |= {"mu": "auto" if auto else check_positive(mu, "mu"), "polish": polish}
    return kwargs


def dictionary_sha256(problem: LassoProblem) -> str:
    """SHA-256 of the problem's dictionary ``A`` (its bytes as stored, C order)."""
    return hashlib.sha256(np.ascontiguousarray(problem.A.detach().cpu().numpy()).tobytes()).hexdigest()


def cache_inputs(problem: LassoProblem, Y: Any, n: int, dtype: np.dtype, solver: str, kwargs: dict[str, Any],
                 dataset_name: str) -> dict[str, Any]:
    """What a code cache entry's key hashes (:class:`lsalsa.code_cache.CodeCache`): the data set
    name, the dictionary's and ``Y``'s SHA-256 (``Y: (n, M)``), shapes, alphas, and the solver
    options as asked (``kwargs`` of :func:`solver_options`; "polish" is recorded as
    "polish_asked", the description keeping what ran)."""
    asked = {("polish_asked" if k == "polish" else k): v for k, v in kwargs.items()}
    return {"dataset_name": dataset_name, "dictionary_sha256": dictionary_sha256(problem), "Y_sha256": _hash_rows(Y, n),
            "n": n, "n_features": problem.n_features, "n_atoms": problem.n_atoms, "dtype": str(dtype),
            "alphas": problem.alphas.tolist(), "dict_sizes": list(problem.dict_sizes), "solver": solver, **asked}


def _dataset_mu(problem: LassoProblem, Y: Any, n: int) -> float:
    """``mu="auto"`` resolved once for the whole data set, from the trial's pilot rows spread
    over all of it, so every batch runs with the same mu (and a memmap is read at those rows)."""
    rows = pilot_rows(n)
    sample = _rows(Y, rows if isinstance(Y, torch.Tensor) else rows.numpy())
    return auto_mu(problem, torch.from_numpy(sample).to(problem.device))


def solve_rows(problem: LassoProblem, Y: np.ndarray, solver: str, run: dict[str, Any], batch_size: int
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """Codes ``X: (B, N)`` of the rows ``Y: (B, M)``, ``batch_size`` at a time, and their
    convergence facts (counts and extremes, JSON-able: what :func:`summarize` needs for the data
    set). ``run``: the solver's options with SALSA's mu resolved. The solver's warning per batch
    is silenced: :func:`summarize` warns once for the data set."""
    X = np.empty((len(Y), problem.n_atoms), dtype=Y.dtype)
    facts = {"max_kkt_violation": 0.0, "max_n_iter": 0, "n_failed": 0, "n_unresolved": 0,
             "worst_failed_violation": 0.0, "rtol": None, "settings": {}}
    for i in range(0, len(Y), batch_size):
        Yb = torch.from_numpy(Y[i:i + batch_size]).to(problem.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LsalsaConvergenceWarning)
            res = _solve_batch(problem, Yb, solver, run)
        X[i:i + len(Yb)] = res.X.cpu().numpy()
        v = {k: res.kkt[k].cpu() for k in ("ok", "violation", "unresolved")}  # the solver's own test of these codes
        failed = ~v["ok"]
        facts["max_kkt_violation"] = max(facts["max_kkt_violation"], float(v["violation"].max()))
        facts["max_n_iter"] = max(facts["max_n_iter"], int(res.n_iter))
        facts["n_failed"] += int(failed.sum())
        facts["n_unresolved"] += int(v["unresolved"].sum())
        if failed.any():
            facts["worst_failed_violation"] = max(facts["worst_failed_violation"], float(v["violation"][failed].max()))
        facts["rtol"] = res.kkt["rtol"]
        if solver == "salsa":
            facts["settings"] = {k: res.settings[k] for k in ("mu", "relaxation", "polish")}
    return X, facts


def summarize(problem: LassoProblem, records: list[dict[str, Any]], solver: str, run: dict[str, Any]
              ) -> dict[str, Any]:
    """The data set's facts from its parts' records (:func:`solve_rows`' facts, each with its
    ``"rows": [start, stop]``, in row order): ``max_kkt_violation``, ``max_n_iter``,
    ``all_converged``, and SALSA's ``mu_used``, ``relaxation``, ``polish``. Warns once
    (:class:`LsalsaConvergenceWarning`) when rows did not converge."""
    n = records[-1]["rows"][1]
    n_failed = sum(r["n_failed"] for r in records)
    facts = {"max_kkt_violation": max(r["max_kkt_violation"] for r in records),
             "max_n_iter": max(r["max_n_iter"] for r in records), "all_converged": n_failed == 0}
    if n_failed:
        # convergence_message reads counts and the failed rows' largest violation only, so the
        # verdict is rebuilt from the parts' counts (row order does not enter the message)
        ok = torch.ones(n, dtype=torch.bool)
        ok[:n_failed] = False
        unresolved = torch.zeros(n, dtype=torch.bool)
        unresolved[:sum(r["n_unresolved"] for r in records)] = True
        worst = torch.tensor([max(r["worst_failed_violation"] for r in records)], dtype=torch.float64)
        verdict = {"ok": ok, "violation": worst.expand(n), "unresolved": unresolved, "rtol": records[0]["rtol"]}
        warnings.warn(f"optimal codes ({solver}, max_iter={run['max_iter']}, tol={run['tol']:g}): "
                      f"{convergence_message(problem, problem.dtype, verdict)}", LsalsaConvergenceWarning, stacklevel=2)
    if solver == "salsa":
        s = records[0]["settings"]
        facts |= {"mu_used": s["mu"], "relaxation": s["relaxation"], "polish": s["polish"]}
    return facts


def _solve_batch(problem: LassoProblem, Yb: torch.Tensor, solver: str, kwargs: dict):
    return (fista if solver == "fista" else salsa)(problem, Yb, **kwargs)
