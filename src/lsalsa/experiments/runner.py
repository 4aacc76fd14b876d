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

Every step takes the :class:`RunContext` (config, run directory, logger, progress bars) and the
outputs of the steps before it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from .. import data as lsdata
from ..bundle import SeparationModel, save_model
from ..codes import optimal_codes
from ..dictionary import learn_dictionary
from ..encoders import load_encoder
from ..errors import LsalsaError
from ..evaluation import psnr
from ..files import load_npz, read_json, save_npz, write_json
from ..methods import get_method
from ..problem import LassoProblem
from ..separation import save_separation, separate_image, write_image
from .config import ExperimentConfig, config_from_dict
from .context import Log, RunContext, load_step, silent
from .evaluate import step_methods, with_params

STEPS = ("data", "dictionary", "codes", "methods", "separate", "report")


# ---- step 1: data --------------------------------------------------------------------------
def _patch_data(c: ExperimentConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    d = c.data
    data_dir = d.data_dir or None
    stride = d.stride or d.patch_size
    opts = dict(pad_to=d.pad_to or None)
    train_imgs, _ = lsdata.load_images(d.source, "train", data_dir)
    train, _ = lsdata.extract_patches(train_imgs, d.patch_size, stride, min_std=d.min_std or None, **opts)
    train = train[rng.permutation(len(train))]
    n_train, n_dict = c.scaled(d.n_train), c.scaled(d.n_dict)
    if len(train) < n_train:
        raise LsalsaError(f"data.n_train: {n_train} patches asked for, the source gives {len(train)}")
    test_imgs, test_labels = lsdata.load_images(d.source, "test", data_dir)
    n_test = c.scaled(d.n_test)
    if isinstance(test_imgs, list):  # photos of different sizes: a random sample of their patches
        if c.methods.classify:
            raise LsalsaError(f"methods.classify: source {d.source!r} has no per-image labels to classify; set it to false")
        test, image = lsdata.extract_patches(test_imgs, d.patch_size, stride, **opts)
        pick = np.sort(rng.permutation(len(test))[:n_test])
        return {"Y_train": train[:n_train], "Y_dict": train[-n_dict:], "Y_test": test[pick], "image": image[pick],
                "labels": np.zeros(0, dtype=np.int64)}
    # Test signals are all patches of whole test images (no std filter), so that each image's
    # codes can be concatenated for the classification probe (Section 6.1).
    order = rng.permutation(len(test_imgs))
    probe, _ = lsdata.extract_patches(test_imgs[order[:1]], d.patch_size, stride, **opts)
    chosen = order[: max(1, n_test // len(probe))]
    test, image = lsdata.extract_patches(test_imgs[chosen], d.patch_size, stride, **opts)
    return {"Y_train": train[:n_train], "Y_dict": train[-n_dict:], "Y_test": test, "image": image,
            "labels": test_labels[chosen].astype(np.int64)}


def _mixture_data(c: ExperimentConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    d = c.data
    seed = int(rng.integers(2**31))
    train = lsdata.mnist_natural("train", patch_size=d.patch_size, stride=d.stride or None,
                                 n_mixtures=c.scaled(d.n_train), seed=seed, data_dir=d.data_dir or None)
    test = lsdata.mnist_natural("test", patch_size=d.patch_size, stride=d.stride or None,
                                n_mixtures=c.scaled(d.n_test), seed=seed + 1, data_dir=d.data_dir or None)
    n_dict = min(c.scaled(d.n_dict), len(train))
    return {"Y_train": train.Y, "Y_test": test.Y, "C_train_dict": train.components[:, :n_dict],
            "C_test": test.components, "labels": test.labels[0].astype(np.int64)}


def step_data(run: RunContext) -> dict[str, np.ndarray]:
    """The signals of the experiment, floats in the run's dtype (built once, then read)."""
    c, path = run.config, run.path("data.npz")
    if path.exists():
        return load_step(path)
    run.log(f"[data] building {c.data.kind} signals from {c.data.source!r}")
    rng = np.random.default_rng(c.seed)
    arrays = _patch_data(c, rng) if c.data.kind == "patches" else _mixture_data(c, rng)
    arrays = {k: (v.astype(c.data.dtype) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
    save_npz(path, **arrays)
    run.log(f"[data] {len(arrays['Y_train'])} training and {len(arrays['Y_test'])} test signals of length "
            f"{arrays['Y_train'].shape[1]}")
    return arrays


# ---- step 2: dictionary ----------------------------------------------------------------------
def step_dictionary(run: RunContext, arrays: dict[str, np.ndarray]) -> LassoProblem:
    """The lasso problem of the experiment: its dictionaries (loaded, cached or learned, one per
    source) at the configured alphas, in the run's dtype."""
    c, path = run.config, run.path("dictionary.npz")
    if c.dictionary.path:
        src = load_npz(c.dictionary.path)
        dicts = [src[f"A{i}"] for i in range(len(c.dictionary.n_atoms))] if "A0" in src else list(src.values())
        save_npz(path, **{f"A{i}": A for i, A in enumerate(dicts)})
    elif path.exists():
        f = load_step(path)
        dicts = [f[f"A{i}"] for i in range(len(f))]
    else:
        sources = [arrays["Y_dict"]] if c.data.kind == "patches" else list(arrays["C_train_dict"])
        dicts = []
        for i, (signals, n_atoms, alpha) in enumerate(zip(sources, c.dictionary.n_atoms, c.dictionary.alphas)):
            run.log(f"[dictionary] learning {n_atoms} atoms on {len(signals)} signals of source {i} (alpha={alpha})")
            A = learn_dictionary(signals, n_atoms=n_atoms, alpha=alpha, n_epochs=c.dictionary.epochs,
                                 batch_size=c.dictionary.batch_size, seed=c.seed + i, progress=run.progress)
            dicts.append(A.cpu().numpy())
        save_npz(path, **{f"A{i}": A for i, A in enumerate(dicts)})
    return LassoProblem.from_dictionaries([torch.from_numpy(A).to(run.dtype) for A in dicts],
                                          alphas=c.dictionary.alphas)


# ---- step 3: optimal codes -----------------------------------------------------------------
def step_codes(run: RunContext, problem: LassoProblem, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Optimal codes ``X*`` of the training and test signals, cached in ``codes/``."""
    c, out = run.config, {}
    for split in ("train", "test"):
        run.log(f"[codes] optimal codes of the {split} signals ({c.codes.solver}, tol={c.codes.tol:g})")
        out[split] = optimal_codes(problem, arrays[f"Y_{split}"], solver=c.codes.solver, tol=c.codes.tol,
                                   max_iter=c.codes.max_iter, mu=c.codes.mu, cache_dir=run.path("codes"),
                                   dataset_name=f"{c.name}-{split}", progress=run.progress)
    return out["train"], out["test"]


# ---- step 5: whole-picture separation ----------------------------------------------------------
SOURCE_NAMES = ("digits", "photo")


def separation_model(c: ExperimentConfig, problem: LassoProblem, row: dict, model: torch.nn.Module | None = None
                     ) -> SeparationModel:
    """The model file of one method at one T: searched alphas, encoder or solver (with its mu),
    and the pixel scale of the training mixtures (digit + photo in [0, 2], stored as a picture at
    half)."""
    solver = model is None
    return SeparationModel(with_params(problem, row), row["method"], c.data.patch_size, input_scale=2.0,
                           names=SOURCE_NAMES, encoder=model, n_iter=row["T"] if solver else None,
                           mu=row.get("mu") if solver else None, info={"experiment": c.name, "T": row["T"]})


def _separate_row(run: RunContext, problem: LassoProblem, row: dict, mixture: np.ndarray, truth: np.ndarray,
                  stride: int | None) -> dict:
    """Separate the picture with one method at one T; writes its figures (and model file)."""
    method, T = row["method"], row["T"]
    model = load_encoder(run.path("models", f"{method}_T{T}.pt")) if get_method(method).learned else None
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


def step_separate(run: RunContext, problem: LassoProblem, rows: list[dict]) -> list[dict]:
    """Every method and T separates one picture of MNIST test digits over a held-out photo."""
    c, path = run.config, run.path("results", "separation.json")
    if path.exists():
        return read_json(path)
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
def _claim(run: RunContext) -> None:
    """Write the config into a new run directory, or check that an existing one holds this run.

    The saved config is read back through :func:`config_from_dict`, so a run written before a
    config key existed (it takes its default) still resumes."""
    path = run.path("config.json")
    ours = run.config.to_dict()
    if not path.exists():
        write_json(path, ours)
        return
    try:
        saved = config_from_dict(read_json(path)).to_dict()
    except LsalsaError as exc:
        if str(exc).startswith(str(path)):
            raise  # unreadable, not different
        saved = None
    if saved != ours:
        raise LsalsaError(f"{run.run_dir}: holds a run of a different configuration; use another --out directory")


def run_experiment(c: ExperimentConfig, run_dir: str | os.PathLike, *, until: str = "report",
                   progress: bool = False, log: Log = silent) -> list[dict]:
    """Run (or resume) the experiment ``c`` in ``run_dir`` up to and including step ``until``.

    Returns the result rows (empty before the ``methods`` step).
    """
    if until not in STEPS:
        raise LsalsaError(f"until: expected one of {list(STEPS)}, got {until!r}")
    run = RunContext(c, Path(run_dir), log, progress)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    _claim(run)
    stop = STEPS.index(until)
    arrays = step_data(run)
    if stop < 1:
        return []
    problem = step_dictionary(run, arrays)
    if stop < 2:
        return []
    X_train, X_test = step_codes(run, problem, arrays)
    if stop < 3:
        return []
    rows = step_methods(run, problem, arrays, X_train, X_test)
    if stop < 4:
        return rows
    separation = step_separate(run, problem, rows) if c.data.kind == "mixture" else None
    if stop >= 5:
        from .report import write_report

        write_report(run, problem, rows, arrays, X_test, separation=separation)
    return rows
