"""Shared pieces of the benchmarks: timing, iteration searches, machine description, tables and
README sections. Problems and their references live in ``_problems.py``."""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

README = Path(__file__).with_name("README.md")
# The synthetic problems' shapes (bench_encoders, bench_training): N -> M, from real patch sizes.
# Here rather than in _problems.py, so that those scripts load neither scikit-learn nor SPAMS.
SHAPES = {100: 100, 256: 256, 2048: 1024}


# ---- timing -------------------------------------------------------------------------------------
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


def timed_result(fn, repeats: int):
    """``(fn(), seconds)``: the median of ``repeats`` fresh calls after the one that gives the
    result (its warm-up), or, with one repeat or a call over a second, that call itself (the
    same call has just run untimed, as a gap search or a reference solution, and at seconds a
    call the start-up effects a warm-up removes are lost in the noise)."""
    t0 = time.perf_counter()
    result = fn()
    return result, retimed(fn, time.perf_counter() - t0, repeats)


def retimed(fn, seconds: float, repeats: int) -> float:
    """``seconds``, the time of a call of ``fn`` just made, or the median of ``repeats`` fresh
    calls when there are more than one and that call took under a second (see timed_result)."""
    return median_time(fn, repeats=repeats, warmup=0) if repeats > 1 and seconds < 1.0 else seconds


def paired_ratios(reference, candidates: dict, repeats: int = 7, warmup: int = 1) -> dict:
    """``{name: (median, min, max)}`` of ``time(reference) / time(candidate)``, timed in pairs.

    The machine's speed drifts between minutes (benchmarks/README.md); a reference timed before
    the candidates can land on a fast or a slow stretch. Here each round times the reference and
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


def interleaved(fns: dict, device: str, rounds: int, min_time: float = 2e-3) -> dict[str, float]:
    """Median seconds per call of each function, timed round by round in turn so that load from
    other processes hits all of them alike. Fast functions are looped so each timing spans at
    least ``min_time``; slow ones (> 1 s a call) get a single round. Runs under
    ``torch.inference_mode``."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def clock(fn, number):
        sync()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        return (time.perf_counter() - t0) / number

    with torch.inference_mode():
        first = {k: clock(fn, 1) for k, fn in fns.items()}  # warm-up, and calibration
        numbers = {k: max(1, int(min_time / max(t, 1e-7))) for k, t in first.items()}
        if max(first.values()) > 1.0:
            rounds = 1
        times = {k: [] for k in fns}
        for _ in range(rounds):
            for k, fn in fns.items():
                times[k].append(clock(fn, numbers[k]))
    return {k: statistics.median(v) for k, v in times.items()}


def iterations_until(run: Callable[[Callable], Any], reached: Callable[[torch.Tensor], bool],
                     checked: Callable[[int], bool] | None = None) -> int | None:
    """The first iteration k (among those ``checked(k)`` admits; all when None) whose iterate X
    satisfies ``reached(X)``, or None. ``run(callback)`` calls a solver with that callback, which
    stops the solver at the hit. The checks run outside any timed call."""
    hit = []

    def callback(k, X):
        if (checked is None or checked(k)) and reached(X):
            hit.append(k)
            return True
        return False

    run(callback)
    return hit[0] if hit else None


# ---- machine ------------------------------------------------------------------------------------
FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "amx_bf16": "AMX-BF16"}
"""The /proc/cpuinfo flags that change which kernels are fast, and how they are written here."""


def _cpuinfo() -> tuple[str, list[str]]:
    """The CPU's model name and its :data:`FLAGS` present (from /proc/cpuinfo where it exists)."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return model, flags
    for line in lines:
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            flags = [name for flag, name in FLAGS.items() if flag in present]
            break
    return model, flags


def machine_kind() -> str:
    """The machine kind a README section belongs to: its CPU model as a slug (``amd-epyc``)."""
    return re.sub(r"[^a-z0-9]+", "-", _cpuinfo()[0].lower()).strip("-") or "unknown"


def machine(device: str = "cpu") -> str:
    """CPU and its vector flags, cores, library versions, and the GPU's name when ``device`` is a
    CUDA device."""
    cpu, flags = _cpuinfo()
    import sklearn
    text = (f"{cpu} ({', '.join(flags) or 'no AVX2'}), {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
            f"Python {platform.python_version()}")
    return text + (f", {torch.cuda.get_device_name()}" if device.startswith("cuda") else "")


def gemm_gflops(n: int = 1024, dtype: torch.dtype = torch.float32, device: str = "cpu", repeats: int = 5) -> float:
    """The GEMM peak of this run: GFLOP/s of an ``(n, n) @ (n, n)`` product, median of ``repeats``."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    t = median_time(lambda: torch.mm(a, b), repeats=repeats, warmup=1)
    return 2 * n**3 / t / 1e9


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as the section records them ("n/a" where unknown)."""
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def proc_status_kb(key: str) -> float:
    """A ``/proc/self/status`` figure in kB (``VmRSS``, ``VmHWM``, ``RssAnon``), NaN where absent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return float("nan")


