"""SALSA's automatic mu against every mu it chooses from, at a 1e-6 objective gap.

The problems of ``bench_solvers.py``: patch10 (MNIST 10x10 patches, a learned 100-atom
dictionary, B = 10,000) and mca32 (32x32 digit + photo mixtures, two learned 1024-atom
dictionaries; B = 50 here to keep the run short). For each mu of ``auto_mu``'s candidate grid
(``s 2^(j/2)``, j = -6..2, ``s = trace(A^T A) / N``) and the paper's mu = 10, plain (relaxation
1) and over-relaxed (1.8, the default when converging), we count the iterations until the mean
objective is within ``1e-6`` of ``F*`` (SPAMS' exact LARS when installed, else a long float64
SALSA run), checked every 5 iterations, float32, no polish. The ratio compares auto's pick
with the best of the grid.

    .venv/bin/python benchmarks/bench_auto_mu.py [--quick] [--no-readme]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import lsalsa  # noqa: E402
from _common import machine, markdown_table, write_section  # noqa: E402
from bench_polish import f_star  # noqa: E402
from bench_solvers import mca32_problem, patch10_problem  # noqa: E402

TARGET = 1e-6
FACTORS = tuple(2.0 ** (j / 2) for j in range(-6, 3))


def iterations(problem32, Y32, problem64, Y64, F, mu, relaxation, max_iter):
    hit = {}

    def cb(k, X):
        if k % 5 == 0 and (float(problem64.objective(X.double(), Y64).mean()) - F) / F <= TARGET:
            hit["k"] = k
            return True
        return False

    lsalsa.salsa(problem32, Y32, mu=mu, relaxation=relaxation, tol=1e-300, max_iter=max_iter, polish=False, callback=cb)
    return hit.get("k")


def bench(name, problem, Y, max_iter):
    problem64, Y64 = problem.to(dtype=torch.float64), torch.from_numpy(np.asarray(Y, dtype=np.float64))
    problem32, Y32 = problem.to(dtype=torch.float32), Y64.float()
    F = f_star(problem64, Y64)
    auto = lsalsa.solvers.auto_mu(problem32, Y32)
    scale = float(problem32.A.square().sum()) / problem32.n_atoms
    grid = [scale * f for f in FACTORS] + [10.0]
    counts = {rho: {} for rho in (1.0, 1.8)}
    rows = []
    for mu in grid:
        for rho in (1.0, 1.8):
            counts[rho][mu] = iterations(problem32, Y32, problem64, Y64, F, mu, rho, max_iter)
        mark = " (auto)" if _same(mu, auto) else ""
        rows.append([name, f"{mu:.3g}{mark}"] + [counts[rho][mu] or f">{max_iter}" for rho in (1.0, 1.8)])
        print(markdown_table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    summary = [name, f"{auto:.3g}"]
    for rho in (1.0, 1.8):
        done = {m: k for m, k in counts[rho].items() if k is not None}
        if not done:
            summary += [f"every mu > {max_iter}", "-"]
            continue
        best = min(done, key=done.get)
        k_auto = next((k for m, k in counts[rho].items() if _same(m, auto)), None)
        summary += [f"{k_auto or f'>{max_iter}'} vs {done[best]} (mu={best:.3g})", f"{k_auto / done[best]:.2f}x" if k_auto else "-"]
    return rows, summary


def _same(mu, auto):
    """Grid value and auto's pick agree up to float32 rounding of ``trace(A^T A)``."""
    return abs(mu - auto) <= 1e-4 * auto


HEADER = ["problem", "mu", "iterations, relaxation 1", "iterations, relaxation 1.8"]
SUMMARY = ["problem", "auto's mu", "plain: auto vs best", "ratio", "relaxed: auto vs best", "ratio"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches (a smoke run)")
    parser.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    n10, n32 = (1000, 10) if args.quick else (10_000, 50)
    rows, summaries = [], []
    for name, make, n, max_iter in (("patch10 (M=100, N=100)", patch10_problem, n10, 3000),
                                    ("mca32 (M=1024, N=2048)", mca32_problem, n32, 3000)):
        problem, Y = make(n)
        r, s = bench(f"{name}, B={len(Y)}", problem, Y, max_iter)
        rows += r
        summaries.append(s)
    print(markdown_table(SUMMARY, summaries))
    body = "\n\n".join([
        "## Automatic mu vs its grid (`bench_auto_mu.py`)",
        f"Command: `.venv/bin/python benchmarks/bench_auto_mu.py{' --quick' if args.quick else ''}`  ",
        f"Machine: {machine()}  ",
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t0:.0f} s.",
        __doc__.split("\n\n")[1],
        markdown_table(SUMMARY, summaries),
        markdown_table(HEADER, rows),
    ])
    if not args.no_readme:
        write_section("bench_auto_mu", body)


if __name__ == "__main__":
    main()
