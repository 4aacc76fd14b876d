"""Run an experiment of the paper's Section 6 from a config, one cached step at a time.

Steps (each writes its outputs into the run directory and is skipped when they exist, so an
interrupted run picks up where it stopped):

1. ``data``: training / test signals (patches or mixtures), labels, image index -> ``data.npz``
2. ``dictionary``: one dictionary per source (Eq. 5, Remark 1) -> ``dictionary.npz``
3. ``codes``: optimal codes X* of the training and test signals -> ``codes/``
4. ``methods``: per method and T, a hyper-parameter search on a validation split, training of the
   learned encoders (Eq. 15) and evaluation on the test set -> ``results/<method>_T<T>.json|.npz``,
   ``models/<method>_T<T>.pt``
5. ``separate`` (mixture experiments only): a whole picture, MNIST test digits over a held-out
   photo, separated by every method and T with :func:`lsalsa.separate_image`; model files
   ``models/<method>_T<T>.model`` for ``lsalsa separate`` -> ``separation/``,
   ``results/separation.json``
6. ``report``: figures, ``results.csv``, ``report.md`` and ``report.html``
"""
from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import data as lsdata
from ..bundle import SeparationModel, save_model
from ..codes import optimal_codes
from ..dictionary import learn_dictionary
from ..encoders import ENCODERS, load_encoder, save_encoder
from ..errors import LsalsaError
from ..evaluation import CodeClassifier, evaluate_codes, image_features, per_sample_stats, psnr, time_encode
from ..metrics import code_rmse
from ..problem import LassoProblem
from ..separation import save_separation, separate_image, write_image
from ..solvers import SOLVERS
from ..train import TrainConfig, train_encoder
from .config import ExperimentConfig

STEPS = ("data", "dictionary", "codes", "methods", "separate", "report")
Log = Callable[[str], None]


def _atomic_save_npz(path: Path, **arrays: Any) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    os.replace(tmp, path)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise LsalsaError(f"{path}: cannot be read ({exc}); delete it to recompute the step") from None


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


def step_data(c: ExperimentConfig, run_dir: Path, log: Log) -> dict[str, np.ndarray]:
    path = run_dir / "data.npz"
    if path.exists():
        return _load_npz(path)
    log(f"[data] building {c.data.kind} signals from {c.data.source!r}")
    rng = np.random.default_rng(c.seed)
    arrays = _patch_data(c, rng) if c.data.kind == "patches" else _mixture_data(c, rng)
    arrays = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
    _atomic_save_npz(path, **arrays)
    log(f"[data] {len(arrays['Y_train'])} training and {len(arrays['Y_test'])} test signals of length {arrays['Y_train'].shape[1]}")
    return arrays


# ---- step 2: dictionary ----------------------------------------------------------------------
def step_dictionary(c: ExperimentConfig, run_dir: Path, arrays: dict, log: Log, progress: bool) -> list[np.ndarray]:
    path = run_dir / "dictionary.npz"
    if c.dictionary.path:
        src = _load_npz(Path(c.dictionary.path))
        dicts = [src[f"A{i}"] for i in range(len(c.dictionary.n_atoms))] if "A0" in src else [src[k] for k in src]
        _atomic_save_npz(path, **{f"A{i}": A for i, A in enumerate(dicts)})
        return dicts
    if path.exists():
        f = _load_npz(path)
        return [f[f"A{i}"] for i in range(len(f))]
    sources = [arrays["Y_dict"]] if c.data.kind == "patches" else list(arrays["C_train_dict"])
    dicts = []
    for i, (signals, n_atoms, alpha) in enumerate(zip(sources, c.dictionary.n_atoms, c.dictionary.alphas)):
        log(f"[dictionary] learning {n_atoms} atoms on {len(signals)} signals of source {i} (alpha={alpha})")
        A = learn_dictionary(signals, n_atoms=n_atoms, alpha=alpha, n_epochs=c.dictionary.epochs,
                             batch_size=c.dictionary.batch_size, seed=c.seed + i, progress=progress)
        dicts.append(A.cpu().numpy())
    _atomic_save_npz(path, **{f"A{i}": A for i, A in enumerate(dicts)})
    return dicts


