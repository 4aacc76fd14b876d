"""The ``lsalsa`` command: a thin argparse layer over library calls."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from .errors import LsalsaError


def _demo(args: argparse.Namespace) -> int:
    """Sparse-code real handwritten digits (scikit-learn's 8x8 digits) with each solver."""
    from sklearn.datasets import load_digits

    from .problem import LassoProblem
    from .solvers import SOLVERS

    data = load_digits().data / 16.0  # (1797, 64) in [0, 1]
    rng = np.random.default_rng(args.seed)
    idx = rng.permutation(len(data))
    # A data-driven dictionary: 100 held-out digits as unit-norm atoms (dictionary learning
    # proper is `lsalsa.learn_dictionary`).
    A = data[idx[:100]].T
    A = A / np.linalg.norm(A, axis=0)
    Y = torch.from_numpy(data[idx[100:]]).float()
    problem = LassoProblem(torch.from_numpy(A).float(), alphas=args.alpha)
    print(f"problem: {problem}, {Y.shape[0]} signals")
    print(f"{'solver':8s} {'T':>6s} {'objective':>10s} {'sparsity':>9s} {'max KKT':>9s} {'time [s]':>9s}")
    for name in ("ista", "fista", "salsa"):
        for n_iter in (1, 5, 20, None):
            t0 = time.perf_counter()
            res = SOLVERS[name](problem, Y, n_iter=n_iter, tol=1e-5, max_iter=20_000)
            dt = time.perf_counter() - t0
            obj = float(problem.objective(res.X, Y).mean())
            sparsity = float((res.X == 0).float().mean())
            kkt = float(problem.kkt_violation(res.X, Y).max())
            label = str(n_iter) if n_iter is not None else f"{res.n_iter}*"
            print(f"{name:8s} {label:>6s} {obj:10.5f} {sparsity:9.3f} {kkt:9.2e} {dt:9.4f}")
    print("(* = run to convergence, tol 1e-5 on the relative change of x)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsalsa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="solve a real-data sparse-coding problem with each solver")
    demo.add_argument("--alpha", type=float, default=0.15, help="l1 weight (default 0.15)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LsalsaError as exc:
        print(f"lsalsa: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
