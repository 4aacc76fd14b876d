"""The end of step 4, ``methods``: every method's inference timed in interleaved rounds.

A method timed alone, right after its training, measures the machine at that moment: on a
shared machine another job can start between two methods and inflate one of them. Here every
(method, T) of the run, and the solver runs of the acceleration ("FISTA / SALSA need k
iterations to reach LSALSA at T = 1"), are timed together in ``methods.repeats`` rounds: one
untimed warm-up call each, then per round one timed call each, in an order rotated by one every
round so that no method always runs first (or right after the same neighbour). What each round
gives:

- per (method, T): ``time_s`` (median over rounds), ``time_min`` and ``time_max`` (the spread);
- ``time_ratio``: the median over rounds of the method's time divided by LSALSA's at the same T
  *in the same round* (a paired ratio: a slow round slows both), ``ratio_min`` / ``ratio_max``;
- ``load``: the largest 1-minute load average per core seen after a round (above 1, other work
  shared the cores).

Every solver runs with its operators prepared once (:func:`lsalsa.prepare_solver`), as the
encoders' weights are; the iteration counts of the acceleration are found outside the clock.
Written to ``results/timing.json`` (and into each result row, marked ``timed: interleaved``);
recomputed when the rows it timed are not the run's rows, or one of them was computed since.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from ..encoders import load_encoder
from ..errors import LsalsaError
from ..evaluation import solver_encode
from ..files import write_json
from ..methods import get_method
from ..metrics import code_rmse
from ..solvers import prepare_solver
from .context import RunContext, read_step_json, step_file_hint

MAX_SOLVER_ITERS = 1000
"""The most FISTA / SALSA iterations the acceleration tries before saying "not reached"."""

Encode = Callable[[torch.Tensor], torch.Tensor]


def key_of(method: str, T: int) -> str:
    return f"{method}_T{T}"


def load_per_core() -> float:
    """The 1-minute load average per core (NaN where the system does not say)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return float("nan")


def interleaved(encoders: dict[str, Encode], Y: torch.Tensor, rounds: int) -> tuple[dict[str, list[float]], float]:
    """Seconds of each ``encoders[key](Y)`` per round (``{key: [t_round0, ...]}``) after one
    warm-up call each, the order rotated by one per round; and the largest load per core seen
    after a round. CUDA work is synchronised before each clock read."""
    sync = torch.cuda.synchronize if Y.device.type == "cuda" else (lambda: None)
    keys = list(encoders)
    times: dict[str, list[float]] = {k: [] for k in keys}
    load = float("nan")
    with torch.inference_mode():
        for k in keys:
            encoders[k](Y)
        for r in range(rounds):
            for k in keys[r % len(keys):] + keys[:r % len(keys)]:
                sync()
                t0 = time.perf_counter()
                encoders[k](Y)
                sync()
                times[k].append(time.perf_counter() - t0)
            now = load_per_core()
            load = now if load != load else max(load, now)
    return times, load


def spread(times: list[float], reference: list[float] | None) -> dict[str, float]:
    """Median, min and max of ``times``; with ``reference`` (the same rounds), the paired ratio
    ``times[r] / reference[r]``: its median, min and max."""
    out = {"time_s": statistics.median(times), "time_min": min(times), "time_max": max(times)}
    if reference is not None:
        ratios = [t / ref for t, ref in zip(times, reference)]
        out.update(time_ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios))
    return out


def _row_encoder(run: RunContext, task: Any, row: dict) -> Encode:
    """The inference of a result row, as it was scored: a learned method's saved encoder, a
    solver's T iterations at its searched alpha and mu with operators prepared once."""
    from .evaluate import with_params  # evaluate imports this module

    m, T = get_method(row["method"]), row["T"]
    problem = with_params(task.problem, {"alpha_factor": row.get("alpha_factor", 1.0)})
    if m.learned:
        try:
            model = load_encoder(run.path("models", f"{m.name}_T{T}.pt"), device=problem.device).eval()
        except LsalsaError as exc:
            raise step_file_hint(exc) from None
        return m.encode_fn(problem, T, mu=None, model=model)
    mu = row.get("mu")
    return solver_encode(m, problem, T, prepare_solver(task.problem, m.name, **m.mu_keywords(mu)), mu=mu)


def _iterations_to_reach(problem: Any, name: str, mu: float, Y: torch.Tensor, X_star: torch.Tensor,
                         rmse: float) -> int | None:
    """The fewest iterations of solver ``name`` whose code RMSE against ``X_star`` is at most
    ``rmse`` (None: not within :data:`MAX_SOLVER_ITERS`); metrics outside any clock."""
    method, hit = get_method(name), {}

    def stop(k: int, X: torch.Tensor) -> bool:
        if code_rmse(X, X_star) <= rmse:
            hit["k"] = k
            return True
        return False

    with torch.inference_mode():
        method.solve(problem, Y, mu=mu, n_iter=MAX_SOLVER_ITERS, callback=stop)
    return hit.get("k")


