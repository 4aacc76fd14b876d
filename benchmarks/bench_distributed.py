"""Optimal codes of real MNIST patches on Dask: 1 and 2 workers (one thread each) against the in-process run.

The patches of ``bench_stream.py`` (MNIST 10x10, padded to 32x32, stride 2, std >= 0.1, float32)
are written to a ``.npy`` file; ``lsalsa.optimal_codes`` codes them in process (torch on one
thread), then ``lsalsa.distributed.optimal_codes`` on a ``LocalCluster`` of K worker processes
of one thread each reads its chunks from that file and writes the codes into a zarr array, for
K = 1 and 2 and each ``--chunk-rows``. Every run is SALSA with ``mu="auto"`` (its trial
included in the time) and the patch10 dictionary, at ``batch_size`` 4096.

Measured: wall time, speed-up over the in-process run, the largest difference to its codes,
peak anonymous memory (``RssAnon``, sampled every 20 ms, the process's own pages: not the page
cache of the memory-mapped files) of the in-process run and of each worker, and the overhead per
chunk: ``(K * wall - sum of the chunks' solve times) / chunks`` (scheduling, reading and hashing
the rows, compressing and writing the zarr chunk, the marker), and the wall time per chunk of
running the finished job again (every chunk read, hashed and skipped).

    .venv/bin/python benchmarks/bench_distributed.py [--n 1000000] [--chunk-rows 4096,16384] [--quick] [--no-readme]
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import lsalsa
from _common import Table, argument_parser, machine, write_section
from _problems import patch10_problem
from bench_stream import PeakSampler, rss_anon_mib, write_patches
from lsalsa import distributed as ld
from lsalsa.files import write_json

RESULTS = Path(__file__).with_name("results") / "distributed_codes.json"
SALSA = {"solver": "salsa", "mu": "auto", "batch_size": 4096}
ROWS = Table(("run", "run"), ("workers", "workers"), ("chunk_rows", "chunk rows"), ("chunks", "chunks"),
             ("time_s", "time [s]", "{:.1f}"), ("speedup", "speed-up", "{:.2f}"),
             ("peak_mib", "peak RssAnon growth per process [MiB]", "{:.0f}"),
             ("overhead_ms", "overhead per chunk [ms]", "{:.0f}"), ("rerun_ms", "re-run, per chunk [ms]", "{:.0f}"),
             ("max_diff", "max |X - X_in-process|", "{:.1e}"))


def _start_sampler(dask_worker) -> float:
    """On a worker: sample its RssAnon every 20 ms from now on; returns the current value."""
    sampler = PeakSampler()
    sampler.start()
    dask_worker.lsalsa_sampler = sampler
    return sampler.peak


def _stop_sampler(dask_worker) -> float:
    sampler = dask_worker.lsalsa_sampler
    sampler.stop.set()
    sampler.join()
    return sampler.peak


def in_process(problem, Y) -> tuple[np.ndarray, dict]:
    lsalsa.optimal_codes(problem, np.asarray(Y[:64]), **SALSA)  # warm-up: numba compiles the support solve
    base = rss_anon_mib()
    sampler = PeakSampler()
    sampler.start()
    t0 = time.perf_counter()
    X = lsalsa.optimal_codes(problem, Y, **SALSA)
    elapsed = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    return X, {"run": "in process", "workers": "-", "time_s": elapsed, "peak_mib": sampler.peak - base}


def on_dask(problem, path: Path, n_workers: int, chunk_rows: int, work: Path, X_ref: np.ndarray, t_ref: float) -> dict:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        ld.optimal_codes(problem, np.asarray(np.load(path, mmap_mode="r")[:64]), client=client, chunk_rows=32,
                         **SALSA)  # warm-up: the workers import lsalsa, numba compiles
        base = client.run(_start_sampler)
        out = work / f"X-{n_workers}-{chunk_rows}.zarr"
        t0 = time.perf_counter()
        Z, facts = ld._codes.codes_job(problem, path, client=client, chunk_rows=chunk_rows, out=out, **SALSA)
        elapsed = time.perf_counter() - t0
        peak = client.run(_stop_sampler)
        t0 = time.perf_counter()
        _, again = ld._codes.codes_job(problem, path, client=client, chunk_rows=chunk_rows, out=out, **SALSA)
        rerun = time.perf_counter() - t0
    assert again["chunks_computed"] == 0
    solve = sum(json.loads(p.read_text())["time_s"] for p in (out / "lsalsa_chunks").glob("[0-9]*.json"))
    n_chunks = facts["n_chunks"]
    max_diff = max(float(np.abs(Z[a:a + 65536] - X_ref[a:a + 65536]).max()) for a in range(0, len(X_ref), 65536))
    shutil.rmtree(out)
    return {"run": "Dask", "workers": n_workers, "chunk_rows": chunk_rows, "chunks": n_chunks, "time_s": elapsed,
            "speedup": t_ref / elapsed, "peak_mib": max(peak[w] - base[w] for w in peak),
            "peak_mib_per_worker": {w: peak[w] - base[w] for w in peak},
            "overhead_ms": 1e3 * (n_workers * elapsed - solve) / n_chunks, "solve_s": solve,
            "rerun_ms": 1e3 * rerun / n_chunks, "max_diff": max_diff, "all_converged": facts["all_converged"]}


def main(argv=None):
    parser = argument_parser(__doc__, "20,000 patches unless --n is given (a smoke run)")
    parser.add_argument("--n", type=int, default=None, help="patches to code (default 1,000,000; 20,000 with --quick)")
    parser.add_argument("--chunk-rows", default="4096,16384", help="comma-separated rows per task")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 20_000 if args.quick else 1_000_000
    chunks = [int(c) for c in args.chunk_rows.split(",")]
    torch.set_num_threads(1)  # the in-process run on one thread, as each worker

    problem, _ = patch10_problem(10)
    work = Path(tempfile.mkdtemp(prefix="lsalsa-distributed-"))
    started, load = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    try:
        write_patches(work / "Y.npy", args.n)
        X_ref, ref = in_process(problem, np.load(work / "Y.npy", mmap_mode="r"))
        rows = [ref | {"speedup": 1.0}]
        print(ROWS.line(rows[0]), flush=True)
        for chunk_rows in chunks:
            for n_workers in (1, 2):
                rows.append(on_dask(problem, work / "Y.npy", n_workers, chunk_rows, work, X_ref, ref["time_s"]))
                print(ROWS.line(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = ROWS.markdown(rows)
    print(table)
    command = f".venv/bin/python benchmarks/bench_distributed.py --n {args.n} --chunk-rows {args.chunk_rows}"
    write_json(RESULTS, {"command": command, "machine": machine(), "started": started,
                         "load_average_at_start": load, "n": args.n, "options": SALSA, "rows": rows})
    body = (f"Command: `{command}`  \nMachine: {machine()}, load average {load[0]:.1f} at the start ({started})  \n"
            f"{args.n:,} real MNIST 10x10 patches (float32, a .npy file the workers read), the patch10 "
            "dictionary, SALSA with auto mu at batch 4096; in process on one torch thread, on Dask with K "
            "worker processes of one thread each (a LocalCluster, warmed up). Overhead per chunk = (K x wall - "
            "the chunks' solve times) / chunks; re-run = the finished job again, every chunk read, hashed and "
            "skipped.\n\n" + table)
    if not args.no_readme:
        write_section("bench_distributed", "## Optimal codes on Dask (`bench_distributed.py`)\n\n" + body)


if __name__ == "__main__":
    main()
