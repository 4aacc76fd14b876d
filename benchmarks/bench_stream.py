"""Optimal codes for a million patches with memory bounded by the batch size.

Real MNIST 10x10 patches (padded to 32x32, stride 2, std >= 0.1) are written to a memory-mapped
``.npy`` file; ``lsalsa.optimal_codes`` reads it batch by batch and writes the codes to another
memmap (its cache). Anonymous memory (``RssAnon``: what the process owns, not the file pages the
kernel can drop) is sampled every 20 ms; its peak growth over the run is what the batch costs.

    .venv/bin/python benchmarks/bench_stream.py [--n 1000000] [--batch-size 4096] [--quick] [--no-readme]
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import lsalsa
from _common import Table, argument_parser, machine, proc_status_kb, write_section
from _problems import patch10_problem

ROWS = Table(("n", "n", "{:,}"), ("batch", "batch"), ("Y_mib", "Y memmap [MiB]", "{:.0f}"),
             ("codes_mib", "codes memmap [MiB]", "{:.0f}"), ("time", "time [s]", "{:.1f}"), ("us", "us/signal", "{:.1f}"),
             ("base_mib", "RssAnon before [MiB]", "{:.0f}"), ("growth_mib", "peak RssAnon growth [MiB]", "{:.0f}"),
             ("kkt", "max KKT violation (2000 rows)", "{:.1e}"))


def rss_anon_mib() -> float:
    return proc_status_kb("RssAnon") / 1024


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


def main(argv=None):
    parser = argument_parser(__doc__, "20,000 patches unless --n is given (a smoke run)")
    parser.add_argument("--n", type=int, default=None, help="patches to code (default 1,000,000; 20,000 with --quick)")
    parser.add_argument("--batch-size", type=int, default=4096)
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 20_000 if args.quick else 1_000_000

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
        every = max(1, args.n // 2000)  # the KKT check on about 2000 rows
        kkt = float(problem.kkt_violation(np.asarray(X[::every]), np.asarray(Y[::every])).max())
        row = {"n": args.n, "batch": args.batch_size, "Y_mib": Y.nbytes / 2**20, "codes_mib": X.nbytes / 2**20,
               "time": elapsed, "us": 1e6 * elapsed / args.n, "base_mib": base, "growth_mib": sampler.peak - base, "kkt": kkt}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = ROWS.markdown([row])
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