# ---- step 3: optimal codes -----------------------------------------------------------------
def step_codes(c: ExperimentConfig, run_dir: Path, problem: LassoProblem, arrays: dict, log: Log, progress: bool):
    out = {}
    for split in ("train", "test"):
        log(f"[codes] optimal codes of the {split} signals ({c.codes.solver}, tol={c.codes.tol:g})")
        out[split] = optimal_codes(problem, arrays[f"Y_{split}"], solver=c.codes.solver, tol=c.codes.tol,
                                   max_iter=c.codes.max_iter, mu=c.codes.mu, cache_dir=run_dir / "codes",
                                   dataset_name=f"{c.name}-{split}", progress=progress)
    return out["train"], out["test"]


# ---- step 4: methods -------------------------------------------------------------------------
def _encoder_fn(method: str, problem: LassoProblem, T: int, params: dict, model=None):
    """A function ``Y -> X`` for the method at T with the given hyper-parameters."""
    if model is not None:
        return model.encode  # the inference path: what a user times
    solver = SOLVERS[method]
    kw = {"mu": params["mu"]} if method == "salsa" else {}
    return lambda Y: solver(problem, Y, n_iter=T, **kw).X


def _grid(c: ExperimentConfig, method: str) -> list[dict]:
    s = c.search
    mus = s.mu if method in ("salsa", "lsalsa") else [None]
    learned = method in ("lista", "lsalsa")
    lrs = s.lr_factors if learned else [None]
    decays = [d or c.train.lr_decay for d in s.lr_decays] if learned else [None]
    return [{"alpha_factor": a, "mu": m, "lr_factor": f, "lr_decay": d}
            for a, m, f, d in itertools.product(s.alpha_factors, mus, lrs, dict.fromkeys(decays))]


def _with_params(problem: LassoProblem, params: dict) -> LassoProblem:
    """The problem at the searched alphas (``alpha_factor`` times alpha*)."""
    return problem.with_alphas((problem.alphas * params["alpha_factor"]).tolist())


def _train(c, method, problem, T, params, Y, X, val, epochs, checkpoint=None, progress=False):
    p = _with_params(problem, params)
    enc = ENCODERS[method].from_problem(p, T, **({"mu": params["mu"]} if method == "lsalsa" else {}))
    base_lr = c.train.lr_lista if method == "lista" else c.train.lr_lsalsa
    cfg = TrainConfig(epochs=epochs, batch_size=c.train.batch_size, lr=base_lr * params["lr_factor"],
                      lr_decay=params["lr_decay"], optimizer=c.train.optimizer, rel_tol=c.train.rel_tol, seed=c.seed)
    history = train_encoder(enc, Y, X, cfg, val=val, checkpoint=checkpoint, resume=checkpoint is not None,
                            progress=progress)
    return enc, history


def _search(c, method, problem, T, Y_tr, X_tr, Y_val, X_val):
    """Best hyper-parameters for (method, T) by validation code RMSE (Supplement E)."""
    grid = _grid(c, method)
    if len(grid) == 1:
        return grid[0], None
    best, best_err = None, float("inf")
    for params in grid:
        try:
            if method in ENCODERS:
                enc, _ = _train(c, method, problem, T, params, Y_tr, X_tr, (Y_val, X_val), c.search.epochs)
                with torch.inference_mode():
                    err = code_rmse(enc(Y_val), X_val)
            else:
                err = code_rmse(_encoder_fn(method, _with_params(problem, params), T, params)(Y_val), X_val)
        except LsalsaError:  # a diverging trial is a bad setting, not a failed experiment
            err = float("inf")
        if err < best_err:
            best, best_err = params, err
    if best is None:
        raise LsalsaError(f"search: every setting diverged for {method} at T={T}; lower train.lr_{method}")
    return best, best_err


