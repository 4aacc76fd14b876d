"""Run an experiment of the paper's Section 6 from a config, one cached step at a time.

Steps (each writes its outputs into the run directory and is skipped when they exist, so an
interrupted run picks up where it stopped):

1. ``data``: training / test signals (patches or mixtures), labels, image index -> ``data.npz``
2. ``dictionary``: one dictionary per source (Eq. 5, Remark 1) -> ``dictionary.npz``
3. ``codes``: optimal codes X* of the training and test signals -> ``codes/``
4. ``methods``: per method and T, a hyper-parameter search on a validation split, training of the
   learned encoders (Eq. 15) and evaluation on the test set -> ``results/<method>_T<T>.json|.npz``,
   ``models/<method>_T<T>.pt`` (:mod:`lsalsa.experiments.evaluate`)
5. ``separate`` (mixture experiments only): a whole picture, MNIST test digits over a held-out
   photo, separated by every method and T with :func:`lsalsa.separate_image`; model files
   ``models/<method>_T<T>.model`` for ``lsalsa separate`` -> ``separation/``,
   ``results/separation.json``
6. ``report``: figures, ``results.csv``, ``report.md`` and ``report.html``

Every step takes the :class:`RunContext` (config, run directory, logger, progress bars,
device) and the outputs of the steps before it. A run holds the run directory's lock
(:func:`lsalsa.files.directory_lock`) from start to end, so a second process asking for the
same directory is refused instead of redoing the same steps beside it; on start, it removes the
temporary files a killed run left behind.

Under torchrun (``torchrun --nproc-per-node K -m lsalsa run CONFIG``), rank 0 holds the lock and
computes the data, dictionary and codes steps while the other ranks wait (a barrier), then read
what it cached; every rank trains the learned encoders together (:func:`lsalsa.train_encoder`
joins the process group); only rank 0 evaluates, writes results and models, separates and
reports.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .. import data as lsdata
from ..bundle import SeparationModel, save_model
from ..code_cache import entries
from ..codes import optimal_codes
from ..ddp import Ranks, join, launched, rank0_first
from ..dictionary import learn_dictionary
from ..distributed import active_cluster, cached_codes
from ..encoders import load_encoder
from ..errors import LsalsaError
from ..evaluation import psnr
from ..files import directory_lock, load_npz, read_json, remove_temporaries, save_npz, write_json
from ..methods import get_method
from ..problem import LassoProblem
from ..separation import save_separation, separate_image, write_image
from .config import ExperimentConfig, config_from_dict
from .context import (RECOMPUTE, Log, RunContext, is_rows, load_step, read_step_json, resolve_device, silent,
                      step_file_hint)
from .evaluate import step_methods, with_params
from .signals import data_origin, mixture_signals, patch_signals, resolve_sources

STEPS = ("data", "dictionary", "codes", "methods", "separate", "report")


# ---- step 1: data --------------------------------------------------------------------------
DATA_KEYS = {"patches": ("Y_train", "Y_dict", "Y_test", "image", "labels"),
             "mixture": ("Y_train", "Y_test", "C_train_dict", "C_test", "labels", "index", "patches_per_image")}


def step_data(run: RunContext) -> dict[str, np.ndarray]:
    """The signals of the experiment, floats in the run's dtype (built once, then read;
    :mod:`lsalsa.experiments.signals`). A source that is missing, or holds fewer signals than
    asked for, fails here, before any long step."""
    c, path = run.config, run.path("data.npz")
    if path.exists():
        arrays = load_step(path, DATA_KEYS[c.data.kind])
        run.log(f"[data] cached: {len(arrays['Y_train'])} training and {len(arrays['Y_test'])} test signals ({path.name})")
    else:
        sources = resolve_sources(c)
        run.log(f"[data] building {c.data.kind} signals from {' + '.join(repr(s.used) for s in sources)}")
        rng = np.random.default_rng(c.seed)
        arrays = (patch_signals(c, rng, sources[0]) if c.data.kind == "patches" else
                  mixture_signals(c, rng, sources))
        arrays = {k: (v.astype(c.data.dtype) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
        save_npz(path, **arrays)
        run.log(f"[data] {len(arrays['Y_train'])} training and {len(arrays['Y_test'])} test signals of length "
                f"{arrays['Y_train'].shape[1]}")
    notes = {}
    for part, info in data_origin(arrays).items():
        if info.get("stand_in_for"):
            notes.setdefault(f"[data] note: {part.split()[0]} is the {info.get('note')}", None)
        elif info.get("full") is False:
            notes.setdefault(f"[data] note: {part} is a subset: {info.get('note') or info.get('origin')}", None)
    for note in notes:
        run.log(note)
    return arrays


# ---- step 2: dictionary ----------------------------------------------------------------------
def step_dictionary(run: RunContext, arrays: dict[str, np.ndarray]) -> LassoProblem:
    """The lasso problem of the experiment: its dictionaries (loaded, cached or learned, one per
    source) at the configured alphas, in the run's dtype."""
    c, path = run.config, run.path("dictionary.npz")
    keys = tuple(f"A{i}" for i in range(len(c.dictionary.n_atoms)))
    if c.dictionary.path:
        src = load_npz(c.dictionary.path)
        dicts = [src[k] for k in keys] if set(keys) <= set(src) else list(src.values())
        save_npz(path, **{f"A{i}": A for i, A in enumerate(dicts)})
    elif path.exists():
        f = load_step(path, keys)
        dicts = [f[k] for k in keys]
        run.log(f"[dictionary] cached: {' + '.join(str(A.shape[-1]) for A in dicts)} atoms ({path.name})")
    else:
        sources = [arrays["Y_dict"]] if c.data.kind == "patches" else list(arrays["C_train_dict"])
        dicts = []
        for i, (signals, n_atoms, alpha) in enumerate(zip(sources, c.dictionary.n_atoms, c.dictionary.alphas)):
            run.log(f"[dictionary] learning {n_atoms} atoms on {len(signals)} signals of source {i} (alpha={alpha})")
            t0 = time.perf_counter()
            A = learn_dictionary(torch.from_numpy(signals).to(run.device), n_atoms=n_atoms, alpha=alpha,
                                 n_epochs=c.dictionary.epochs, batch_size=c.dictionary.batch_size, seed=c.seed + i,
                                 progress=run.progress)
            dicts.append(A.cpu().numpy())
            run.log(f"[dictionary] source {i}: done in {time.perf_counter() - t0:.1f} s")
        save_npz(path, **{f"A{i}": A for i, A in enumerate(dicts)})
    try:
        return LassoProblem.from_dictionaries([torch.from_numpy(A).to(run.device, run.dtype) for A in dicts],
                                              alphas=c.dictionary.alphas)
    except LsalsaError as exc:  # a cached file of the wrong shape or dtype, or holding NaN
        raise LsalsaError(f"{path}: {exc}; {RECOMPUTE}") from None