# ---- command line, tables and the README --------------------------------------------------------
def argument_parser(doc: str, quick: str = "smaller batches (a smoke run)") -> argparse.ArgumentParser:
    """A parser with the flags every benchmark takes: ``--quick`` (a smoke run) and ``--no-readme``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    return parser


class Table:
    """A markdown table's columns, each ``(key, title)`` or ``(key, title, format)``.

    Rows are dicts of raw values keyed by column. A format is a ``str.format`` pattern (default
    ``"{}"``) or a function of the value. A missing or None value prints ``-``; a string prints
    as it is, so a row can hold a placeholder such as ``">5000"`` where a number would be.
    """

    def __init__(self, *columns: tuple):
        self.columns = [(c[0], c[1], c[2] if len(c) > 2 else "{}") for c in columns]

    @staticmethod
    def cell(value: Any, fmt: str | Callable) -> str:
        if value is None:
            return "-"
        if isinstance(value, str):
            return value
        return fmt(value) if callable(fmt) else fmt.format(value)

    def line(self, row: dict) -> str:
        """One row as a markdown line (for progress printing)."""
        return "| " + " | ".join(self.cell(row.get(key), fmt) for key, _, fmt in self.columns) + " |"

    def markdown(self, rows: list[dict]) -> str:
        out = ["| " + " | ".join(title for _, title, _ in self.columns) + " |", "|" + "---|" * len(self.columns)]
        return "\n".join(out + [self.line(r) for r in rows])


def section_head(title: str, script: str, flags: str = "", device: str = "cpu") -> list[str]:
    """A README section's first paragraphs: its title (with the machine kind: one section per kind
    is kept), the command that wrote it, the machine, the load when it was written and the fp32
    GEMM peak measured then (ratios to it carry over between machines, seconds do not)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    peak = gemm_gflops(device=device)
    return [f"## {title} (`{script}`, {machine_kind()})", f"Command: `.venv/bin/python benchmarks/{script}{flags}`  ",
            f"Machine: {machine(device)}  ",
            f"Load average (1, 5, 15 min) when written: {load_average()}; fp32 GEMM at N = 1024 in this run: "
            f"{peak:.0f} GFLOP/s  "]


def write_section(name: str, body: str, kind: str | None = None) -> None:
    """Replace (or append) this machine kind's section ``name``, between
    ``<!-- name@kind:start -->`` and ``<!-- name@kind:end -->``: a run on another kind of machine
    adds its own section instead of overwriting this one's. A section written before kinds were
    recorded (``<!-- name:start -->``) is this kind's when its Machine line names this CPU."""
    kind = kind or machine_kind()
    text = README.read_text() if README.exists() else "# Benchmarks\n\nEach section is written by the script it names.\n"
    legacy = re.compile(re.escape(f"<!-- {name}:start -->") + r"(.*?)" + re.escape(f"<!-- {name}:end -->"), re.S)
    m = legacy.search(text)
    if m and _kind_of(m.group(1)) == kind:
        text = text[:m.start()] + f"<!-- {name}@{kind}:start -->{m.group(1)}<!-- {name}@{kind}:end -->" + text[m.end():]
    start, end = f"<!-- {name}@{kind}:start -->", f"<!-- {name}@{kind}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:  # after the other kinds' sections of this name, else at the end
        others = list(re.finditer(re.escape(f"<!-- {name}") + r"(@[a-z0-9-]+)?:end -->", text))
        at = others[-1].end() if others else len(text.rstrip())
        text = text[:at] + "\n\n" + block + ("\n" if not others else "") + text[at:]
    README.write_text(text)


def _kind_of(section: str) -> str | None:
    """The machine kind a section's ``Machine:`` line names (None without one)."""
    m = re.search(r"^Machine: ([^,(]+)", section, re.M)
    return re.sub(r"[^a-z0-9]+", "-", m.group(1).strip().lower()).strip("-") if m else None
