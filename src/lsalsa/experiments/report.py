"""Step 6 of a run: figures, tables and the report (``report.md`` and a self-contained
``report.html``)."""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import plots
from ..files import write_text
from ..methods import METHODS
from ..problem import LassoProblem
from .config import ExperimentConfig
from .classify import report_tables
from .context import RunContext, load_step, read_step_json
from .learned import learned_section
from .timing import is_acceleration





def _table(rows: list[dict], value: str, fmt: str) -> tuple[list[str], list[list[str]]]:
    """A method x T table of ``value``: header and rows (T down, methods across, as Tables 1-8)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    Ts = sorted({r["T"] for r in rows})
    cell = {(r["method"], r["T"]): r.get(value) for r in rows}
    # a learned encoder that kept its initial weights (the truncated solver) is marked
    kept = {(r["method"], r["T"]) for r in rows if r.get("best_epoch") == 0}
    body = [[str(T)] + [("-" if cell.get((m, T)) is None else format(cell[(m, T)], fmt) + ("*" if (m, T) in kept else ""))
                        for m in methods] for T in Ts]
    return ["T"] + [_label(m) for m in methods], body


def _spread_table(rows: list[dict], of: str = "time") -> tuple[list[str], list[list[str]]]:
    """The ``min - max`` over the timing rounds of ``of`` ("time": seconds, "ratio": the paired
    ratio to LSALSA), as a method x T table."""
    low, high = ("time_min", "time_max") if of == "time" else ("ratio_min", "ratio_max")
    cells = [{**r, "cell": f"{r[low]:.3g} - {r[high]:.3g}"} for r in rows if low in r]
    header, body = _table(cells, "cell", "s")
    header[0] = f"T ({of}: min - max)"
    return header, body


def _label(method: str) -> str:
    return METHODS[method].label if method in METHODS else method


def _figures(run: RunContext, problem: LassoProblem, rows: list[dict], arrays: dict[str, np.ndarray]
             ) -> list[tuple[str, str]]:
    """Every figure of the report, written into ``figures/``: ``(path in the run, caption)``."""
    c, fig_dir = run.config, run.path("figures")
    fig_dir.mkdir(exist_ok=True)
    figs = []

    def save(fig, name, caption):
        plots.save(fig, fig_dir / name)
        figs.append((f"figures/{name}", caption))

    save(plots.plot_curves(rows, "T", "rmse", title=c.name), "error_vs_T.png", "Code error vs T (Fig. 3/4/14)")
    save(plots.plot_curves(rows, "time_s", "rmse", title=c.name), "error_vs_time.png", "Code error vs inference time")
    for key in dict.fromkeys(k for r in rows for k in r if k.startswith("class_error")):  # one per classified source
        save(plots.plot_curves(rows, "time_s", key, title=c.name, logy=False), f"{key}_vs_time.png",
             f"Classification error of the probe ({key}) vs inference time (Fig. 5/12/13/15/17/19)")
    sources = list(c.data.sources) if c.data.kind == "mixture" else []
    for suffix in [""] + [f"_{i + 1}" for i in range(problem.n_dicts if problem.n_dicts > 1 else 0)]:
        clouds = {}
        for r in rows:
            f = run.path("results", f"{r['method']}_T{r['T']}.npz")
            if f.exists():
                z = load_step(f, ("sparsity", "rmse"))  # per source: written by mixture runs of this version
                if f"sparsity{suffix}" in z:
                    clouds[(r["method"], r["T"])] = (z[f"sparsity{suffix}"], z[f"rmse{suffix}"])
        if clouds:
            of = (f"source {suffix[1:]}" + (f" ({sources[int(suffix[1:]) - 1]})" if len(sources) >= int(suffix[1:]) else "")
                  if suffix else "")
            save(plots.plot_sparsity_vs_error(clouds, title=f"{c.name} {of}".strip()), f"sparsity_vs_error{suffix}.png",
                 f"Per-sample sparsity vs code error{' of ' + of + ' codes' if of else ''}, one panel per T (Fig. 6/20)")
    side = int(round(np.sqrt(problem.n_features)))
    for i, A in enumerate(problem.dictionaries()):
        save(plots.plot_atoms(A.cpu().numpy(), (side, side), title=f"dictionary {i + 1}"), f"atoms_{i + 1}.png",
             f"Atoms of dictionary {i + 1} (Fig. 8-11)")
    if "C_test" in arrays:
        for T in c.methods.T:
            grid, labels = _reconstruction_grid(run, problem, rows, arrays, T, side)
            if grid:
                save(plots.plot_images(grid, labels, title=f"separated sources, T = {T}"), f"separation_T{T}.png",
                     f"Mixtures, true sources and each method's separated sources A_i x_i at T = {T} (Fig. 7)")
    return figs


def _reconstruction_grid(run: RunContext, problem: LassoProblem, rows: list[dict], arrays: dict[str, np.ndarray],
                         T: int, side: int, n_show: int = 6) -> tuple[list[list[np.ndarray]], list[str]]:
    """Rows of pictures: mixtures, true sources, then each method's separated sources at T."""
    shape = (side, side)
    grid = [[y.reshape(shape) for y in arrays["Y_test"][:n_show]]]
    labels = ["mixture"]
    for i, comp in enumerate(arrays["C_test"]):
        grid.append([y.reshape(shape) for y in comp[:n_show]])
        labels.append(f"true {i + 1}")
    for r in rows:
        if r["T"] != T:
            continue
        X_head = load_step(run.path("results", f"{r['method']}_T{T}.npz"), ("X_head",))["X_head"]
        X = torch.from_numpy(X_head[:n_show]).to(problem.device, problem.dtype)
        for i, s in enumerate(problem.reconstruct(X)):
            grid.append([y.reshape(shape) for y in s.cpu().numpy()])
            labels.append(f"{_label(r['method'])} {i + 1}")
    return grid, labels


