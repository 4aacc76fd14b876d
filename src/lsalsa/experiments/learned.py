"""The report's "What LSALSA learned" section and ``lsalsa analyze``: Section 5 of the paper
(:mod:`lsalsa.analysis`) measured on a run's trained LSALSA encoders, per T.

For each ``models/lsalsa_T<T>.pt``: the learned curvature ``P`` (spectrum, ``||P|| / ||mu I +
A^T A||``, the dictionaries' coupling), Theorem 2's ``beta_hat / beta``, the Theorem 1 check on
the test signals and Eq. 30's descent against the plain one. Written to ``results/analysis.json``
and two figures; where the layers differ (untied ``S``), each figure shows every layer and the
table the range over the layers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import analysis, plots
from ..encoders import load_encoder
from ..files import directory_lock, write_json
from ..problem import LassoProblem
from .context import RunContext, read_step_json

N_SIGNALS = 500
"""Test signals the Theorem 1 check and the descent curves use (the first ones)."""
STEPS = (5, 20)
"""The descent steps the table reports."""


def analyze_encoder(encoder: torch.nn.Module, problem: LassoProblem, Y: Any, X_star: Any,
                    n_steps: int = max(STEPS)) -> dict[str, Any]:
    """Section 5's measurements of one LSALSA on signals ``Y: (B, M)`` with optimal codes
    ``X_star: (B, N)``, as a JSON-able dict (per-layer lists where the layers differ)."""
    cost = analysis.learned_cost(encoder, problem)  # S inverted once for the three measurements
    curv = analysis.learned_curvature(encoder, problem, cost=cost)
    check = analysis.theorem1_residual(encoder, problem, Y, cost=cost)
    desc = analysis.descent_comparison(encoder, problem, Y, X_star, n_steps=n_steps, cost=cost)
    ratio = np.asarray(curv.beta_hat) / np.asarray(curv.beta)
    return {
        "n_layers": encoder.n_layers, "tied": bool(encoder.tied), "n_signals": len(Y),
        "norm_ratio": np.atleast_1d(curv.norm_ratio).tolist(),
        "beta": np.atleast_1d(curv.beta).tolist(), "beta_hat": np.atleast_1d(curv.beta_hat).tolist(),
        "beta_ratio": np.atleast_1d(ratio).tolist(),
        "assumption_holds": bool(np.all(curv.assumption_holds)),
        "delta_beta": np.atleast_1d(curv.delta_beta).tolist(),
        "coupling": np.atleast_1d(curv.coupling).tolist(), "W_e_change": curv.W_e_change,
        "eigenvalues_over_norm": (np.atleast_2d(curv.eigenvalues)
                                  / (np.atleast_1d(curv.smooth)[:, None])).tolist(),
        "theorem1": {"x": check.x.tolist(), "x_field": check.x_field.tolist(), "u": check.u.tolist(),
                     "d": check.d.tolist(), "asymmetry": check.asymmetry.tolist(), "cond": check.cond.tolist(),
                     "readout_error": check.readout_error},
        "descent": {"step_size": desc.step_size, "rmse_plain": desc.rmse_plain.tolist(),
                    "rmse_learned": desc.rmse_learned.tolist(), "objective_plain": desc.objective_plain.tolist(),
                    "objective_learned": desc.objective_learned.tolist()},
    }


def analyze_models(run: RunContext, problem: LassoProblem, Y_test: Any, X_test: Any,
                   Ts: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """:func:`analyze_encoder` for each trained ``models/lsalsa_T<T>.pt`` of the run (all, or
    those of ``Ts``), on the first :data:`N_SIGNALS` test signals."""
    Y = torch.from_numpy(np.array(Y_test[:N_SIGNALS]))  # a copy: the arrays may be read-only memmaps
    X = torch.from_numpy(np.array(X_test[:N_SIGNALS]))
    out = {}
    for T in sorted(Ts if Ts is not None else _trained(run.path("models"))):
        path = run.path("models", f"lsalsa_T{T}.pt")
        if path.exists():
            run.log(f"[analysis] LSALSA T={T}")
            out[T] = analyze_encoder(load_encoder(path), problem, Y, X)
    return out


def _layers_of(path: Path) -> int | None:
    """T of a ``lsalsa_T<T>.pt`` / ``.model`` file name, else None."""
    tail = path.stem[len("lsalsa_T"):] if path.stem.startswith("lsalsa_T") else ""
    return int(tail) if tail.isdigit() else None


def _trained(models: Path) -> list[int]:
    return [T for T in map(_layers_of, models.glob("lsalsa_T*.pt")) if T is not None]


def _span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if lo == hi or len(values) == 1 else f"{lo:{fmt}}..{hi:{fmt}}"


def table(results: dict[int, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The per-T table of the section (and of ``lsalsa analyze``): ranges over the layers."""
    a, b = STEPS
    header = ["T", "norm(P) / norm(mu I + A^T A)", "beta_hat/beta", "Thm 2 (beta_hat>beta)", "coupling", "Thm 1 x-residual",
              "u, d residual", "S asymmetry", f"RMSE plain/Eq.30 @{a}", f"@{b}", f"gain @{a}", f"gain @{b}"]
    body = []
    for T, r in sorted(results.items()):
        th, de = r["theorem1"], r["descent"]
        p, l = de["rmse_plain"], de["rmse_learned"]
        body.append([str(T), _span(r["norm_ratio"], ".3g"), _span(r["beta_ratio"], ".4g"),
                     "yes" if r["assumption_holds"] else "no", _span(r["coupling"], ".2f"), f"{max(th['x']):.1e}",
                     f"{max(th['u'] + th['d']):.1e}", _span(th["asymmetry"], ".2g"),
                     f"{p[a]:.4g}/{l[a]:.4g}", f"{p[b]:.4g}/{l[b]:.4g}", f"{p[a] / l[a]:.2f}x", f"{p[b] / l[b]:.2f}x"])
    return header, body