# ---- step 3: optimal codes -----------------------------------------------------------------
def step_codes(run: RunContext, problem: LassoProblem, arrays: dict[str, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, dict[str, dict]]:
    """Optimal codes ``X*`` of the training and test signals, cached in ``codes/``, and what
    their computation reported per split (the cache's description: ``all_converged``,
    ``max_kkt_violation``, ...).

    Inside :func:`lsalsa.distributed.use_cluster` (``lsalsa codes ... --scheduler/--workers``)
    they are computed on that Dask cluster, into the same cache entries.

    Codes that did not all converge stop the run unless ``codes.allow_unconverged``: encoders
    trained on them would learn the solver's shortfall, and the report would score against it."""
    c, out, facts = run.config, {}, {}
    cluster = active_cluster()
    where = f"on {run.device}" if cluster is None else f"on {cluster.describe()}"
    for split in ("train", "test"):
        name = f"{c.name}-{split}"
        before = entries(run.path("codes"), name)  # an entry of another key (other settings) is no hit
        what = f"optimal codes ({c.codes.solver}, tol={c.codes.tol:g}) {where}"
        if not before:
            run.log(f"[codes] {split} signals: computing {what}")
        t0 = time.perf_counter()
        options = dict(solver=c.codes.solver, tol=c.codes.tol, max_iter=c.codes.max_iter, mu=c.codes.mu,
                       cache_dir=run.path("codes"), dataset_name=name, progress=run.progress)
        if cluster is None:
            X = optimal_codes(problem, arrays[f"Y_{split}"], **options)
        else:
            X = cached_codes(problem, arrays[f"Y_{split}"], client=cluster.client, chunk_rows=cluster.chunk_rows,
                             **options)
        meta_path = Path(X.filename).with_suffix(".json")
        facts[split] = read_step_json(meta_path, lambda v: isinstance(v, dict), "a description of codes")
        if Path(X.filename).resolve() in before:
            run.log(f"[codes] {split} signals: cached ({Path(X.filename).name})")
        else:
            resumed = facts[split].get("batches_resumed", 0)
            run.log(f"[codes] {split} signals: {len(X)} {what} in {time.perf_counter() - t0:.1f} s"
                    + (" (the cached ones were of other settings)" if before else "")
                    + (f" ({resumed} batch(es) kept from an interrupted run)" if resumed else ""))
        out[split] = X
        if not facts[split].get("all_converged", True):
            f = facts[split]
            msg = (f"[codes] the optimal codes of the {split} signals did not all converge within codes.max_iter="
                   f"{c.codes.max_iter} (largest KKT violation {f.get('max_kkt_violation', float('nan')):.3g})")
            if not c.codes.allow_unconverged:
                raise LsalsaError(f"{msg}; raise codes.max_iter or codes.tol, or go on with them: "
                                  f"--set codes.allow_unconverged=true")
            run.log(f"{msg}; going on (codes.allow_unconverged)")
    return out["train"], out["test"], facts


# ---- step 5: whole-picture separation ----------------------------------------------------------
SOURCE_NAMES = ("digits", "photo")
SEPARATION_NUMBERS = ("time_s", "psnr_digits", "psnr_photo")


def separation_model(c: ExperimentConfig, problem: LassoProblem, row: dict, model: torch.nn.Module | None = None
                     ) -> SeparationModel:
    """The model file of one method at one T: searched alphas, encoder or solver (with its mu),
    and the pixel scale of the training mixtures (digit + photo in [0, 2], stored as a picture at
    half)."""
    solver = model is None
    return SeparationModel(with_params(problem, row), row["method"], c.data.patch_size, input_scale=2.0,
                           names=SOURCE_NAMES, encoder=model, n_iter=row["T"] if solver else None,
                           mu=row.get("mu") if solver else None, info={"experiment": c.name, "T": row["T"]})


def _load_model(run: RunContext, method: str, T: int) -> torch.nn.Module:
    try:
        return load_encoder(run.path("models", f"{method}_T{T}.pt"), device=run.device).eval()
    except LsalsaError as exc:
        raise step_file_hint(exc) from None


def _separate_row(run: RunContext, problem: LassoProblem, row: dict, mixture: np.ndarray, truth: np.ndarray,
                  stride: int | None) -> dict:
    """Separate the picture with one method at one T; writes its figures (and model file)."""
    method, T = row["method"], row["T"]
    model = _load_model(run, method, T) if get_method(method).learned else None
    bundle = separation_model(run.config, problem, row, model)
    if model is not None:
        save_model(bundle, run.path("models", f"{method}_T{T}.model"))
    picture = mixture / 2.0
    separate_image(picture, bundle, stride=stride)  # warm-up
    t0 = time.perf_counter()
    sep = separate_image(picture, bundle, stride=stride)
    elapsed = time.perf_counter() - t0
    res = {"method": method, "T": T, "time_s": elapsed,
           **{f"psnr_{name}": psnr(est, t) for name, est, t in zip(SOURCE_NAMES, sep.sources, truth)},
           "psnr_mixture": psnr(sep.reconstruction, mixture, data_range=2.0)}
    save_separation(sep, run.path("separation", f"{method}_T{T}"), truth=truth,
                    title=f"{method.upper()} T={T}: PSNR digits {res['psnr_digits']:.1f} dB, photo {res['psnr_photo']:.1f} dB")
    return res


def separates_picture(c: ExperimentConfig) -> bool:
    """Whether the mixture experiment ``c`` ends with the whole-picture step (digits over a photo:
    two sources, MNIST the first)."""
    return c.data.kind == "mixture" and len(c.data.sources) == 2 and c.data.sources[0] == "mnist"


def step_separate(run: RunContext, problem: LassoProblem, rows: list[dict]) -> list[dict]:
    """Every method and T separates one picture of MNIST test digits over a held-out photo."""
    c, path = run.config, run.path("results", "separation.json")
    if path.exists():
        return read_step_json(path, lambda v: is_rows(v, SEPARATION_NUMBERS), "separation results")
    sep_cfg = c.separation
    mixture, truth = lsdata.digits_over_photo(sep_cfg.photo, sep_cfg.size, cell=c.data.patch_size, seed=c.seed,
                                              data_dir=c.data.data_dir or None)
    write_image(mixture / 2.0, run.path("separation", "mixture.png"))
    for name, t in zip(SOURCE_NAMES, truth):
        write_image(t, run.path("separation", f"true_{name}.png"))
    run.log(f"[separate] {sep_cfg.size}x{sep_cfg.size} picture: MNIST test digits over held-out photo {sep_cfg.photo!r}")
    results = [_separate_row(run, problem, row, mixture, truth, sep_cfg.stride or None) for row in rows]
    write_json(path, results)
    return results


# ---- the whole run -----------------------------------------------------------------------------
def read_run_config(path: Path, fix: str) -> ExperimentConfig:
    """The config a run directory's ``config.json`` holds; one line naming the file and ending
    with ``fix`` when it cannot be read or is not a config."""
    try:
        raw = read_json(path)
    except LsalsaError as exc:
        raise LsalsaError(f"{exc}; {fix}") from None
    if not isinstance(raw, dict):
        raise LsalsaError(f"{path}: does not hold a config (a JSON table); {fix}")
    try:
        return config_from_dict(raw)
    except LsalsaError as exc:
        raise LsalsaError(f"{path}: not a config this lsalsa reads ({exc}); {fix}") from None


def _claim(run: RunContext) -> None:
    """Write the config into a new run directory, or check that an existing one holds this run.

    The saved config is read back through :func:`config_from_dict`, so a run written before a
    config key existed (it takes its default) still resumes; keys that do not change what is
    computed (:data:`lsalsa.experiments.config.NOT_IDENTITY`: the device, accepting unconverged
    codes) may differ."""
    path = run.path("config.json")
    if not path.exists():
        write_json(path, run.config.to_dict())
        return
    saved = read_run_config(path, "delete it to go on with this config in this directory (its cached steps are "
                                  "reused), or use another --out directory")
    if saved.identity() != run.config.identity():
        raise LsalsaError(f"{run.run_dir}: holds a run of a different configuration; use another --out directory")


def _open_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise LsalsaError(f"--out: {run_dir} is a file, not a run directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LsalsaError(f"--out: cannot create the run directory {run_dir} ({exc.strerror})") from None


def run_experiment(c: ExperimentConfig, run_dir: str | os.PathLike, *, until: str = "report",
                   progress: bool = False, log: Log = silent) -> list[dict]:
    """Run (or resume) the experiment ``c`` in ``run_dir`` up to and including step ``until``,
    on the config's ``device``, holding the run directory's lock.

    Returns the result rows (empty before the ``methods`` step).
    """
    if until not in STEPS:
        raise LsalsaError(f"until: expected one of {list(STEPS)}, got {until!r}")
    run = RunContext(c, Path(run_dir), log, progress, resolve_device(c.device))
    ranks = join(run.device) if launched() else None
    if ranks is not None and ranks.rank > 0:  # rank 0 holds the lock and writes; this rank trains with it
        return _steps(replace(run, log=silent, progress=False), min(STEPS.index(until), STEPS.index("methods")), ranks)
    _open_run_dir(run.run_dir)
    with directory_lock(run.run_dir):
        removed = remove_temporaries(run.run_dir, recursive=True)
        if removed:
            log(f"[run] removed {len(removed)} temporary file(s) left by an interrupted run")
        _claim(run)
        return _steps(run, STEPS.index(until), ranks)


def _steps(run: RunContext, stop: int, ranks: Ranks | None = None) -> list[dict]:
    """The steps of the run up to the step of index ``stop``; the result rows (rank 0's)."""
    with rank0_first(ranks):  # under torchrun the other ranks then read what rank 0 cached
        arrays = step_data(run)
        if stop < 1:
            return []
        problem = step_dictionary(run, arrays)
        if stop < 2:
            return []
        X_train, X_test, codes_facts = step_codes(run, problem, arrays)
    if stop < 3:
        return []
    rows = step_methods(run, problem, arrays, X_train, X_test)
    if stop < 4:
        return rows
    separation = None
    if run.config.data.kind == "mixture":
        if separates_picture(run.config):
            separation = step_separate(run, problem, rows)
        else:
            run.log(f"[separate] skipped: the whole-picture step lays MNIST digits over a photo, for a mixture of "
                    f"mnist and one other source (this one: {', '.join(run.config.data.sources)})")
    if stop >= 5:
        from .report import write_report

        write_report(run, problem, rows, arrays, X_test, separation=separation, codes_facts=codes_facts)
    return rows