def step_methods(c, run_dir, problem, arrays, X_train, X_test, log, progress) -> list[dict]:
    res_dir, model_dir = run_dir / "results", run_dir / "models"
    res_dir.mkdir(exist_ok=True)
    model_dir.mkdir(exist_ok=True)
    dtype = problem.dtype
    Y_all = torch.from_numpy(np.asarray(arrays["Y_train"])).to(dtype)
    X_all = torch.from_numpy(np.array(X_train)).to(dtype)  # read the memmap once
    n_val = max(1, int(len(Y_all) * c.search.val_fraction))
    Y_tr, X_tr, Y_val, X_val = Y_all[:-n_val], X_all[:-n_val], Y_all[-n_val:], X_all[-n_val:]
    Y_test = torch.from_numpy(np.asarray(arrays["Y_test"])).to(dtype)
    X_star = torch.from_numpy(np.array(X_test)).to(dtype)
    components = [torch.from_numpy(comp).to(dtype) for comp in arrays["C_test"]] if "C_test" in arrays else None
    classifier, features = _classifier(c, problem, arrays, X_star)

    rows = []
    jobs = [(m, T) for T in c.methods.T for m in c.methods.names]
    for method, T in jobs:
        path = res_dir / f"{method}_T{T}.json"
        if path.exists():
            rows.append(json.loads(path.read_text()))
            continue
        log(f"[methods] {method} T={T}")
        params, val_err = _search(c, method, problem, T, Y_tr, X_tr, Y_val, X_val)
        p = _with_params(problem, params)
        model, history = None, None
        if method in ENCODERS:
            model_path = model_dir / f"{method}_T{T}.pt"
            if model_path.exists():
                model = load_encoder(model_path)
            else:
                model, history = _train(c, method, problem, T, params, Y_tr, X_tr, (Y_val, X_val), c.train.epochs,
                                        checkpoint=model_dir / f"{method}_T{T}.ckpt", progress=progress)
                save_encoder(model, model_path)
            model.eval()
        encode = _encoder_fn(method, p, T, params, model)
        X, time_s = time_encode(encode, Y_test, repeats=c.methods.repeats)
        X = X.clone()
        row = {"method": method, "T": T, "time_s": time_s, **evaluate_codes(problem, Y_test, X, X_star, components=components),
               **{k: v for k, v in params.items() if v is not None}}
        if val_err is not None:
            row["val_rmse"] = val_err
        if history is not None:
            row["epochs"] = len(history.epoch)
        if classifier is not None:
            row["class_error"] = classifier.error(features(X), arrays["labels"])
        sparsity, rmse = per_sample_stats(X, X_star)
        _atomic_save_npz(res_dir / f"{method}_T{T}.npz", sparsity=sparsity, rmse=rmse, X_head=X[:16].cpu().numpy())
        _atomic_write_json(path, row)
        rows.append(row)
    return rows


def _classifier(c, problem, arrays, X_star):
    """The probe trained on the optimal test codes, and the map from codes to its features."""
    if not c.methods.classify:
        return None, None
    labels = arrays["labels"]
    if c.data.kind == "patches":
        image = arrays["image"]
        n_images = len(labels)
        features = lambda X: image_features(X.cpu().numpy(), image, n_images)  # noqa: E731
    else:  # MCA: classify the digit component's codes x_1 (the digit labels)
        n1 = problem.dict_sizes[0]
        features = lambda X: X[:, :n1].cpu().numpy()  # noqa: E731
    clf = CodeClassifier(seed=c.seed).fit(features(X_star), labels)
    return clf, features


# ---- step 5: whole-picture separation ----------------------------------------------------------
SOURCE_NAMES = ("digits", "photo")


def separation_model(c: ExperimentConfig, problem: LassoProblem, row: dict, model=None) -> SeparationModel:
    """The model file of one method at one T: searched alphas, encoder or solver, and the pixel
    scale of the training mixtures (digit + photo in [0, 2], stored as a picture at half)."""
    p = _with_params(problem, row)
    return SeparationModel(p, row["method"], c.data.patch_size, input_scale=2.0, names=SOURCE_NAMES, encoder=model,
                           n_iter=None if model is not None else row["T"],
                           mu=row.get("mu") if row["method"] == "salsa" else None,
                           info={"experiment": c.name, "T": row["T"]})