def _separation_section(c: ExperimentConfig, separation: list[dict]) -> tuple[str, str, list]:
    s = c.separation
    stride = s.stride or max(1, c.data.patch_size // 4)
    text = (f"A {s.size}x{s.size} picture of MNIST test digits laid over a crop of the held-out photo "
            f"'{s.photo}' (separation/mixture.png), split by lsalsa.separate_image with {c.data.patch_size}x"
            f"{c.data.patch_size} patches at stride {stride}, overlaps averaged. PSNR of each separated source "
            f"against the true one (sources in [0, 1]); time to separate the picture (one run after a "
            f"warm-up). Each method's model file: models/<method>_T<T>.model (`lsalsa separate`).")
    tables = [_table(separation, "psnr_digits", ".2f"), _table(separation, "psnr_photo", ".2f"),
              _table(separation, "time_s", ".3g")]
    for (header, _), what in zip(tables, ("PSNR digits [dB]", "PSNR photo [dB]", "time [s]")):
        header[0] = f"T ({what})"
    return ("Whole-picture separation", text, tables)


def _separation_figures(separation: list[dict]) -> list[tuple[str, str]]:
    """The separated picture of each learned method at its largest T (and the solvers' at it)."""
    T = max(r["T"] for r in separation)
    return [(f"separation/{r['method']}_T{T}/separation.png",
             f"{_label(r['method'])} at T = {T}: mixture | separated digits | separated "
             f"photo | residual; bottom row: the true sources") for r in separation if r["T"] == T]


def _versions() -> str:
    import matplotlib
    import scipy
    import sklearn

    from .. import __version__
    cpu = platform.processor() or platform.machine()
    return (f"lsalsa {__version__}, torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
            f"scikit-learn {sklearn.__version__}, matplotlib {matplotlib.__version__}, Python {platform.python_version()}; "
            f"{platform.system()} {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")


Section = tuple[str, str, list]  # (title, text, [(header, body) of each table])


def _sections(c: ExperimentConfig, problem: LassoProblem, rows: list[dict], n_test: int,
              acc: dict[str, Any] | None, classification: list[Section] = ()) -> list[Section]:
    """The report's tables, in order; ``classification``: :func:`_classification`'s."""
    sections: list[Section] = []
    sections.append(("Code error (RMSE against the optimal codes)", "code RMSE = sqrt(mean over test signals and atoms of (x - x*)^2)"
                     "; * marks a learned encoder that kept its initial weights (training never beat the truncated "
                     "solver on the validation split)",
                     [_table(rows, "rmse", ".4g")]))
    loads = [r["load"] for r in rows if isinstance(r.get("load"), float) and r["load"] == r["load"]]
    busy = (f"; LOAD WAS HIGH while timing: the 1-minute load average reached {max(loads):.1f} per core (other work "
            "shared the cores), so these times are inflated and noisy" if loads and max(loads) > 1 else "")
    rounds = (f"median of {c.methods.repeats} interleaved rounds (every method and T once per round, the order "
              "rotated each round), with min - max" if any(r.get("timed") == "interleaved" for r in rows) else "median")
    sections.append((f"Inference time [s] ({rounds.split(' (')[0]}, whole test set)",
                     f"{n_test} test signals; {rounds}; the solvers' operators (S, 1/L) prepared once, as the "
                     f"encoders' weights are{busy}", [_table(rows, "time_s", ".3g")]
                     + ([_spread_table(rows)] if any("time_min" in r for r in rows) else [])))
    if any("time_ratio" in r for r in rows):
        sections.append(("Inference time relative to LSALSA at the same T", "per round, the method's time divided by "
                         "LSALSA's in the same round (a paired ratio: a slow round slows both); median over the "
                         "rounds, min - max in the second table", [_table(rows, "time_ratio", ".3g"),
                                                                   _spread_table(rows, "ratio")]))
    if any("setup_s" in r for r in rows):
        sections.append(("Set-up time [s] of the solvers (median)", "preparing a solver's operators once for its "
                         "dictionary and mu (SALSA: S = (mu I + A^T A)^-1; FISTA: 1/L and I - A^T A / L), not part "
                         "of the inference time", [_table([r for r in rows if "setup_s" in r], "setup_s", ".3g")]))
    sections += classification
    if any("psnr_1" in r for r in rows):
        text = "PSNR of A_i x_i against each true source y_i (sources in [0, 1]), one table per source"
        if any(r.get(f"psnr_{i + 1}", 0) < 0 for r in rows for i in range(problem.n_dicts)):
            text += ("; a negative PSNR is an error larger than the source itself: one iteration of truncated SALSA "
                     "from x = A^T y (Algorithm 2) overshoots the codes by far (compare its code error)")
        tables = [_table(rows, f"psnr_{i + 1}", ".2f") for i in range(problem.n_dicts)]
        names = list(c.data.sources) if c.data.kind == "mixture" and len(c.data.sources) == problem.n_dicts else ()
        for i, (header, _) in enumerate(tables):
            header[0] = f"T (source {i + 1}{': ' + names[i] if names else ''})"
        sections.append(("Separated sources: PSNR [dB]", text, tables))
    sections.append(("Sparsity (fraction of zero code entries)", "", [_table(rows, "sparsity", ".3f")]))
    if acc:
        ref = acc["reference"]
        lines = [f"LSALSA at T = {ref['T']}: test RMSE {ref['rmse']:.4g} in {ref['time_s']:.3g} s."]
        for name in ("fista", "salsa"):
            a = acc.get(name, {})
            if a.get("iterations"):
                at = f" (mu = {a['mu']:g})" if "mu" in a else ""
                paired = (f" (paired per round, min {a['ratio_min']:.1f}x, max {a['ratio_max']:.1f}x)"
                          if "ratio_min" in a else "")
                lines.append(f"{name.upper()}{at} needs {a['iterations']} iteration{'s' * (a['iterations'] != 1)} to reach it: {a['time_s']:.3g} s, "
                             f"{a['time_ratio']:.1f}x LSALSA's time{paired}.")
            else:
                lines.append(f"{name.upper()}: {a.get('note', 'n/a')}.")
        sections.append(("Acceleration", " ".join(lines), []))
    return sections


def _classification(run: RunContext, rows: list[dict]) -> list[Section]:
    """The classification error of each classified source's codes, with its probe's own error on
    the optimal codes (:mod:`lsalsa.experiments.classify`)."""
    tables, skipped = report_tables(run, rows)
    if not tables:
        return [("Classification error [%]", skipped, [])] if skipped else []
    out = []
    for key, label, text in tables:
        header, body = _table(rows, key, ".2f")
        header[0] = f"T ({label})"
        out.append((header, body))
    return [("Classification error [%]", " ".join([t for _, _, t in tables] + [skipped]).strip(), out)]


def _provenance(run: RunContext, arrays: dict[str, np.ndarray], codes_facts: dict[str, dict] | None) -> Section:
    """Where the data came from (a subset said so), whether the optimal codes converged, and the
    device: what a reader needs before trusting the tables."""
    from .runner import data_origin

    c, lines = run.config, []
    for part, info in data_origin(arrays).items():
        origin = info.get("origin")
        where = ", ".join(origin) if isinstance(origin, list) else str(origin)
        subset = " SUBSET, not the full data set: " + info["note"] if info.get("full") is False and "note" in info else (
            " (a subset)" if info.get("full") is False else "")
        stand_in = f" Read as the {info['note']}." if info.get("stand_in_for") else ""
        lines.append(f"Data {part}: {where}.{subset}{stand_in}")
    for split, f in (codes_facts or {}).items():
        state = "all converged" if f.get("all_converged", True) else (
            "NOT all converged (kept because codes.allow_unconverged is true)")
        lines.append(f"Optimal codes of the {split} signals ({c.codes.solver}, tol={c.codes.tol:g}): {state}; largest "
                     f"KKT violation {f.get('max_kkt_violation', float('nan')):.3g}, at most {f.get('max_n_iter', '?')} "
                     f"iterations.")
    lines.append(f"Computed on {run.device}.")
    return ("Data, optimal codes and device", " ".join(lines), [])


def markdown_page(title: str, intro: list[str], sections: list[Section], figs: list[tuple[str, str]],
                  appendix: tuple[str, str] | None = None) -> str:
    """A page in markdown: title, intro paragraphs, the sections with their tables, the figures
    (paths relative to the page) and an optional ``(heading, preformatted text)`` appendix."""
    md = [f"# {title}", ""]
    for line in intro:
        md += [line, ""]
    for heading, text, tables in sections:
        md += [f"## {heading}", "", text, ""]
        for header, body in tables:
            md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            md += ["| " + " | ".join(r) + " |" for r in body]
            md.append("")
    if figs:
        md += ["## Figures", ""] + [f"![{cap}]({p})\n\n{cap}\n" for p, cap in figs]
    if appendix:
        md += [f"## {appendix[0]}", "", "```json", appendix[1], "```", ""]
    return "\n".join(md)


def html_page(title: str, intro: list[str], sections: list[Section], figs: list[tuple[str, str]], root: Path,
              appendix: tuple[str, str] | None = None) -> str:
    """The same page in one self-contained HTML file (figures, relative to ``root``, inlined)."""
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
         "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>",
         f"<h1>{html.escape(title)}</h1>"] + [f"<p>{html.escape(line)}</p>" for line in intro]
    for heading, text, tables in sections:
        h.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>")
        for header, body in tables:
            h.append("<table><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in header) + "</tr>")
            h += ["<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>" for r in body]
            h.append("</table><br>")
    if figs:
        h.append("<h2>Figures</h2>")
    for p, cap in figs:
        b64 = base64.b64encode((root / p).read_bytes()).decode()
        h.append(f"<figure><img src='data:image/png;base64,{b64}'><figcaption>{html.escape(cap)}</figcaption></figure>")
    if appendix:
        h.append(f"<h2>{html.escape(appendix[0])}</h2><pre>{html.escape(appendix[1])}</pre>")
    return "\n".join(h + ["</body></html>"])


def _page(c: ExperimentConfig) -> tuple[str, list[str], tuple[str, str]]:
    """The report's title, intro and configuration appendix."""
    return (f"lsalsa report: {c.name}", [c.description, f"Generated {time.strftime('%Y-%m-%d %H:%M')}. {_versions()}"],
            ("Configuration", json.dumps(c.to_dict(), indent=2)))


def write_report(run: RunContext, problem: LassoProblem, rows: list[dict], arrays: dict[str, np.ndarray],
                 X_test: Any, separation: list[dict] | None = None, codes_facts: dict[str, dict] | None = None) -> Path:
    """Write ``results.csv``, figures, ``report.md`` and ``report.html``; returns the html path.

    ``X_test``: the optimal codes of the test signals; ``separation``: the rows of the
    whole-picture separation step (mixture experiments); ``codes_facts``: what the codes step
    reported per split (convergence)."""
    run.log("[report] figures and report")
    table = io.StringIO(newline="")
    w = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    w.writeheader()
    w.writerows(rows)
    write_text(run.path("results.csv"), table.getvalue())
    acc_path = run.path("results", "acceleration.json")
    acc = read_step_json(acc_path, is_acceleration, "the acceleration of the report") if acc_path.exists() else None
    figs = _figures(run, problem, rows, arrays)
    sections = [_provenance(run, arrays, codes_facts)] + _sections(run.config, problem, rows, len(arrays["Y_test"]), acc,
                                                                  _classification(run, rows))
    if separation:
        sections.append(_separation_section(run.config, separation))
        figs += _separation_figures(separation)
    learned, learned_figs = learned_section(run, problem, arrays, X_test)
    if learned:
        sections.append(learned)
        figs += learned_figs
    title, intro, appendix = _page(run.config)
    write_text(run.path("report.md"), markdown_page(title, intro, sections, figs, appendix))
    return write_text(run.path("report.html"), html_page(title, intro, sections, figs, run.run_dir, appendix))
