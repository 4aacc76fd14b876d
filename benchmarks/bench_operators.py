"""Solver operators prepared once (issue 21, item 3): truncated SALSA and FISTA with the
operators formed in every call (``salsa(problem, Y, mu, n_iter=T)``) against prepared once
(``operators=lsalsa.prepare_solver(problem, "salsa", mu=mu)``), with untrained LSALSA(T)'s
``encode`` (the same products) alongside, at M = 1024, N = 2048, B = 500, T = 1 and 10.

Every round times each variant once, in turn, so load from other processes falls on all alike;
the figures are the median and the spread (min, max) over the rounds, with the load average
before and after. Preparing (``prepare_solver``) is timed on a problem without cached Gram
matrix or Lipschitz constant, what a first call pays. Results: ``results/operators.json``.

    .venv/bin/python benchmarks/bench_operators.py [--rounds 9] [--dtype float32] [--quick]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import lsalsa
from _common import machine
from lsalsa.files import write_json
from lsalsa.solvers import SalsaOperators
from lsalsa.solvers._common import check_prepared

MU = 1.0
RESULTS = Path(__file__).with_name("results") / "operators.json"


def problem_and_signals(M: int, N: int, B: int, dtype: torch.dtype):
    """A unit-norm random dictionary ``(M, N)`` (alpha 0.15) and ``Y: (B, M)`` of 10%-sparse codes."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(M, N, generator=g, dtype=torch.float64)
    A /= torch.linalg.vector_norm(A, dim=0)
    X = torch.randn(B, N, generator=g, dtype=torch.float64) * (torch.rand(B, N, generator=g) < 0.1)
    Y = X @ A.T + 0.01 * torch.randn(B, M, generator=g, dtype=torch.float64)
    return lsalsa.LassoProblem(A.to(dtype), alphas=0.15), Y.to(dtype)


def variants(problem, Y, T: int) -> dict:
    """The calls timed at one T: fresh and prepared SALSA and FISTA, LSALSA's encode."""
    salsa_ops = lsalsa.prepare_solver(problem, "salsa", mu=MU)
    fista_ops = lsalsa.prepare_solver(problem, "fista")
    encoder = lsalsa.LSALSA.from_problem(problem, T, mu=MU).eval()
    return {
        "salsa_fresh": lambda: lsalsa.salsa(problem, Y, mu=MU, n_iter=T),
        "salsa_prepared": lambda: lsalsa.salsa(problem, Y, mu=MU, n_iter=T, operators=salsa_ops),
        "fista_fresh": lambda: lsalsa.fista(problem, Y, n_iter=T),
        "fista_prepared": lambda: lsalsa.fista(problem, Y, n_iter=T, operators=fista_ops),
        "lsalsa_encode": lambda: encoder.encode(Y),
    }


def setup_variants(problem) -> dict:
    """Preparing the operators on a problem whose Gram matrix and L are not cached yet, and the
    check every call with prepared operators makes (their copy of A against the problem's)."""
    ops = lsalsa.prepare_solver(problem, "salsa", mu=MU)
    return {
        "prepare_salsa": lambda: lsalsa.prepare_solver(lsalsa.LassoProblem(problem.A, 0.15), "salsa", mu=MU),
        "prepare_fista": lambda: lsalsa.prepare_solver(lsalsa.LassoProblem(problem.A, 0.15), "fista"),
        "check_prepared": lambda: check_prepared(ops, SalsaOperators, problem),
    }


def interleaved_rounds(fns: dict, rounds: int) -> dict:
    """``{name: {"median_s", "min_s", "max_s", "times_s"}}``: one call of each per round, in turn."""
    for fn in fns.values():  # warm-up
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "times_s": t}
            for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--quick", action="store_true", help="M = 256, N = 512, B = 100, 3 rounds (a smoke run)")
    args = parser.parse_args()
    M, N, B = (256, 512, 100) if args.quick else (1024, 2048, 500)
    rounds = 3 if args.quick else args.rounds
    problem, Y = problem_and_signals(M, N, B, getattr(torch, args.dtype))
    load_before = os.getloadavg()
    out = {"machine": machine(), "shape": {"M": M, "N": N, "B": B}, "dtype": args.dtype, "mu": MU,
           "rounds": rounds, "load_before": load_before, "by_T": {}}
    with torch.inference_mode():
        out["setup"] = interleaved_rounds(setup_variants(problem), rounds)
        for T in (1, 10):
            res = interleaved_rounds(variants(problem, Y, T), rounds)
            for solver in ("salsa", "fista"):
                res[f"{solver}_speedup"] = res[f"{solver}_fresh"]["median_s"] / res[f"{solver}_prepared"]["median_s"]
            res["salsa_prepared_vs_lsalsa"] = res["salsa_prepared"]["median_s"] / res["lsalsa_encode"]["median_s"]
            out["by_T"][str(T)] = res
            print(f"T={T}: " + ", ".join(f"{k} {v['median_s'] * 1e3:.1f} ms [{v['min_s'] * 1e3:.1f}, "
                                         f"{v['max_s'] * 1e3:.1f}]" if isinstance(v, dict) else f"{k} {v:.2f}x"
                                         for k, v in res.items()), flush=True)
    out["load_after"] = os.getloadavg()
    print("setup: " + ", ".join(f"{k} {v['median_s'] * 1e3:.1f} ms [{v['min_s'] * 1e3:.1f}, {v['max_s'] * 1e3:.1f}]"
                                for k, v in out["setup"].items()))
    print(f"load average before {load_before}, after {out['load_after']}")
    if not args.quick:
        write_json(RESULTS, out)


if __name__ == "__main__":
    main()
