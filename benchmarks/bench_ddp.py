"""Training throughput on torch.distributed: ``train_encoder(..., distributed=True)`` on 1 and 2
ranks (torchrun, gloo, one thread per rank) against one plain process, at N = 100 and N = 2048.

Each configuration runs under its own ``torchrun --standalone`` (or, for the plain process, its
own Python): a synthetic problem as in ``bench_training.py`` (random unit-norm dictionary
``(M, N)``, M from ``_common.SHAPES``, alpha = 0.15), LSALSA with T untied layers (the library's
default options: ``T N^2 + N M`` trainable floats), P training pairs given whole to every rank,
``TrainConfig(optimizer="adam", lr=1e-4, warmup=0, rel_tol=0, batch_size=b)`` with b per rank,
one untimed warm-up run, then a few epochs. Throughput is P / (median epoch time, first epoch
excluded): all ranks together. Per step, each rank all-reduces every gradient once
(DistributedDataParallel's buckets): the volume is the trainable floats, and the all-reduce of
that many floats is timed alone on the same ranks (median of 5). The step's flops (forward and
backward of one rank's batch) are counted by ``torch.utils.flop_counter.FlopCounterMode``.

    .venv/bin/python benchmarks/bench_ddp.py [--quick] [--no-readme] [--out benchmarks/results/ddp_throughput.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import SHAPES, Table, argument_parser, machine, section_head, write_section

OUT = Path(__file__).with_name("results") / "ddp_throughput.json"
ROWS = Table(("mode", "run"), ("N", "N"), ("M", "M"), ("T", "T"), ("batch", "batch per rank"), ("P", "P"),
             ("rate", "samples/s", "{:,.0f}"), ("step_ms", "step [ms]", "{:.1f}"),
             ("allreduce_floats", "all-reduce per step [floats]", "{:,}"),
             ("allreduce_ms", "its all-reduce alone [ms]", "{:.2f}"), ("gflop_step", "step [GFLOP]", "{:.3f}"))


def child(N: int, T: int, P: int, epochs: int, batch: int, distributed: bool) -> dict:
    """Train one configuration on this rank; rank 0's figures (None on the others)."""
    import lsalsa
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    M = SHAPES[N]
    A = torch.randn(M, N, generator=g)
    A /= torch.linalg.vector_norm(A, dim=0)
    problem = lsalsa.LassoProblem(A, alphas=0.15)
    X_star = torch.randn(P, N, generator=g) * (torch.rand(P, N, generator=g) < 0.1)
    Y = X_star @ A.T + 0.01 * torch.randn(P, M, generator=g)
    enc = lsalsa.LSALSA.from_problem(problem, T, mu=1.0, tied=False)
    config = dict(batch_size=batch, optimizer="adam", lr=1e-4, warmup=0, rel_tol=0.0)
    ranks = int(os.environ.get("WORLD_SIZE", 1)) if distributed else 1
    warm = 2 * batch * ranks
    lsalsa.train_encoder(enc, Y[:warm], X_star[:warm], lsalsa.TrainConfig(epochs=1, **config), distributed=distributed)
    history = lsalsa.train_encoder(enc, Y, X_star, lsalsa.TrainConfig(epochs=epochs, **config), distributed=distributed)
    epoch_s = statistics.median(history.time_s[1:] or history.time_s)
    floats = sum(p.numel() for p in enc.parameters() if p.requires_grad)
    allreduce_s = _allreduce_seconds(floats) if distributed else None
    with FlopCounterMode(display=False) as counter:
        lsalsa.train.batch_loss(enc, Y[:batch], X_star[:batch]).backward()
    if distributed and int(os.environ["RANK"]) > 0:
        return None
    steps = -(-(P // ranks) // batch)  # per rank and epoch
    return {"samples_per_s": P / epoch_s, "epoch_s": epoch_s, "step_s": epoch_s / steps, "steps": steps,
            "allreduce_floats": floats, "allreduce_s": allreduce_s, "flop_step": counter.get_total_flops(),
            "threads": torch.get_num_threads(), "ranks": ranks}


def _allreduce_seconds(floats: int) -> float:
    """Median seconds of one all-reduce of ``floats`` float32 over the ranks (after one untimed)."""
    import torch.distributed as dist

    buffer = torch.ones(floats)
    times = []
    for k in range(6):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(buffer)
        if k:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(mode: str, ranks: int, args: list[str]) -> dict:
    """One configuration in fresh processes: a plain Python, or torchrun with ``ranks`` ranks."""
    if mode == "process":
        cmd = [sys.executable, __file__, "--child", *args, "0"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
               __file__, "--child", *args, "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def main(argv=None):
    parser = argument_parser(__doc__, "small sizes, one timed epoch (a smoke run)")
    parser.add_argument("--T", type=int, default=5, help="LSALSA's layers (default 5)")
    parser.add_argument("--batch", type=int, default=100, help="batch per rank (default 100)")
    parser.add_argument("--out", default=str(OUT), help="results JSON (default benchmarks/results/ddp_throughput.json)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        N, T, P, epochs, batch, distributed = map(int, args.child)
        result = child(N, T, P, epochs, batch, bool(distributed))
        if result is not None:
            print(json.dumps(result), flush=True)
        return

    t_start, load_start = time.time(), os.getloadavg()[0]  # the machine's other work, which the ranks share
    plan, epochs = ({100: 2000, 2048: 200}, 2) if args.quick else ({100: 10_000, 2048: 600}, 4)
    rows = []
    for N, P in plan.items():
        for mode, ranks in (("process", 1), ("ddp", 1), ("ddp", 2)):
            r = run(mode, ranks, [str(N), str(args.T), str(P), str(epochs), str(args.batch)])
            rows.append({"mode": "one process" if mode == "process" else f"torchrun x{ranks}", "ranks": ranks,
                         "N": N, "M": SHAPES[N], "T": args.T, "batch": args.batch, "P": P, "rate": r["samples_per_s"],
                         "step_ms": 1e3 * r["step_s"], "allreduce_floats": r["allreduce_floats"] if mode == "ddp" else None,
                         "allreduce_ms": None if r["allreduce_s"] is None else 1e3 * r["allreduce_s"],
                         "gflop_step": r["flop_step"] / 1e9, "epoch_s": r["epoch_s"], "steps_per_epoch": r["steps"]})
            print(ROWS.line(rows[-1]), flush=True)
    print()
    print(ROWS.markdown(rows))
    meta = {"command": "benchmarks/bench_ddp.py" + (" --quick" if args.quick else ""), "machine": machine(),
            "cores": os.cpu_count(), "threads_per_rank": 1, "epochs": epochs, "dtype": "float32",
            "date": time.strftime("%Y-%m-%d %H:%M"), "seconds": round(time.time() - t_start),
            "load_average_1min": [load_start, os.getloadavg()[0]]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    body = "\n\n".join(section_head("Training on torch.distributed", "bench_ddp.py", " --quick" if args.quick else "") + [
        f"Run: {meta['date']}, {meta['seconds']} s, float32 on CPU, one thread per rank on a machine of "
        f"{os.cpu_count()} cores (load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), "
        f"{epochs} epochs per configuration.",
        __doc__.split("\n\n", 1)[1].split("\n\n    .venv")[0],
        ROWS.markdown(rows),
    ])
    if not args.no_readme:
        write_section("bench_ddp", body)


if __name__ == "__main__":
    main()
