"""How lsalsa's SALSA scales with the batch size B and the code length N (real data).

B-scaling (N = M = 100, the patch10 problem of ``bench_solvers.py``: MNIST 10x10 patches, a
learned 100-atom dictionary, alpha = 0.15): optimal codes for B signals with the defaults,
``salsa(problem, Y, tol=1e-6)`` (mu="auto", over-relaxed, each row stopping on its own at a
check every 10 iterations, polished there: the CPU default up to 256 atoms; "iters" is the
longest row's), float32, time per signal; the same with mu fixed beforehand (the trial that
picks mu excluded: what coding many small batches costs once mu is known); scikit-learn's lasso_cd
(``sparse_encode``, float64, n_jobs=2 from B = 1000 on) for B <= 10,000.

N-scaling (M = 1024, 32x32 MNIST + natural-photo mixtures as in ``bench_solvers.py``'s mca32,
dictionaries cut from or tiled out of its two learned 1024-atom dictionaries: N = 128..1024
first atoms of the digit dictionary, 2048 both, 4096 both twice, each copy scaled by
1.01^i so no two atoms coincide): one SALSA iteration's time per signal at B = 200 and the
GEMM rate it reaches (2 N^2 flops per signal), and the one-off set-up (S by Cholesky or
Woodbury; the auto-mu trial).

    .venv/bin/python benchmarks/bench_scaling.py [--quick] [--no-readme]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import sparse_encode

sys.path.insert(0, str(Path(__file__).parent))
import lsalsa  # noqa: E402
from _common import machine, markdown_table, median_time, write_section  # noqa: E402
from bench_solvers import mca32_problem, patch10_problem  # noqa: E402
from lsalsa.solvers import auto_mu  # noqa: E402


def b_scaling(sizes, repeats):
    problem, Y_all = patch10_problem(max(sizes))
    p32 = problem.to(dtype=torch.float32)
    Y_all = np.asarray(Y_all, dtype=np.float32)
    mu = auto_mu(p32, torch.from_numpy(Y_all[:10_000]))
    rows = []
    for B in sizes:
        Y = torch.from_numpy(Y_all[:B].copy())
        res = lsalsa.salsa(p32, Y, tol=1e-6)
        t_auto = median_time(lambda: lsalsa.salsa(p32, Y, tol=1e-6), repeats=repeats)
        t_fixed = median_time(lambda: lsalsa.salsa(p32, Y, mu=mu, tol=1e-6), repeats=repeats)
        if B <= 10_000:
            A = problem.A.double().numpy().T
            Y64 = Y.double().numpy()

            def cd():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # one job for small B: a process pool costs seconds to start
                    sparse_encode(Y64, A, algorithm="lasso_cd", alpha=0.15, n_jobs=2 if B >= 1000 else 1)
            t_cd = f"{median_time(cd, repeats=1, warmup=0) / B * 1e6:.1f}"
        else:
            t_cd = "-"
        rows.append([B, res.n_iter, f"{t_auto / B * 1e6:.1f}", f"{t_fixed / B * 1e6:.1f}", t_cd])
        print(markdown_table(["B", "iters", "us/signal (mu=auto)", "us/signal (mu given)", "lasso_cd us/signal"], rows[-1:]), flush=True)
    return rows, mu


def n_scaling(sizes, B, n_iter, repeats):
    problem, Y = mca32_problem(B)
    A1, A2 = (d.float() for d in problem.dictionaries())
    Y = torch.from_numpy(np.asarray(Y, dtype=np.float32))
    rows = []
    for N in sizes:
        if N <= A1.shape[1]:
            A = A1[:, :N]
        else:
            both = torch.cat([A1, A2], dim=1)
            A = torch.cat([both * 1.01 ** i for i in range(N // both.shape[1])], dim=1)
        p = lsalsa.LassoProblem(A / torch.linalg.vector_norm(A, dim=0), alphas=0.15)
        t_setup = median_time(lambda: lsalsa.solvers.salsa_operators(p, 1.0), repeats=repeats)
        t_auto = median_time(lambda: auto_mu(p, Y), repeats=1)
        t = median_time(lambda: lsalsa.salsa(p, Y, mu=1.0, n_iter=n_iter), repeats=repeats)
        per_iter = max(t - t_setup, 1e-12) / n_iter
        rows.append([N, p.n_features, B, f"{per_iter / B * 1e6:.2f}", f"{2 * N * N * B / per_iter / 1e9:.0f}",
                     f"{t_setup * 1e3:.0f}", f"{t_auto * 1e3:.0f}"])
        print(markdown_table(["N", "M", "B", "us/signal/iteration", "GFLOP/s", "set-up S [ms]", "auto-mu trial [ms]"], rows[-1:]), flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    if args.quick:
        b_sizes, n_sizes, nB, n_iter, reps = (1, 100, 1000), (128, 512, 2048), 50, 10, 1
    else:
        b_sizes, n_sizes, nB, n_iter, reps = (1, 100, 10_000, 100_000), (128, 256, 512, 1024, 2048, 4096), 200, 20, 3
    b_rows, mu = b_scaling(b_sizes, reps)
    n_rows = n_scaling(n_sizes, nB, n_iter, reps)
    b_head = ["B", "iters", "us/signal (mu=auto)", "us/signal (mu given)", "lasso_cd us/signal"]
    n_head = ["N", "M", "B", "us/signal/iteration", "GFLOP/s", "set-up S [ms]", "auto-mu trial [ms]"]
    body = "\n\n".join([
        "## Scaling with B and N (`bench_scaling.py`)",
        f"Command: `.venv/bin/python benchmarks/bench_scaling.py{' --quick' if args.quick else ''}`  ",
        f"Machine: {machine()}  ",
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t0:.0f} s.",
        __doc__.split("\n\n")[1], __doc__.split("\n\n")[2],
        f"Optimal codes vs B (N = 100; auto mu on 10,000 of the signals = {mu:.3g}):",
        markdown_table(b_head, b_rows),
        f"One SALSA iteration vs N (B = {nB}, float32, 2 threads, median of {reps}):",
        markdown_table(n_head, n_rows),
    ])
    print(f"done in {time.time() - t0:.0f} s")
    if not args.no_readme:
        write_section("bench_scaling", body)


if __name__ == "__main__":
    main()
