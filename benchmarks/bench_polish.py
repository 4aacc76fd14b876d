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

import time

import numpy as np
import torch

import lsalsa
from _common import Table, argument_parser, section_head, write_section
from _problems import Case, f_star, mca32_problem, patch10_problem, spams

ROWS = Table(("problem", "problem"), ("tol", "tol", "{:g}"), ("polish", "polish"), ("iters", "iters (longest row)"),
             ("time", "time [s]", "{:.3f}"), ("us", "us/signal", "{:.1f}"), ("gap", "gap", "{:.1e}"),
             ("kkt", "max KKT violation / alpha", "{:.1e}"))


def bench(name, problem, Y, tols, repeats):
    """Rows for each tol, unpolished then polished, and auto's mu (given to every run)."""
    case = Case.of(problem, Y)
    p32, Y32 = case.problem32, case.Y32
    p32.gram  # formed once, outside the timed runs (a cached property)
    F = f_star(case)
    mu = lsalsa.solvers.auto_mu(p32, Y32)
    alpha = float(case.problem64.alphas.min())
    lsalsa.salsa(p32, Y32[:64], mu=mu, polish=True)  # loads the compiled loop, once per process
    rows = []
    for tol in tols:
        for polish in (False, True):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                res = lsalsa.salsa(p32, Y32, mu=mu, tol=tol, max_iter=5000, polish=polish)
                times.append(time.perf_counter() - start)
            t = float(np.median(times))
            kkt = float(case.problem64.kkt_violation(res.X.double(), case.Y64).max()) / alpha
            rows.append({"problem": name, "tol": tol, "polish": polish, "iters": res.n_iter, "time": t,
                         "us": t / case.n_signals * 1e6, "gap": case.relative_gap(res.X, F), "kkt": kkt})
            print(ROWS.line(rows[-1]), flush=True)
    return rows, mu


def main(argv=None):
    args = argument_parser(__doc__).parse_args(argv)
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
    table = ROWS.markdown(rows)
    print(table)
    body = "\n\n".join(section_head("The exact finish on the support", "bench_polish.py", " --quick" if args.quick else "") + [
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t0:.0f} s; mu (auto's pick, given): {', '.join(mus)}; "
        "F* from " + ("SPAMS' LARS (exact)." if spams is not None else "a long float64 SALSA run."),
        __doc__.split("\n\n")[1],
        table,
    ])
    if not args.no_readme:
        write_section("bench_polish", body)


if __name__ == "__main__":
    main()