TEXT = ("Section 5 of the paper measured on each trained LSALSA (tests: the first {n} test signals). P = S^-1 - "
        "(mu I + A^T A) is what training changed in the x-subproblem (0 at initialisation), relative to the "
        "original curvature; beta_hat / beta compares the convexity moduli in x of the learned and the original "
        "Augmented Lagrangian (Theorem 2 assumes beta_hat > beta; beta_hat <= 0 means the learned Lagrangian is not "
        "convex in x at that layer, so its x-update is a stationary point, not a minimiser); coupling is the share of ||P||_F^2 between "
        "different dictionaries. Theorem 1: each layer's x-update minimises the learned Lagrangian when S is "
        "symmetric; for an asymmetric learned S the x-residual is the skew part's share (the x-update still solves "
        "S^-1 x = W_e y + mu (u - d) exactly: x_field in results/analysis.json). Eq. 30: from the same start and "
        "step, the RMSE of the code after k gradient steps in x without and with the learned correction -P x; a "
        "gain above 1 means the learned direction is ahead. Ranges are over the layers (one S per layer).")


def _saved_analysis(path: Path, Ts: list[int], models: list[Path]) -> dict[int, dict[str, Any]] | None:
    """``results/analysis.json``'s analyses when it covers exactly the models ``Ts`` and is newer
    than every one of them, else None (they are analysed again)."""
    if not Ts or not path.exists() or path.stat().st_mtime <= max(m.stat().st_mtime for m in models):
        return None
    saved = read_step_json(path, lambda v: isinstance(v, dict), "the analysis of the trained LSALSA")
    return {int(T): r for T, r in saved.items()} if sorted(saved) == sorted(map(str, Ts)) else None


def learned_section(run: RunContext, problem: LassoProblem, arrays: dict[str, np.ndarray], X_test: Any
                    ) -> tuple[tuple[str, str, list] | None, list[tuple[str, str]]]:
    """The report's section, its figures (``(path in the run, caption)``) and
    ``results/analysis.json``; (None, []) when the run trained no LSALSA."""
    Ts, path = sorted(_trained(run.path("models"))), run.path("results", "analysis.json")
    results = _saved_analysis(path, Ts, [run.path("models", f"lsalsa_T{T}.pt") for T in Ts])
    if results is None:
        results = analyze_models(run, problem, arrays["Y_test"], X_test, Ts)
        if results:
            write_json(path, {str(T): r for T, r in results.items()})
    if not results:
        return None, []
    fig_dir, figs = run.path("figures"), []
    fig_dir.mkdir(exist_ok=True)
    spectra = {T: np.array(r["eigenvalues_over_norm"]) for T, r in results.items()}
    plots.save(plots.plot_spectra(spectra, title=run.config.name), fig_dir / "learned_curvature.png")
    figs.append(("figures/learned_curvature.png", "Spectrum of the learned curvature sym(P) / ||mu I + A^T A|| "
                 "per T (one line per layer): Eq. 19-20, 30"))
    curves = {T: (r["descent"]["rmse_plain"], r["descent"]["rmse_learned"]) for T, r in results.items()}
    plots.save(plots.plot_descent(curves, title=run.config.name), fig_dir / "learned_descent.png")
    figs.append(("figures/learned_descent.png", "Code RMSE per gradient step in x: the plain direction against "
                 "Eq. 30's learned one, from the same start and step, per T"))
    n = min(N_SIGNALS, len(arrays["Y_test"]))
    return ("What LSALSA learned (Section 5)", TEXT.format(n=n), [table(results)]), figs


def analyze_path(path: str | Path, log=print) -> dict[int, dict[str, Any]]:
    """``lsalsa analyze``: a run directory (every trained LSALSA) or one of its model files
    (``models/lsalsa_T<T>.pt`` or ``.model``); prints the table and returns the results."""
    from ..errors import LsalsaError
    from .context import resolve_device
    from .runner import read_run_config, step_codes, step_data, step_dictionary

    path = Path(path)
    run_dir, Ts = path, None
    if path.is_file():
        run_dir, T = path.parent.parent, _layers_of(path)
        if path.parent.name != "models" or T is None:
            raise LsalsaError(f"{path}: expected a run directory or its models/lsalsa_T<T>.pt (or .model)")
        Ts = [T]
    if not (run_dir / "config.json").is_file():
        raise LsalsaError(f"{run_dir}: not a run directory (no config.json)")
    config = read_run_config(run_dir / "config.json", "write it again: `lsalsa run CONFIG --out RUN_DIR`")
    run = RunContext(config, run_dir, log, False, resolve_device("cpu"))
    with directory_lock(run_dir):  # read what the steps cached, with no run writing meanwhile
        arrays = step_data(run)
        problem = step_dictionary(run, arrays)
        _, X_test, _ = step_codes(run, problem, arrays)
        results = analyze_models(run, problem, arrays["Y_test"], X_test, Ts)
    if not results:
        raise LsalsaError(f"{run_dir}: no trained LSALSA (models/lsalsa_T<T>.pt); run `lsalsa train` first")
    header, body = table(results)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    log("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in body:
        log("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    return results
