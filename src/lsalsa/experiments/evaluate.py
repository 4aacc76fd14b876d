"""Step 4 of a run, ``methods``: every method at every T searched, trained and evaluated.

For one method at one T, :func:`evaluate_method` searches the hyper-parameter grid on a
validation split (Supplement E), trains a learned encoder with the best setting (Eq. 15, through
:func:`lsalsa.pipeline.fit_encoder`) or takes the solver, times its codes of the test signals and
scores them (Section 6). Each result is written as it is obtained, so a resumed run only
computes what is missing.

Under torchrun every rank runs this step: the learned methods' trainings (the search's and the
final one) are distributed over the ranks (:func:`lsalsa.train_encoder` joins the process group),
rank 0's search choice is used by all, and only rank 0 scores the methods and writes the rows
and models. Which rows are missing every rank reads from the run directory: rank 0 writes a
method's row only after the training all ranks take part in.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..encoders import load_encoder, save_encoder
from ..ddp import current, from_rank0, is_rank0
from ..errors import LsalsaError
from ..evaluation import evaluate_codes, per_sample_stats, solver_encode, time_encode, time_setup
from ..files import save_npz, write_json
from ..methods import get_method
from ..metrics import code_rmse
from ..pipeline import fit_encoder
from ..solvers import prepare_solver
from ..problem import LassoProblem
from ..train import TrainConfig, TrainHistory
from .classify import Probes, build_probes, summary_path
from .config import ExperimentConfig
from .context import RunContext, is_row, read_step_json, step_file_hint
from .timing import load_per_core, step_timing

ROW_NUMBERS = ("time_s", "rmse", "sparsity")  # what every result row holds, as the report reads it


@dataclass
class Task:
    """What every method is asked to do: code the signals of ``problem`` as its optimal codes.

    Tensors are in the problem's dtype; ``Y_<split>: (P, M)`` are signals and ``X_<split>: (P, N)``
    their optimal codes X*. The training part of the training signals trains the encoders, the
    validation part ranks the searched settings, the test signals score. ``components``: the true
    sources ``(P_test, M)`` of mixture experiments, else None; ``probe``: the classification
    errors of test codes per source (:mod:`lsalsa.experiments.classify`), None when the config
    does not classify.
    """

    problem: LassoProblem
    Y_train: torch.Tensor
    X_train: torch.Tensor
    Y_val: torch.Tensor
    X_val: torch.Tensor
    Y_test: torch.Tensor
    X_test: torch.Tensor
    components: list[torch.Tensor] | None
    probe: Probes | None


def _task(c: ExperimentConfig, problem: LassoProblem, arrays: dict[str, np.ndarray],
          X_train: np.ndarray, X_test: np.ndarray) -> Task:
    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a)).to(problem.device, problem.dtype)  # a copy: reads a memmap once

    X_star = tensor(X_test)
    components = [tensor(comp) for comp in arrays["C_test"]] if "C_test" in arrays else None
    return Task(problem, *validation_split(tensor(arrays["Y_train"]), tensor(X_train), c.search.val_fraction),
                tensor(arrays["Y_test"]), X_star, components, build_probes(c, problem, arrays, X_star))


def validation_split(Y: torch.Tensor, X: torch.Tensor, fraction: float) -> tuple[torch.Tensor, ...]:
    """``(Y_train, X_train, Y_val, X_val)``: the last ``fraction`` (at least one) of the training
    signals ``Y: (P, M)`` and their codes ``X: (P, N)`` validate."""
    n_val = max(1, int(len(Y) * fraction))
    return Y[:-n_val], X[:-n_val], Y[-n_val:], X[-n_val:]


# ---- hyper-parameters ---------------------------------------------------------------------------
SEARCHED = ("alpha_factor", "mu", "lr_factor", "lr_decay")
"""The searched settings of a trial, in the order a staged search tunes them."""


def _axes(c: ExperimentConfig, method: str) -> dict[str, list]:
    """The values searched per setting for ``method`` (``[None]`` where it has no such setting):
    alphas for all, mu for SALSA, learning-rate factors and decays for the learned methods.
    LSALSA's mu (``None``) is SALSA's best of ``search.mu`` at T, which :func:`fit_encoder`
    starts from (what the untrained LSALSA equals); with ``search.learned_mu`` each mu of
    ``search.mu`` is also tried by training, after that start."""
    s, m = c.search, get_method(method)
    mus = list(dict.fromkeys(s.mu)) if m.takes_mu else []
    if m.learned:
        mus = [None] + (mus if s.learned_mu else [])
    return {"alpha_factor": list(dict.fromkeys(s.alpha_factors)),
            "mu": mus or [None],
            "lr_factor": list(dict.fromkeys(s.lr_factors)) if m.learned else [None],
            "lr_decay": list(dict.fromkeys(s.lr_decays)) if m.learned else [None]}


def _grid(c: ExperimentConfig, method: str) -> list[dict[str, Any]]:
    """Every combination of :func:`_axes` (the exhaustive grid)."""
    axes = _axes(c, method)
    return [dict(zip(SEARCHED, values)) for values in itertools.product(*(axes[k] for k in SEARCHED))]


def with_params(problem: LassoProblem, params: dict[str, Any]) -> LassoProblem:
    """The problem at the searched alphas (``alpha_factor`` times alpha*)."""
    return problem.with_alphas((problem.alphas * params["alpha_factor"]).tolist())


def _train(run: RunContext, task: Task, method: str, T: int, params: dict[str, Any], epochs: int,
           checkpoint: Path | None = None) -> tuple[nn.Module, TrainHistory | None]:
    """A learned method's encoder trained at one searched setting: the rate ``lr_base`` (the
    range test's of an earlier trial at this alpha), else ``train.lr_<method>`` (0: the range
    test's), times ``lr_factor``; ``lr_decay`` 0 keeps the train section's schedule,
    another value is the per-epoch factor of an exponential schedule. With a ``checkpoint`` (the
    final training) it shows progress."""
    t = run.config.train
    lr = params.get("lr_base") or getattr(t, f"lr_{method}")
    schedule, decay = (t.schedule, t.lr_decay) if not params["lr_decay"] else ("exponential", params["lr_decay"])
    config = TrainConfig(epochs=epochs, batch_size=t.batch_size, lr=lr if lr > 0 else "auto",
                         lr_scale=params["lr_factor"], optimizer=t.optimizer, schedule=schedule, warmup=t.warmup,
                         lr_decay=decay if schedule == "exponential" else 1.0,
                         deep_supervision=t.deep_supervision, rel_tol=t.rel_tol, seed=run.config.seed,
                         lr_test_steps=t.lr_test_steps)
    return fit_encoder(with_params(task.problem, params), task.Y_train, task.X_train, n_layers=T, method=method,
                       val=(task.Y_val, task.X_val), config=config,
                       mu=run.config.search.mu if params["mu"] is None else params["mu"], layerwise=t.layerwise,
                       checkpoint=checkpoint, progress=run.progress and checkpoint is not None,
                       return_history=True, tied=t.tied, learn_thresholds=t.learn_thresholds or None)


def _staged(axes: dict[str, list], score: Callable[[dict[str, Any]], float]) -> dict[tuple, float]:
    """A search one setting at a time, in :data:`SEARCHED` order, each at the best values of the
    ones before it (starting at factor 1 where the grid has it, else the grid's first value).
    Returns the validation error of every setting tried, keyed by its values."""
    current = {k: (1.0 if 1.0 in v and k in ("alpha_factor", "lr_factor") else v[0]) for k, v in axes.items()}
    tried: dict[tuple, float] = {}
    for key in SEARCHED:
        stage = []
        for value in axes[key]:
            values = tuple({**current, key: value}[k] for k in SEARCHED)
            if values not in tried:
                tried[values] = score(dict(zip(SEARCHED, values)))
            stage.append(values)
        current = dict(zip(SEARCHED, min(stage, key=tried.__getitem__)))
    return tried


def _search(run: RunContext, method: str, task: Task, T: int) -> tuple[dict[str, Any], float | None]:
    """Best hyper-parameters for (method, T) by validation code RMSE (Supplement E), and that
    RMSE (None when there is one setting: nothing is searched). A solver tries the whole grid
    (a trial is T iterations); a learned method too under ``search.learned = "grid"``, else
    (``"staged"``) one setting at a time (:func:`_staged`): a trial is a training."""
    m, axes = get_method(method), _axes(run.config, method)
    grid = _grid(run.config, method)
    if len(grid) == 1:
        return grid[0], None
    prepared: dict[Any, Any] = {}  # a solver's operators per mu, shared by the searched alphas
    found: dict[tuple, float] = {}  # the range test's rate per (alpha factor, mu), shared by their trials

    def score(params: dict[str, Any]) -> float:
        try:
            if m.learned:
                start = (params["alpha_factor"], params["mu"])
                encode, history = _train(run, task, method, T, {**params, "lr_base": found.get(start)},
                                         run.config.search.epochs)
                if history is not None and history.lr_found is not None:
                    found[start] = history.lr_found
            else:
                mu = params["mu"]
                if mu not in prepared:
                    prepared[mu] = prepare_solver(task.problem, method, **m.mu_keywords(mu))
                encode = solver_encode(m, with_params(task.problem, params), T, prepared[mu], mu=mu)
            with torch.inference_mode():
                return code_rmse(encode(task.Y_val), task.X_val)
        except LsalsaError:  # a diverging trial is a bad setting, not a failed experiment
            return float("inf")

    if m.learned and run.config.search.learned == "staged":
        tried = _staged(axes, score)
    else:
        tried = {tuple(p[k] for k in SEARCHED): score(p) for p in grid}
    values = min(tried, key=tried.__getitem__)
    best, best_err = dict(zip(SEARCHED, values)), tried[values]
    if best_err == float("inf"):
        best = None
    elif (best["alpha_factor"], best["mu"]) in found:  # the final training skips the range test it already ran
        best["lr_base"] = found[best["alpha_factor"], best["mu"]]
    if m.learned:  # trained on every rank under torchrun: all take rank 0's choice
        best, best_err = from_rank0(lambda: (best, best_err), current())
    if best is None:
        raise LsalsaError(f"search: every setting diverged for {method} at T={T}; lower train.lr_{method}")
    return best, best_err


# ---- one method at one T ------------------------------------------------------------------------
def _is_search(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("params"), dict) and set(SEARCHED) <= set(value["params"])
            and (value.get("val_rmse") is None or isinstance(value["val_rmse"], (int, float))))


def _searched(run: RunContext, method: str, task: Task, T: int) -> tuple[dict[str, Any], float | None]:
    """:func:`_search`'s choice, cached in ``results/<method>_T<T>.search.json`` (written by rank
    0), so that a run resumed after the search, or re-scoring a method, does not search again."""
    path = run.path("results", f"{method}_T{T}.search.json")
    if path.exists():
        saved = read_step_json(path, _is_search, f"the search's choice for {method} at T={T}")
        return saved["params"], saved["val_rmse"]
    params, val_err = _search(run, method, task, T)
    if is_rank0():
        write_json(path, {"params": params, "val_rmse": val_err})
    return params, val_err


def _trained(run: RunContext, task: Task, method: str, T: int, params: dict[str, Any]
             ) -> tuple[nn.Module, TrainHistory | None]:
    """The encoder of ``models/<method>_T<T>.pt``, trained (from its checkpoint) unless saved."""
    path = run.path("models", f"{method}_T{T}.pt")
    if path.exists():
        try:
            return load_encoder(path, device=task.problem.device).eval(), None
        except LsalsaError as exc:
            raise step_file_hint(exc) from None
    model, history = _train(run, task, method, T, params, run.config.train.epochs,
                            checkpoint=run.path("models", f"{method}_T{T}.ckpt"))
    save_encoder(model, path)
    return model, history


def evaluate_method(run: RunContext, task: Task, method: str, T: int) -> dict[str, Any] | None:
    """Search, train (learned methods), time and score ``method`` at ``T``; writes
    ``results/<method>_T<T>.json`` (the row returned) and ``.npz`` (per-signal sparsity and RMSE,
    the first codes). None on the ranks other than 0 of a torchrun job."""
    m = get_method(method)
    params, val_err = _searched(run, method, task, T)
    model, history = _trained(run, task, method, T, params) if m.learned else (None, None)
    if not is_rank0():
        return None  # under torchrun, rank 0 scores and writes
    problem, mu, repeats, setup = with_params(task.problem, params), params["mu"], run.config.methods.repeats, {}
    if m.learned:
        encode = m.encode_fn(problem, T, mu=mu, model=model)
    else:  # the solver's operators prepared once: time_s times its iterations, setup_s the preparation
        operators, setup["setup_s"] = time_setup(m, problem, task.Y_test, mu=mu, repeats=repeats)
        encode = solver_encode(m, problem, T, operators, mu=mu)
    X, time_s = time_encode(encode, task.Y_test, repeats=1, warmup=0)  # timed properly by step_timing
    X = X.clone()  # out of inference mode
    row = {"method": method, "T": T, "time_s": time_s, **setup, "load": load_per_core(),
           **evaluate_codes(task.problem, task.Y_test, X, task.X_test, components=task.components),
           **{k: v for k, v in params.items() if v is not None}}
    if val_err is not None:
        row["val_rmse"] = val_err
    if model is not None and hasattr(model, "mu"):
        row["mu"] = model.mu  # LSALSA's penalty, SALSA's best of search.mu at T
    if history is not None:
        row["epochs"] = len(history.epoch)
        row["best_epoch"] = history.best_epoch
        row["lr_found"] = history.lr_found if history.lr_found is not None else params.get("lr_base")
        row["rollbacks"] = len(history.rollbacks)
    if task.probe is not None:
        row.update(task.probe(X))
    sparsity, rmse = per_sample_stats(X, task.X_test)
    per_source = {}  # the clouds of every source's codes apart (Fig. 6 and 20: ASIRRA's, MNIST's)
    if problem.n_dicts > 1:
        blocks = zip(torch.split(X, problem.dict_sizes, dim=1), torch.split(task.X_test, problem.dict_sizes, dim=1))
        for i, (X_i, X_star_i) in enumerate(blocks):
            per_source[f"sparsity_{i + 1}"], per_source[f"rmse_{i + 1}"] = per_sample_stats(X_i, X_star_i)
    save_npz(run.path("results", f"{method}_T{T}.npz"), sparsity=sparsity, rmse=rmse, X_head=X[:16].cpu().numpy(),
             **per_source)
    write_json(run.path("results", f"{method}_T{T}.json"), row)
    return row


def step_methods(run: RunContext, problem: LassoProblem, arrays: dict[str, np.ndarray],
                 X_train: np.ndarray, X_test: np.ndarray) -> list[dict[str, Any]]:
    """The result row of every method at every T (T-major order), computed where missing."""
    c = run.config
    run.path("models").mkdir(exist_ok=True)
    task = _task(c, problem, arrays, X_train, X_test)
    rows, cached = [], 0
    lead = is_rank0()
    if task.probe is not None and lead:
        write_json(summary_path(run), task.probe.summary())
    for T, method in itertools.product(c.methods.T, c.methods.names):
        if not (lead or get_method(method).learned):
            continue  # only rank 0 of a torchrun job evaluates a solver
        path = run.path("results", f"{method}_T{T}.json")
        if path.exists():
            if lead:
                rows.append(read_step_json(path, lambda v: is_row(v, ROW_NUMBERS) and (v["method"], v["T"]) == (method, T),
                                           f"the result row of {method} at T={T}"))
            cached += 1
            continue
        run.log(f"[methods] {method} T={T}")
        row = evaluate_method(run, task, method, T)
        if lead:
            rows.append(row)
    if lead and cached == len(rows):
        run.log(f"[methods] cached: {cached} result rows")
    if lead and rows:
        step_timing(run, task, rows)
    return rows
