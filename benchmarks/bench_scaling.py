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

import time
import warnings

import numpy as np
import torch
from sklearn.decomposition import sparse_encode

import lsalsa
from _common import Table, argument_parser, median_time, section_head, write_section
from _problems import mca32_problem, patch10_problem
from lsalsa.solvers import auto_mu, salsa_operators

B_ROWS = Table(("B", "B"), ("iters", "iters"), ("auto", "us/signal (mu=auto)", "{:.1f}"),
               ("given", "us/signal (mu given)", "{:.1f}"), ("cd", "lasso_cd us/signal", "{:.1f}"))
N_ROWS = Table(("N", "N"), ("M", "M"), ("B", "B"), ("us", "us/signal/iteration", "{:.2f}"), ("gflops", "GFLOP/s", "{:.0f}"),
               ("setup_ms", "set-up S [ms]", "{:.0f}"), ("trial_ms", "auto-mu trial [ms]", "{:.0f}"))


def lasso_cd_seconds(problem, Y: torch.Tensor) -> float:
    """One call of scikit-learn's lasso_cd on ``Y: (B, M)`` (float64)."""
    A = problem.A.double().numpy().T
    Y64 = Y.double().numpy()
    B = Y.shape[0]

    def cd():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # one job for small B: a process pool costs seconds to start
            sparse_encode(Y64, A, algorithm="lasso_cd", alpha=0.15, n_jobs=2 if B >= 1000 else 1)

    return median_time(cd, repeats=1, warmup=0)


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
        t_cd = lasso_cd_seconds(problem, Y) / B * 1e6 if B <= 10_000 else None
        rows.append({"B": B, "iters": res.n_iter, "auto": t_auto / B * 1e6, "given": t_fixed / B * 1e6, "cd": t_cd})
        print(B_ROWS.markdown(rows[-1:]), flush=True)
    return rows, mu


def scaled_dictionary(A_digits, A_photos, N: int) -> torch.Tensor:
    """``(M, N)``: the first N digit atoms, or both dictionaries tiled (copy i scaled by 1.01^i)."""
    if N <= A_digits.shape[1]:
        return A_digits[:, :N]
    both = torch.cat([A_digits, A_photos], dim=1)
    return torch.cat([both * 1.01 ** i for i in range(N // both.shape[1])], dim=1)


def n_scaling(sizes, B, n_iter, repeats):
    problem, Y = mca32_problem(B)
    A_digits, A_photos = (d.float() for d in problem.dictionaries())
    Y = torch.from_numpy(np.asarray(Y, dtype=np.float32))
    rows = []
    for N in sizes:
        A = scaled_dictionary(A_digits, A_photos, N)
        p = lsalsa.LassoProblem(A / torch.linalg.vector_norm(A, dim=0), alphas=0.15)
        t_setup = median_time(lambda: salsa_operators(p, 1.0), repeats=repeats)
        t_auto = median_time(lambda: auto_mu(p, Y), repeats=1)
        t = median_time(lambda: lsalsa.salsa(p, Y, mu=1.0, n_iter=n_iter), repeats=repeats)
        per_iter = max(t - t_setup, 1e-12) / n_iter
        rows.append({"N": N, "M": p.n_features, "B": B, "us": per_iter / B * 1e6, "gflops": 2 * N * N * B / per_iter / 1e9,
                     "setup_ms": t_setup * 1e3, "trial_ms": t_auto * 1e3})
        print(N_ROWS.markdown(rows[-1:]), flush=True)
    return rows


def main(argv=None):
    args = argument_parser(__doc__, "smaller sizes (a smoke run)").parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    if args.quick:
        b_sizes, n_sizes, nB, n_iter, reps = (1, 100, 1000), (128, 512, 2048), 50, 10, 1
    else:
        b_sizes, n_sizes, nB, n_iter, reps = (1, 100, 10_000, 100_000), (128, 256, 512, 1024, 2048, 4096), 200, 20, 3
    b_rows, mu = b_scaling(b_sizes, reps)
    n_rows = n_scaling(n_sizes, nB, n_iter, reps)
    body = "\n\n".join(section_head("Scaling with B and N", "bench_scaling.py", " --quick" if args.quick else "") + [
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t0:.0f} s.",
        __doc__.split("\n\n")[1], __doc__.split("\n\n")[2],
        f"Optimal codes vs B (N = 100; auto mu on 10,000 of the signals = {mu:.3g}):",
        B_ROWS.markdown(b_rows),
        f"One SALSA iteration vs N (B = {nB}, float32, 2 threads, median of {reps}):",
        N_ROWS.markdown(n_rows),
    ])
    print(f"done in {time.time() - t0:.0f} s")
    if not args.no_readme:
        write_section("bench_scaling", body)


if __name__ == "__main__":
    main()
