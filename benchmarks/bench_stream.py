"""Optimal codes for a million patches with memory bounded by the batch size.

Real MNIST 10x10 patches (padded to 32x32, stride 2, std >= 0.1) are written to a memory-mapped
``.npy`` file; ``lsalsa.optimal_codes`` reads it batch by batch and writes the codes to another
memmap (its cache). Anonymous memory (``RssAnon``: what the process owns, not the file pages the
kernel can drop) is sampled every 20 ms; its peak growth over the run is what the batch costs.

    .venv/bin/python benchmarks/bench_stream.py [--n 1000000] [--batch-size 4096] [--no-readme]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import lsalsa
from _common import machine, markdown_table, write_section
from bench_solvers import patch10_problem


def rss_anon_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakSampler(threading.Thread):
    def __init__(self, every: float = 0.02):
        super().__init__(daemon=True)
        self.every, self.peak, self.stop = every, rss_anon_mib(), threading.Event()

    def run(self):
        while not self.stop.wait(self.every):
            self.peak = max(self.peak, rss_anon_mib())


def write_patches(path: Path, n: int) -> np.memmap:
    """The first ``n`` patches of MNIST (train, then test) into a (n, 100) float32 memmap."""
    Y = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 100))
    filled = 0
    for split in ("train", "test"):
        images, _ = lsalsa.data.load_images("mnist", split=split)
        for i in range(0, len(images), 500):
            rows, _ = lsalsa.data.extract_patches(images[i:i + 500], size=10, stride=2, min_std=0.1, pad_to=32)
            take = min(len(rows), n - filled)
            Y[filled:filled + take] = rows[:take]
            filled += take
            if filled == n:
                Y.flush()
                return Y
    raise SystemExit(f"MNIST gives only {filled} such patches, fewer than --n {n}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()

    problem, _ = patch10_problem(10)
    work = Path(tempfile.mkdtemp(prefix="lsalsa-stream-"))
    try:
        t0 = time.perf_counter()
        write_patches(work / "Y.npy", args.n)
        t_write = time.perf_counter() - t0
        Y = np.load(work / "Y.npy", mmap_mode="r")
        base = rss_anon_mib()
        sampler = PeakSampler()
        sampler.start()
        t0 = time.perf_counter()
        X = lsalsa.optimal_codes(problem, Y, solver="salsa", batch_size=args.batch_size, cache_dir=work / "codes",
                                 dataset_name="stream")
        elapsed = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        meta = next((work / "codes").glob("*.json")).read_text()
        gap_rows = np.asarray(X[:: max(1, args.n // 2000)])
        kkt = float(problem.kkt_violation(gap_rows, np.asarray(Y[:: max(1, args.n // 2000)])).max())
        y_mib = Y.nbytes / 2**20
        rows = [[f"{args.n:,}", args.batch_size, f"{y_mib:.0f}", f"{X.nbytes / 2**20:.0f}", f"{elapsed:.1f}",
                 f"{1e6 * elapsed / args.n:.1f}", f"{base:.0f}", f"{sampler.peak - base:.0f}", f"{kkt:.1e}"]]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = markdown_table(["n", "batch", "Y memmap [MiB]", "codes memmap [MiB]", "time [s]", "us/signal",
                            "RssAnon before [MiB]", "peak RssAnon growth [MiB]", "max KKT violation (2000 rows)"], rows)
    print(table)
    print(meta)
    body = (f"Command: `.venv/bin/python benchmarks/bench_stream.py --n {args.n} --batch-size {args.batch_size}`  \n"
            f"Machine: {machine()}  \n"
            f"Writing the patches took {t_write:.1f} s (not in the time below). "
            "`lsalsa.optimal_codes(problem, Y_memmap, solver='salsa', cache_dir=...)` with the patch10 dictionary "
            "(alpha = 0.15, auto mu, tol 1e-6 on the relative change): the time includes hashing Y for the cache key, "
            "the auto-mu trial and writing the codes memmap. RssAnon is the process's own memory, sampled every 20 ms; "
            "file pages of the two memmaps are the kernel's page cache and are not counted.\n\n" + table)
    if not args.no_readme:
        write_section("bench_stream", "## Optimal codes for a million patches, streamed (`bench_stream.py`)\n\n" + body)


if __name__ == "__main__":
    main()