def _acceleration_plan(run: RunContext, task: Any, rows: list[dict]) -> tuple[dict[str, Any], dict[str, Encode]]:
    """The acceleration's reference (LSALSA at the smallest T) and, per solver that reaches its
    error, the encoder of that many iterations at alpha*: FISTA, and SALSA at its best mu for
    this, the fewest iterations over ``search.mu`` and the mu searched at that T (the mu best
    for one iteration is often slow over many). ``iterations_by_mu`` keeps every count."""
    c = run.config
    ref = next((r for r in rows if r["method"] == "lsalsa" and r["T"] == min(c.methods.T)), None)
    if ref is None:
        return {}, {}
    searched = next((r.get("mu") for r in rows if r["method"] == "salsa" and r["T"] == ref["T"]), None) or c.methods.mu
    plan: dict[str, Any] = {"reference": {"method": "lsalsa", "T": ref["T"], "rmse": ref["rmse"]}}
    encoders: dict[str, Encode] = {}
    for name in ("fista", "salsa"):
        m = get_method(name)
        mus = list(dict.fromkeys([searched, *c.search.mu])) if name == "salsa" else [None]
        counts = {mu: _iterations_to_reach(task.problem, name, mu, task.Y_test, task.X_test, ref["rmse"]) for mu in mus}
        reached = {mu: k for mu, k in counts.items() if k is not None}
        if not reached:
            plan[name] = {"iterations": None, "note": f"not reached in {MAX_SOLVER_ITERS} iterations"}
            continue
        mu = min(reached, key=reached.__getitem__)
        plan[name] = {"iterations": reached[mu], **m.mu_keywords(mu)}
        if name == "salsa":
            plan[name]["iterations_by_mu"] = {f"{k:g}": v for k, v in counts.items()}
        operators = prepare_solver(task.problem, name, **m.mu_keywords(mu))
        encoders[f"acceleration_{name}"] = solver_encode(m, task.problem, reached[mu], operators, mu=mu)
    return plan, encoders


def is_acceleration(value: Any) -> bool:
    """Whether ``value`` is what :func:`step_timing` writes as the acceleration (as far as the report reads it)."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), dict):
        return False
    ref = value["reference"]
    if not isinstance(ref.get("T"), int) or not all(isinstance(ref.get(k), (int, float)) for k in ("rmse", "time_s")):
        return False
    for name in ("fista", "salsa"):
        a = value.get(name, {})
        if not isinstance(a, dict):
            return False
        if a.get("iterations") and not all(isinstance(a.get(k), (int, float)) for k in ("iterations", "time_s",
                                                                                         "time_ratio")):
            return False
    return True


def _is_timing(value: Any, keys: list[str]) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("rows"), dict) and sorted(value["rows"]) == sorted(keys)
            and all(isinstance(v, dict) and isinstance(v.get("time_s"), (int, float)) for v in value["rows"].values()))


def step_timing(run: RunContext, task: Any, rows: list[dict]) -> dict[str, Any]:
    """Time every row's inference in interleaved rounds and update the rows (and their JSON
    files) with what :mod:`this module <lsalsa.experiments.timing>` says; returns
    ``results/timing.json``'s content: ``rounds``, ``load`` and ``rows`` (per key the times and
    their spread); the acceleration goes to ``results/acceleration.json``. Cached while the
    run's rows are those it timed."""
    path, acc_path = run.path("results", "timing.json"), run.path("results", "acceleration.json")
    keys = [key_of(r["method"], r["T"]) for r in rows]
    if path.exists() and (acc_path.exists() or not any(r["method"] == "lsalsa" for r in rows)):
        saved = read_step_json(path, lambda v: isinstance(v, dict), "the interleaved timing")
        if _is_timing(saved, keys) and all(r.get("timed") == "interleaved" for r in rows):
            return saved  # a row computed since (not yet "timed") would have all timed again
    rounds = run.config.methods.repeats
    run.log(f"[timing] {len(rows)} method(s) x T in {rounds} interleaved rounds")
    plan, extra = _acceleration_plan(run, task, rows)
    encoders = {key_of(r["method"], r["T"]): _row_encoder(run, task, r) for r in rows} | extra
    times, load = interleaved(encoders, task.Y_test, rounds)
    out: dict[str, Any] = {"rounds": rounds, "order": "rotated by one per round", "load": load, "rows": {}}
    for r in rows:
        ref = times.get(key_of("lsalsa", r["T"])) if r["method"] != "lsalsa" else None
        out["rows"][key_of(r["method"], r["T"])] = {"times": times[key_of(r["method"], r["T"])],
                                                     **spread(times[key_of(r["method"], r["T"])], ref)}
    if plan:
        reference = times.get(key_of("lsalsa", plan["reference"]["T"]))
        plan["reference"].update(spread(reference, None))
        for name in ("fista", "salsa"):
            if plan[name]["iterations"] is not None:
                plan[name].update(times=times[f"acceleration_{name}"], **spread(times[f"acceleration_{name}"], reference))
    if plan:
        write_json(acc_path, plan)
    else:
        acc_path.unlink(missing_ok=True)
    write_json(path, out)
    _apply(run, rows, out)
    return out


def _apply(run: RunContext, rows: list[dict], timing: dict[str, Any]) -> None:
    """Write the timing's spread and load into every row and its ``results/<method>_T<T>.json``."""
    for r in rows:
        entry = {k: v for k, v in timing["rows"][key_of(r["method"], r["T"])].items() if k != "times"}
        new = {**r, **entry, "load": timing["load"], "timed": "interleaved"}
        if new != r:
            r.update(new)
            write_json(run.path("results", f"{key_of(r['method'], r['T'])}.json"), r)
