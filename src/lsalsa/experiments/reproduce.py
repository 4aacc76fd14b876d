"""``lsalsa reproduce``: the paper's six experiments, run and set beside the paper's numbers.

Each experiment is its shipped config (:data:`lsalsa.experiments.paper.EXPERIMENTS`) run in
``OUT/<name>`` (resumable like any run: what finished is cached). The data step of every
experiment runs first, so a missing data set fails before hours of work; then each experiment
runs to its report, and ``OUT/reproduction.md`` (and ``.html``) puts, per experiment, the paper's
iteration counts "FISTA / SALSA need k iterations to match LSALSA at T = 1" and its
classification tables beside ours, with a verdict per claim:

- an iteration claim ("more than k", or "k") is *reproduced* when our count is at least as large
  (LSALSA's lead at least as long), *not reproduced* otherwise;
- a table's claim is the method the paper found best at the smallest T both have: *reproduced*
  when it is among our best there too; the probe's error on the optimal codes is *reproduced*
  when ours is at most the paper's;
- everything is *not comparable* when the run used a stand-in for the paper's data set (named),
  or did not produce the quantity (e.g. no LSALSA at T = 1).
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import LsalsaError
from ..files import write_json, write_text
from .classify import SUMMARY, is_summary
from .config import load_config, shipped_configs
from .context import Log, read_step_json, silent
from .paper import EXPERIMENTS, PAPER, best_method
from .report import html_page, markdown_page
from .runner import data_origin, run_experiment

DATASETS = {"fashion_sc": ("fashion-mnist",), "asirra_sc": ("asirra",), "mnist_sc": ("mnist",),
            "cifar_sc": ("cifar10",), "mnist_asirra_mca": ("mnist", "asirra"), "mnist_cifar_mca": ("mnist", "cifar10")}
"""The data sets each experiment of the paper used, as :func:`lsalsa.data.list_sources` names them."""


def check_names(names: Sequence[str] | None) -> list[str]:
    """The experiments to run (default all six), each a shipped config: one line naming the rest."""
    names = list(EXPERIMENTS if not names else names)
    unknown = [n for n in names if n not in PAPER]
    if unknown:
        raise LsalsaError(f"--only: unknown experiment(s) {unknown}; the paper's are {list(EXPERIMENTS)}")
    missing = [n for n in names if n not in shipped_configs()]
    if missing:
        raise LsalsaError(f"experiment(s) {missing} have no shipped config in this version of lsalsa "
                          f"(see `lsalsa configs`); run the others with --only")
    return names


def experiment_overrides(name: str, overrides: Sequence[str], names: Sequence[str]) -> list[str]:
    """The ``--set`` values for experiment ``name``: every plain ``key=value``, and the
    ``name:key=value`` ones addressed to it (e.g. ``mnist_cifar_mca:train.epochs=5``), in the
    order given. A prefix that names no experiment of the run is an error."""
    out = []
    for item in overrides:
        key = item.split("=", 1)[0]
        if ":" not in key:
            out.append(item)
            continue
        target, rest = item.split(":", 1)
        if target not in names:
            raise LsalsaError(f"--set {item}: {target!r} is not an experiment of this run ({', '.join(names)})")
        if target == name:
            out.append(rest)
    return out


def reproduce(names: Sequence[str] | None = None, *, out: str | Path = "runs/reproduce", scale: float | None = None,
              overrides: Sequence[str] = (), progress: bool = False, log: Log = silent) -> Path:
    """Run the experiments ``names`` (default all) at ``scale`` (``data.scale``, None: each
    config's own), each with the ``overrides`` that :func:`experiment_overrides` gives it, into ``out/<name>`` and write ``out/reproduction.md`` and ``.html``; returns
    the markdown's path."""
    names = check_names(names)
    configs = {n: load_config(n, experiment_overrides(n, overrides, names) + ([f"data.scale={scale}"] if scale is not None
                                                                             else [])) for n in names}
    out = Path(out)
    for n, c in configs.items():  # the data first: a missing data set fails before the long steps
        run_experiment(c, out / n, until="data", progress=progress, log=log)
    t0 = time.perf_counter()
    for n, c in configs.items():
        log(f"[reproduce] {n}")
        run_experiment(c, out / n, until="report", progress=progress, log=log)
    log(f"[reproduce] {len(names)} experiment(s) in {time.perf_counter() - t0:.0f} s")
    return write_reproduction(out, names, scale)


def _rows(run_dir: Path) -> list[dict]:
    import csv

    with open(run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            try:
                r[k] = int(v) if k == "T" else float(v)
            except (TypeError, ValueError):
                pass
    return rows


def _stand_ins(name: str, run_dir: Path) -> list[str]:
    """The paper's data sets this run did not use (it ran on a stand-in), from ``data.npz``."""
    from .context import load_step

    used = {part.split()[0] for part in data_origin(load_step(run_dir / "data.npz"))}
    return [d for d in DATASETS[name] if d not in used]


def _iteration_verdict(relation: str, k: int, ours: dict[str, Any] | None) -> tuple[str, str]:
    """(our count as text, verdict) of one "needs k iterations" claim."""
    if not ours:
        return "-", "not comparable (no LSALSA at T = 1)"
    if ours.get("iterations") is None:
        return ours.get("note", "not reached"), "reproduced"  # more than the budget: a longer lead
    n = ours["iterations"]
    return str(n), "reproduced" if (n > k if relation == ">" else n >= k) else "not reproduced"


def _class_key(i: int, rows: list[dict]) -> str | None:
    """The result column of source i's classification error (``class_error`` for a single
    source or the first when there is no per-source column)."""
    for key in (f"class_error_{i}", "class_error" if i == 1 else None):
        if key and any(key in r and isinstance(r[key], float) for r in rows):
            return key
    return None


def _probe_errors(run_dir: Path) -> dict[str, float]:
    """``{result key: the probe's error [%] on the optimal codes}`` of a run (``probes.json``)."""
    path = run_dir.joinpath(*SUMMARY)
    if not path.exists():
        return {}
    summary = read_step_json(path, is_summary, "the classification probes")
    return {p["key"]: float(p["optimal_error"]) for p in summary["probes"]}


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def changed_settings(name: str, run_dir: Path) -> list[str]:
    """``key = value`` for every config value of the run that is not the shipped config's
    (the scale and every ``--set``), so the page says how the run differs from the paper's
    protocol as shipped."""
    from .runner import read_run_config

    ran = _flat(read_run_config(run_dir / "config.json", "rerun the experiment").identity())
    shipped = _flat(load_config(name).identity())
    return [f"{k} = {ran[k]!r}" for k in ran if shipped.get(k) != ran[k]]


def _acceleration_line(acc: dict[str, Any]) -> str:
    """LSALSA's error at the smallest T, and what FISTA and SALSA take to reach it (iterations,
    time: paired per round with LSALSA's)."""
    ref = acc.get("reference")
    if not ref:
        return ""
    parts = [f"LSALSA at T = {ref['T']}: test code RMSE {ref['rmse']:.4g} in {ref['time_s']:.3g} s."]
    for name in ("fista", "salsa"):
        a = acc.get(name, {})
        if not a.get("iterations"):
            parts.append(f"{name.upper()}: {a.get('note', 'not run')}.")
            continue
        spread = f", paired per round {a['ratio_min']:.1f}x - {a['ratio_max']:.1f}x" if "ratio_min" in a else ""
        mu = f" (mu = {a['mu']:g})" if "mu" in a else ""
        parts.append(f"{name.upper()}{mu} needs "
                     f"{a['iterations']} iteration{'s' * (a['iterations'] != 1)}: {a['time_s']:.3g} s, {a['time_ratio']:.1f}x LSALSA's time{spread}.")
    return " ".join(parts)


FIGURES = (("error_vs_T.png", "code error vs T (Fig. 3/4/14)"),
           ("error_vs_time.png", "code error vs inference time (Fig. 12-19)"),
           ("class_error*_vs_time.png", "classification error vs inference time (Fig. 5/12-19)"),
           ("sparsity_vs_error*.png", "sparsity / accuracy clouds (Fig. 6/20)"),
           ("separation_T*.png", "separations (Fig. 7/21-25)"))
"""The figures of each run that the reproduction page shows (patterns in ``figures/``)."""


def experiment_section(name: str, run_dir: Path) -> dict[str, Any]:
    """One experiment's comparison: ``{"title", "stand_ins", "iterations": [...], "tables": [...],
    "claims": [(claim, paper, ours, verdict)]}``."""
    paper, rows = PAPER[name], _rows(run_dir)
    stand_ins = _stand_ins(name, run_dir)
    acc_path = run_dir / "results" / "acceleration.json"
    acc = read_step_json(acc_path, lambda v: isinstance(v, dict), "the acceleration") if acc_path.exists() else {}
    at_one = acc if acc.get("reference", {}).get("T") == 1 else {}
    not_comparable = f"not comparable (stand-in for {', '.join(stand_ins)})" if stand_ins else None
    claims = []
    for solver, (relation, k, source) in paper["iterations"].items():
        ours, verdict = _iteration_verdict(relation, k, at_one.get(solver) if at_one else None)
        words = "more than" if relation == ">" else ""
        claims.append((f"{solver.upper()} needs {words} {k} iterations to match LSALSA T = 1".replace("  ", " "),
                       f"{'>' if relation == '>' else ''}{k} ({source})", ours, not_comparable or verdict))
    probes = _probe_errors(run_dir)
    for i, (value, source) in paper.get("probe_error", {}).items():
        ours = probes.get(f"class_error_{i}", probes.get("class_error") if i == 1 else None)
        verdict = ("not comparable (source not classified)" if ours is None else
                   "reproduced" if ours <= value else "not reproduced")
        claims.append((f"the probe's error on the optimal codes of source {i}", f"{value:g}% ({source})",
                       "-" if ours is None else f"{ours:.2f}%", not_comparable or verdict))
    tables = []
    for i, (table_name, table) in paper["tables"].items():
        key = _class_key(i, rows)
        ours = {m: {r["T"]: r[key] for r in rows if r["method"] == m and isinstance(r.get(key), float)}
                for m in table} if key else {}
        Ts = sorted({T for col in table.values() for T in col} | {T for col in ours.values() for T in col})
        tables.append((table_name, i, table, ours, Ts))
        common = sorted({T for col in ours.values() for T in col} & {T for col in table.values() for T in col})
        if not common:
            claims.append((f"{table_name}: best classifier of source {i}", "-", "-", not_comparable or
                           "not comparable (no classification at a T of the paper's)"))
            continue
        T = common[0]
        theirs, mine = best_method(table, T), best_method({m: c for m, c in ours.items() if c}, T)
        claims.append((f"{table_name}: best classifier of source {i} at T = {T}", "/".join(theirs), "/".join(mine),
                       not_comparable or ("reproduced" if set(theirs) & set(mine) else "not reproduced")))
    return {"title": paper["title"], "stand_ins": stand_ins, "tables": tables, "claims": claims,
            "changed": changed_settings(name, run_dir), "acceleration": _acceleration_line(acc)}


def _pages(sections: dict[str, dict], scale: float | None) -> tuple[str, list[str], list]:
    """Title, intro and the report sections (:func:`lsalsa.experiments.report.markdown_page`)."""
    intro = [f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `lsalsa reproduce"
             f"{'' if scale is None else f' --scale {scale:g}'}`. The paper's numbers: `lsalsa.experiments.paper`; "
             "the verdict rules: `lsalsa.experiments.reproduce`. An iteration claim is reproduced when our count is "
             "at least the paper's; a table's claim is the method the paper found best at the smallest T both have."]
    claims = [[name, *c] for name, s in sections.items() for c in s["claims"]]
    out = [("Claims", "One row per claim of the paper, with the experiment that tests it.", [(["experiment", "claim", "paper", "ours", "verdict"], claims)])]
    for name, s in sections.items():
        text = (f"Run: {name}/ (its own report: {name}/report.md)."
                + (f" Stand-in data for {', '.join(s['stand_ins'])}." if s["stand_ins"] else "")
                + (f" Settings changed from the shipped config: {'; '.join(s['changed'])}." if s["changed"] else "")
                + (f" {s['acceleration']}" if s["acceleration"] else ""))
        tables = []
        for table_name, i, paper, ours, Ts in s["tables"]:
            header = [f"T ({table_name}, source {i}: paper / ours)"] + [m.upper() for m in paper]
            tables.append((header, [[str(T)] + [f"{_num(paper[m].get(T))} / {_num(ours.get(m, {}).get(T))}"
                                                for m in paper] for T in Ts]))
        out.append((s["title"], text, tables))
    return "Reproduction of LSALSA (Section 6 and the supplement)", intro, out


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def write_reproduction(out: Path, names: Sequence[str], scale: float | None) -> Path:
    """``out/reproduction.md`` and ``.html`` from the finished runs ``out/<name>``; the figures
    they show are copied into ``out/figures/``."""
    sections, figures = {}, {}
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name in names:
        run_dir = out / name
        if not (run_dir / "results.csv").exists():
            raise LsalsaError(f"{run_dir}: no results.csv; run `lsalsa reproduce --only {name}` to finish it")
        sections[name] = experiment_section(name, run_dir)
        for pattern, caption in FIGURES:
            for fig in sorted((run_dir / "figures").glob(pattern)):
                shutil.copyfile(fig, out / "figures" / f"{name}_{fig.name}")
                figures[f"figures/{name}_{fig.name}"] = f"{name}: {caption} ({fig.stem})"
    title, intro, page = _pages(sections, scale)
    figs = list(figures.items())
    write_json(out / "reproduction.json", {n: {"claims": s["claims"], "stand_ins": s["stand_ins"], "changed": s["changed"]}
                                           for n, s in sections.items()})
    write_text(out / "reproduction.html", html_page(title, intro, page, figs, out))
    md = markdown_page(title, intro, page, figs)
    return write_text(out / "reproduction.md", md)
