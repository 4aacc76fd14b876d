"""Shared pieces of the benchmarks: timing, machine description, README sections."""
from __future__ import annotations

import os
import platform
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch

README = Path(__file__).with_name("README.md")


def median_time(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_ratios(reference, candidates: dict, repeats: int = 7, warmup: int = 1) -> dict:
    """``{name: (median, min, max)}`` of ``time(reference) / time(candidate)``, timed in pairs.

    The machine's speed drifts by 15% and more between minutes; a reference timed before the
    candidates can land on a fast or a slow stretch. Here each round times the reference and
    then every candidate, and the ratio is taken within the round.
    """
    for _ in range(warmup):
        reference()
        for fn in candidates.values():
            fn()
    ratios = {name: [] for name in candidates}
    for _ in range(repeats):
        t0 = time.perf_counter()
        reference()
        t_ref = time.perf_counter() - t0
        for name, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            ratios[name].append(t_ref / (time.perf_counter() - t0))
    return {name: (statistics.median(r), min(r), max(r)) for name, r in ratios.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sklearn
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, Python {platform.python_version()}")


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = README.read_text() if README.exists() else "# Benchmarks\n\nEach section is written by the script it names.\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)


def markdown_table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
