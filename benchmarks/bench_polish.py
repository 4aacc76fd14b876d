"""SALSA run to convergence with and without the exact finish on the support (``polish``).

The problems of ``bench_solvers.py``: patch10 (MNIST 10x10 patches, a learned 100-atom
dictionary, B = 10,000) and mca32 (32x32 digit + photo mixtures, two learned 1024-atom
dictionaries, B = 200). mu is auto's pick, computed once and given to every run; relaxation 1.8
(the default when converging); rows stop on their own. For each tol, ``salsa(..., polish=False)``
and ``polish=True``: median time, the longest row's iterations, the relative objective gap to
``F*`` (SPAMS' exact LARS when installed, else a long float64 SALSA run) and the largest KKT
violation in units of alpha (float64). This is the measurement behind ``polish=None``'s rule
(polish on a CPU up to 256 atoms, where a compiled loop tries every running row with active-set
corrections, and from 512 atoms, where batched LAPACK tries rows whose signs held). A polished
call on 64 rows first loads the compiled loop (untimed); the times are the median of 3 runs on
patch10 and one run on mca32.

    .venv/bin/python benchmarks/bench_polish.py [--quick] [--no-readme]
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
from bench_solvers import mca32_problem, patch10_problem, spams, spams_codes  # noqa: E402


def f_star(problem64, Y64):
    if spams is not None:
        X = torch.from_numpy(spams_codes(problem64, Y64))
    else:
        X = lsalsa.salsa(problem64, Y64, tol=1e-11, max_iter=20_000, polish=True).X
    return float(problem64.objective(X, Y64).mean())


def bench(name, problem, Y, tols, repeats):
    problem64, Y64 = problem.to(dtype=torch.float64), torch.from_numpy(np.asarray(Y, dtype=np.float64))
    problem32, Y32 = problem.to(dtype=torch.float32), Y64.float()
    problem32.gram  # formed once, outside the timed runs (a cached property)
    F = f_star(problem64, Y64)
    mu = lsalsa.solvers.auto_mu(problem32, Y32)
    alpha = float(problem64.alphas.min())
    lsalsa.salsa(problem32, Y32[:64], mu=mu, polish=True)  # loads the compiled loop, once per process
    rows = []
    for tol in tols:
        for polish in (False, True):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                res = lsalsa.salsa(problem32, Y32, mu=mu, tol=tol, max_iter=5000, polish=polish)
                times.append(time.perf_counter() - start)
            t = float(np.median(times))
            gap = (float(problem64.objective(res.X.double(), Y64).mean()) - F) / F
            kkt = float(problem64.kkt_violation(res.X.double(), Y64).max()) / alpha
            rows.append([name, f"{tol:g}", polish, res.n_iter, f"{t:.3f}", f"{t / Y32.shape[0] * 1e6:.1f}", f"{gap:.1e}", f"{kkt:.1e}"])
            print(markdown_table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    return rows, mu


HEADER = ["problem", "tol", "polish", "iters (longest row)", "time [s]", "us/signal", "gap", "max KKT violation / alpha"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches (a smoke run)")
    parser.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    n10, n32 = (1000, 20) if args.quick else (10_000, 200)
    rows, mus = [], []
    for name, make, n, tols, reps in (("patch10 (M=100, N=100)", patch10_problem, n10, (1e-4, 1e-6), 3),
                                      ("mca32 (M=1024, N=2048)", mca32_problem, n32, (1e-4, 1e-6), 1)):
        problem, Y = make(n)
        r, mu = bench(name, problem, Y, tols, reps)
        rows += r
        mus.append(f"{name.split()[0]} {mu:.3g}")
    table = markdown_table(HEADER, rows)
    print(table)
    body = "\n\n".join([
        "## The exact finish on the support (`bench_polish.py`)",
        f"Command: `.venv/bin/python benchmarks/bench_polish.py{' --quick' if args.quick else ''}`  ",
        f"Machine: {machine()}  ",
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t0:.0f} s; mu (auto's pick, given): {', '.join(mus)}; "
        "F* from " + ("SPAMS' LARS (exact)." if spams is not None else "a long float64 SALSA run."),
        __doc__.split("\n\n")[1],
        table,
    ])
    if not args.no_readme:
        write_section("bench_polish", body)


if __name__ == "__main__":
    main()
