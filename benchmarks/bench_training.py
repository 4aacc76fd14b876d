"""Training throughput and peak memory of LISTA and LSALSA (``lsalsa.train_encoder``, Eq. 15).

Each configuration trains in its own process, so that peak memory is its own: a fresh Python
loads torch, builds the encoder from a problem (random unit-norm dictionary, alpha = 0.15,
LSALSA mu = 1) and P synthetic training pairs, runs one untimed warm-up epoch on a small subset
(thread pools, allocator), then trains for a few epochs with ``TrainConfig(optimizer="adam",
batch_size=100, rel_tol=0)`` (``--batch`` changes the batch size). Throughput is
P / (median epoch time, first epoch excluded); an epoch is forward, loss, backward and optimizer
step of every batch. Peak memory is the growth of the resident set during training on CPU
(Linux ``VmHWM``, after the warm-up's free memory was returned with ``malloc_trim`` and the mark
reset through ``/proc/self/clear_refs``), or ``torch.cuda.max_memory_allocated`` minus the
memory held before training on a GPU: autograd's saved activations, gradients, Adam's state.

    .venv/bin/python benchmarks/bench_training.py [--quick] [--no-readme] [--device cuda]
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import SHAPES, Table, argument_parser, proc_status_kb, section_head, write_section

ROWS = Table(("encoder", "encoder"), ("T", "T"), ("M", "M"), ("N", "N"), ("batch", "batch"), ("P", "P"),
             ("rate", "samples/s", "{:,.0f}"), ("epoch_s", "epoch [s]", "{:.2f}"), ("peak_mib", "peak memory [MiB]", "{:.1f}"))


def child(kind: str, T: int, N: int, P: int, epochs: int, device: str, threads: int, batch: int) -> dict:
    """Train one configuration in this process; returns its figures."""
    import lsalsa

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    M = SHAPES[N]
    A = torch.randn(M, N, generator=g)
    A /= torch.linalg.vector_norm(A, dim=0)
    problem = lsalsa.LassoProblem(A, alphas=0.15).to(device=device)
    X_star = torch.randn(P, N, generator=g) * (torch.rand(P, N, generator=g) < 0.1)
    Y = (X_star @ A.T + 0.01 * torch.randn(P, M, generator=g)).to(device)
    X_star = X_star.to(device)
    enc = (lsalsa.LSALSA.from_problem(problem, T, mu=1.0) if kind == "lsalsa" else lsalsa.LISTA.from_problem(problem, T))
    config = dict(batch_size=batch, optimizer="adam", lr=1e-4, rel_tol=0.0)
    warm = min(P, 5 * batch)
    lsalsa.train_encoder(enc, Y[:warm], X_star[:warm], lsalsa.TrainConfig(epochs=1, **config))

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        # hand the warm-up's freed heap back to the OS, so that training must grow the resident
        # set to its own working set, then restart the high-water mark from here
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        base = proc_status_kb("VmRSS") * 1024
    history = lsalsa.train_encoder(enc, Y, X_star, lsalsa.TrainConfig(epochs=epochs, **config))
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = proc_status_kb("VmHWM") * 1024 - base
    epoch_s = statistics.median(history.time_s[1:] or history.time_s)
    return {"samples_per_s": P / epoch_s, "epoch_s": epoch_s, "peak_bytes": peak, "threads": torch.get_num_threads()}


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argument_parser(__doc__, "small sizes, few epochs (a smoke run)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=min(2, torch.get_num_threads()))
    parser.add_argument("--batch", type=int, default=100, help="batch size (default 100, the paper's)")
    parser.add_argument("--child", nargs=8, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, T, N, P, epochs, device, threads, batch = args.child
        print(json.dumps(child(kind, int(T), int(N), int(P), int(epochs), device, int(threads), int(batch))))
        return

    t_start = time.time()
    if args.quick:
        plan, Ts, epochs = {100: 1000, 256: 500}, (1, 5), 2
    else:
        # P per N keeps every configuration to a few seconds an epoch on two cores
        plan, Ts, epochs = {100: 10_000, 256: 5_000, 2048: 300}, (1, 5, 20), 3
    rows = []
    for N, P in plan.items():
        for kind in ("lista", "lsalsa"):
            for T in Ts:
                r = run_child([kind, str(T), str(N), str(P), str(epochs), args.device, str(args.threads), str(args.batch)])
                rows.append({"encoder": kind, "T": T, "M": SHAPES[N], "N": N, "batch": args.batch, "P": P,
                             "rate": r["samples_per_s"], "epoch_s": r["epoch_s"], "peak_mib": r["peak_bytes"] / 2**20})
                print(ROWS.line(rows[-1]), flush=True)
    print()
    print(ROWS.markdown(rows))
    flags = ((" --quick" if args.quick else "") + (f" --batch {args.batch}" if args.batch != 100 else "")
             + (" --device " + args.device if args.device != "cpu" else ""))
    body = "\n\n".join(section_head("Training throughput and memory", "bench_training.py", flags, args.device) + [
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t_start:.0f} s, float32 on {args.device}, "
        f"{args.threads} threads, {epochs} epochs per configuration.",
        __doc__.split("\n\n", 1)[1].split("\n\n    .venv")[0],
        ROWS.markdown(rows),
    ])
    if not args.no_readme:
        write_section("bench_training", body)

if __name__ == "__main__":
    main()
