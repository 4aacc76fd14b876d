"""Figures from result rows (PNG). Each function takes tidy rows and returns a matplotlib Figure.

Rows are dicts such as ``{"method": "lsalsa", "T": 5, "time_s": 0.01, "rmse": 0.02, ...}``.
Method colours are fixed so that one method looks the same in every figure.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .methods import METHODS  # noqa: E402

METHOD_COLORS = {"fista": "tab:blue", "ista": "tab:cyan", "salsa": "tab:orange", "lista": "tab:green", "lsalsa": "black"}
AXIS_LABELS = {"T": "iterations / layers T", "time_s": "inference wall-clock time [s]", "rmse": "code RMSE",
               "class_error": "classification error [%]", "sparsity": "sparsity (fraction of zeros)"}


def _axis_label(key: str) -> str:
    """An axis title for a result column (``class_error_<i>``: source i's classification error)."""
    if key.startswith("class_error_") and key[len("class_error_"):].isdigit():
        return f"{AXIS_LABELS['class_error']} of source {key[len('class_error_'):]}"
    return AXIS_LABELS.get(key, key)


def _label(method: str) -> str:
    return METHODS[method].label if method in METHODS else method


def _by_method(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["method"], []).append(r)
    return out


def plot_curves(rows: Sequence[dict[str, Any]], x: str = "T", y: str = "rmse", *, title: str = "",
                logx: bool | None = None, logy: bool = True):
    """One line per method of ``y`` against ``x`` ("T" or "time_s"), as in Fig. 3/4/14/16/18."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, rs in _by_method(rows).items():
        rs = sorted((r for r in rs if r.get(x) is not None and r.get(y) is not None), key=lambda r: r[x])
        if not rs:
            continue
        ax.plot([r[x] for r in rs], [r[y] for r in rs], "o-", ms=4, label=_label(method),
                color=METHOD_COLORS.get(method))
    if logx if logx is not None else x == "time_s":
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(_axis_label(x))
    ax.set_ylabel(_axis_label(y))
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_sparsity_vs_error(clouds: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]], *, title: str = ""):
    """Point clouds of per-sample (sparsity, code RMSE), one panel per T, one colour per method
    (Fig. 6/20). ``clouds[(method, T)] = (sparsity: (P,), rmse: (P,))``."""
    Ts = sorted({T for _, T in clouds})
    fig, axes = plt.subplots(1, len(Ts), figsize=(3.2 * len(Ts), 3.2), squeeze=False, sharey=True)
    for ax, T in zip(axes[0], Ts):
        for (method, t), (s, e) in clouds.items():
            if t == T:
                ax.scatter(s, e, s=4, alpha=0.4, color=METHOD_COLORS.get(method), label=_label(method))
        ax.set_title(f"T = {T}")
        ax.set_xlabel(AXIS_LABELS["sparsity"])
        ax.set_yscale("log")
    axes[0][0].set_ylabel("per-sample code RMSE")
    axes[0][-1].legend(markerscale=3, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_images(grid: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str], col_labels: Sequence[str] = (),
                *, title: str = ""):
    """A grid of grayscale images; ``grid[i][j]`` is an (h, w) array (Fig. 7/21-25)."""
    n_rows, n_cols = len(grid), max(len(r) for r in grid)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols + 1, 1.3 * n_rows), squeeze=False)
    for i, row in enumerate(grid):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row):
                ax.imshow(np.clip(row[j], 0, 1), cmap="gray", vmin=0, vmax=1)
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
            if i == 0 and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_separation(mixture: np.ndarray, sources: Sequence[np.ndarray], names: Sequence[str], *,
                    truth: Sequence[np.ndarray] | None = None, title: str = ""):
    """Mixture | source 1 .. source D | residual side by side (Fig. 7 for whole pictures).

    Sources are shown on [0, 1] (their training units), the mixture on [0, its maximum], the
    residual ``mixture - sum(sources)`` on a symmetric diverging scale. ``truth`` adds a second
    row with the true sources.
    """
    sources = list(sources)
    residual = mixture - np.sum(sources, axis=0)
    rows = [[("mixture", mixture)] + list(zip(names, sources)) + [("residual", residual)]]
    if truth is not None:
        rows.append([("mixture", mixture)] + [(f"true {n}", t) for n, t in zip(names, truth)])
    n_cols = len(rows[0])
    h, w = mixture.shape
    size = 2.6 * min(1.0, max(w / h, 0.5))
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(size * n_cols, 2.8 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(row):
                ax.axis("off")
                continue
            label, img = row[j]
            if label == "residual":
                r = float(np.abs(img).max()) or 1.0
                im = ax.imshow(img, cmap="RdBu_r", vmin=-r, vmax=r)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            elif label == "mixture":
                ax.imshow(img, cmap="gray", vmin=0, vmax=max(float(img.max()), 1e-12))
            else:
                ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_atoms(A: np.ndarray, patch_shape: tuple[int, int], *, n_max: int = 100, title: str = ""):
    """Dictionary atoms (columns of ``A: (M, N)``) as image tiles, each scaled to its own range
    (Fig. 8-11)."""
    A = np.asarray(A)[:, :n_max]
    n = A.shape[1]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6 + 0.5, rows * 0.6 + 0.6), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(A[:, k].reshape(patch_shape), cmap="gray")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_spectra(spectra: dict[int, np.ndarray], *, title: str = ""):
    """The learned curvature's spectrum per T (Section 5): ``spectra[T]: (L, N)``, the ascending
    eigenvalues of ``sym(P)`` of each of L layers, already divided by ``||mu I + A^T A||``."""
    Ts = sorted(spectra)
    fig, axes = plt.subplots(1, len(Ts), figsize=(3.2 * len(Ts), 3.2), sharey=True, squeeze=False)
    for ax, T in zip(axes[0], Ts):
        eig = np.atleast_2d(spectra[T])
        for i, e in enumerate(eig):
            ax.plot(np.arange(1, len(e) + 1), e, lw=1, color=plt.cm.viridis(i / max(len(eig) - 1, 1)),
                    label=f"layer {i + 1}" if len(eig) > 1 and i in (0, len(eig) - 1) else None)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"T = {T}")
        ax.set_xlabel("eigenvalue index")
        ax.grid(True, alpha=0.3)
        if len(eig) > 1:
            ax.legend(fontsize=7)
    axes[0][0].set_ylabel("eig(sym P) / ||mu I + A^T A||")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_descent(curves: dict[int, tuple[Sequence[float], Sequence[float]]], *, title: str = ""):
    """Code RMSE per x-descent step (Eq. 30): ``curves[T] = (plain, learned)``, each ``(K + 1,)``;
    dashed the plain direction, solid the learned one, one colour per T."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (T, (plain, learned)) in enumerate(sorted(curves.items())):
        color = plt.cm.tab10(i % 10)
        ax.plot(plain, "--", color=color, lw=1, label=f"plain (T = {T})")
        ax.plot(learned, "-", color=color, lw=1.5, label=f"Eq. 30, P of T = {T}")
    ax.set_yscale("log")
    ax.set_xlabel("gradient steps in x")
    ax.set_ylabel(AXIS_LABELS["rmse"])
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def save(fig, path) -> None:
    """Write a figure as PNG and close it."""
    fig.savefig(path, dpi=110)
    plt.close(fig)