def step_separate(c, run_dir, problem, rows, log, progress) -> list[dict]:
    path = run_dir / "results" / "separation.json"
    if path.exists():
        return json.loads(path.read_text())
    sep_cfg = c.separation
    mixture, truth = lsdata.digits_over_photo(sep_cfg.photo, sep_cfg.size, cell=c.data.patch_size, seed=c.seed,
                                              data_dir=c.data.data_dir or None)
    out = run_dir / "separation"
    write_image(mixture / 2.0, out / "mixture.png")
    for name, t in zip(SOURCE_NAMES, truth):
        write_image(t, out / f"true_{name}.png")
    stride = sep_cfg.stride or None
    log(f"[separate] {sep_cfg.size}x{sep_cfg.size} picture: MNIST test digits over held-out photo {sep_cfg.photo!r}")
    results = []
    for row in rows:
        method, T = row["method"], row["T"]
        model = load_encoder(run_dir / "models" / f"{method}_T{T}.pt") if method in ENCODERS else None
        bundle = separation_model(c, problem, row, model)
        if model is not None:
            save_model(bundle, run_dir / "models" / f"{method}_T{T}.model")
        picture = mixture / 2.0
        separate_image(picture, bundle, stride=stride)  # warm-up
        t0 = time.perf_counter()
        sep = separate_image(picture, bundle, stride=stride)
        elapsed = time.perf_counter() - t0
        res = {"method": method, "T": T, "time_s": elapsed,
               **{f"psnr_{name}": psnr(est, t) for name, est, t in zip(SOURCE_NAMES, sep.sources, truth)},
               "psnr_mixture": psnr(sep.reconstruction, mixture, data_range=2.0)}
        save_separation(sep, out / f"{method}_T{T}", truth=truth,
                        title=f"{method.upper()} T={T}: PSNR digits {res['psnr_digits']:.1f} dB, photo {res['psnr_photo']:.1f} dB")
        results.append(res)
    _atomic_write_json(path, results)
    return results


# ---- the whole run -----------------------------------------------------------------------------
def run_experiment(c: ExperimentConfig, run_dir: str | os.PathLike, *, until: str = "report",
                   progress: bool = False, log: Log = lambda s: None) -> list[dict]:
    """Run (or resume) the experiment ``c`` in ``run_dir`` up to and including step ``until``.

    Returns the result rows (empty before the ``methods`` step).
    """
    if until not in STEPS:
        raise LsalsaError(f"until: expected one of {list(STEPS)}, got {until!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "config.json"
    if cfg_path.exists():
        saved = json.loads(cfg_path.read_text())
        if saved != json.loads(json.dumps(c.to_dict())):
            raise LsalsaError(f"{run_dir}: holds a run of a different configuration; use another --out directory")
    else:
        _atomic_write_json(cfg_path, c.to_dict())
    stop = STEPS.index(until)
    arrays = step_data(c, run_dir, log)
    if stop < 1:
        return []
    dicts = step_dictionary(c, run_dir, arrays, log, progress)
    problem = LassoProblem.from_dictionaries([torch.from_numpy(A).float() for A in dicts], alphas=c.dictionary.alphas)
    if stop < 2:
        return []
    X_train, X_test = step_codes(c, run_dir, problem, arrays, log, progress)
    if stop < 3:
        return []
    rows = step_methods(c, run_dir, problem, arrays, X_train, X_test, log, progress)
    if stop < 4:
        return rows
    separation = step_separate(c, run_dir, problem, rows, log, progress) if c.data.kind == "mixture" else None
    if stop >= 5:
        from .report import write_report
        write_report(c, run_dir, problem, rows, arrays, X_test, log, separation=separation)
    return rows
