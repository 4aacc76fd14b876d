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

import time

import torch

import lsalsa
from _common import Table, argument_parser, iterations_until, section_head, write_section
from _problems import Case, f_star, mca32_problem, patch10_problem

TARGET = 1e-6
FACTORS = tuple(2.0 ** (j / 2) for j in range(-6, 3))
RELAXATIONS = (1.0, 1.8)

ROWS = Table(("problem", "problem"), ("mu", "mu", lambda v: f"{v[0]:.3g}" + (" (auto)" if v[1] else "")),
             ("plain", "iterations, relaxation 1"), ("relaxed", "iterations, relaxation 1.8"))


def _auto_vs_best(v) -> str:
    k_auto, k_best, mu_best = v
    return f"{k_auto} vs {k_best} (mu={mu_best:.3g})"


SUMMARY = Table(("problem", "problem"), ("auto", "auto's mu", "{:.3g}"),
                ("plain", "plain: auto vs best", _auto_vs_best), ("plain_ratio", "ratio", "{:.2f}x"),
                ("relaxed", "relaxed: auto vs best", _auto_vs_best), ("relaxed_ratio", "ratio", "{:.2f}x"))


def iterations(case: Case, F, mu, relaxation, max_iter):
    """Iterations (a multiple of 5) until the mean objective is within TARGET of F*, or None."""
    return iterations_until(
        lambda cb: lsalsa.salsa(case.problem32, case.Y32, mu=mu, relaxation=relaxation, tol=1e-300, max_iter=max_iter,
                                polish=False, callback=cb),
        lambda X: case.relative_gap(X, F) <= TARGET, lambda k: k % 5 == 0)


def _same(mu, auto):
    """Grid value and auto's pick agree up to float32 rounding of ``trace(A^T A)``."""
    return abs(mu - auto) <= 1e-4 * auto


def summary_row(name, auto, counts, max_iter) -> dict:
    """auto's iterations against the grid's best, plain and relaxed."""
    row = {"problem": name, "auto": auto}
    for key, rho in zip(("plain", "relaxed"), RELAXATIONS):
        done = {m: k for m, k in counts[rho].items() if k is not None}
        if not done:
            row[key] = f"every mu > {max_iter}"
            continue
        best = min(done, key=done.get)
        k_auto = next((k for m, k in counts[rho].items() if _same(m, auto)), None)
        row[key] = (k_auto or f">{max_iter}", done[best], best)
        row[key + "_ratio"] = k_auto / done[best] if k_auto else None
    return row


def bench(name, problem, Y, max_iter):
    case = Case.of(problem, Y)
    F = f_star(case)
    auto = lsalsa.solvers.auto_mu(case.problem32, case.Y32)
    scale = float(case.problem32.A.square().sum()) / case.problem32.n_atoms
    grid = [scale * f for f in FACTORS] + [10.0]
    counts = {rho: {} for rho in RELAXATIONS}
    rows = []
    for mu in grid:
        for rho in RELAXATIONS:
            counts[rho][mu] = iterations(case, F, mu, rho, max_iter)
        k_plain, k_relaxed = (counts[rho][mu] or f">{max_iter}" for rho in RELAXATIONS)
        rows.append({"problem": name, "mu": (mu, _same(mu, auto)), "plain": k_plain, "relaxed": k_relaxed})
        print(ROWS.line(rows[-1]), flush=True)
    return rows, summary_row(name, auto, counts, max_iter)


def main(argv=None):
    args = argument_parser(__doc__).parse_args(argv)
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
    print(SUMMARY.markdown(summaries))
    body = "\n\n".join(section_head("Automatic mu vs its grid", "bench_auto_mu.py", " --quick" if args.quick else "") + [
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t0:.0f} s.",
        __doc__.split("\n\n")[1],
        SUMMARY.markdown(summaries),
        ROWS.markdown(rows),
    ])
    if not args.no_readme:
        write_section("bench_auto_mu", body)


if __name__ == "__main__":
    main()
