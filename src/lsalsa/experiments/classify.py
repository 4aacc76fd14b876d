"""The classification probes of a run: every source's codes classified (Tables 1-8).

Section 6.1: a logistic regression is trained on the *optimal* codes of the test images, then
asked to recognise each method's estimates of them, so that its error measures only how far the
estimates are from the optimal codes; the paper trains it to 0% (Fashion-MNIST) / 0.5% (ASIRRA)
error on the optimal codes; here its regularisation is relaxed (:data:`PROBE_C`) until its error on
the optimal codes is at most :data:`TARGET_ERROR`, and that error is reported next to the tables. An image's feature
is the codes of all its patches, concatenated (9 x 100 for a 32x32 Fashion-MNIST image,
196 x 256 = 50,176 for ASIRRA, 49 x 1024 for ASIRRA in the mixtures, one 1024-code for a whole
MNIST digit in the mixtures); features longer than :data:`PROJECT_ABOVE` (ASIRRA's) go through a
random Gaussian projection to :data:`PROJECTION_DIM` = 500 dimensions first, as the paper's do.

In a mixture (Section 6.2, Supplement H) each source has its own probe on its own codes
``x_i`` (result key ``class_error_<i>``, i from 1); a single-dictionary run has one
(``class_error``). A source without class labels (the natural-photo stand-in) is not classified,
and the report says so.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..evaluation import CodeClassifier, image_features
from ..problem import LassoProblem
from .config import ExperimentConfig
from .context import RunContext, read_step_json
from .signals import data_origin

PROJECT_ABOVE = 10_000  # features longer than this are projected (ASIRRA's 50,176; not the 900 or 1024 of the others)
PROJECTION_DIM = 500
PROBE_C = (10.0, 1e3, 1e5)  # the logistic regression's inverse regularisation, tried in turn
TARGET_ERROR = 0.5  # [%] on the optimal codes: the paper's 0% (Fashion-MNIST) / 0.5% (ASIRRA)
SUMMARY = ("probes.json",)  # in the run directory


@dataclass
class SourceProbe:
    """One source's probe: ``features(X) -> (n_images, F)`` from a method's test codes
    ``X: (P, N)``, the images' ``labels (n_images,)`` and the classifier fitted on the optimal codes."""
    key: str
    source: str
    features: Callable[[torch.Tensor], np.ndarray]
    labels: np.ndarray
    classifier: CodeClassifier

    def describe(self) -> dict[str, Any]:
        n_features = self.classifier.model.n_features_in_
        return {"key": self.key, "source": self.source, "n_images": len(self.labels),
                "n_classes": int(len(np.unique(self.labels))), "n_features": int(
                    self.classifier.projection.n_features_in_ if self.classifier.projection else n_features),
                "projected_to": int(n_features) if self.classifier.projection else None,
                "optimal_error": self.classifier.train_error, "C": self.classifier.C}


class Probes:
    """Every classified source's probe; calling it on a method's test codes ``X: (P, N)`` gives
    ``{key: classification error [%]}``. ``skipped``: ``{source, why}`` of sources not classified."""

    def __init__(self, probes: list[SourceProbe], skipped: list[dict[str, str]]):
        self.probes, self.skipped = probes, skipped

    def __call__(self, X: torch.Tensor) -> dict[str, float]:
        return {p.key: p.classifier.error(p.features(X), p.labels) for p in self.probes}

    def summary(self) -> dict[str, list]:
        """What the report says about the probes (``probes.json`` in the run directory)."""
        return {"probes": [p.describe() for p in self.probes], "skipped": self.skipped}


def _fit(key: str, source: str, features: Callable[[torch.Tensor], np.ndarray], labels: np.ndarray,
         X_star: torch.Tensor, seed: int) -> SourceProbe | dict[str, str]:
    """A source's probe fitted on the optimal codes, or why it is not classified."""
    if len(labels) == 0 or labels.min() < 0:
        return {"source": source, "why": "its test images have no class labels"}
    if len(np.unique(labels)) < 2:
        return {"source": source, "why": f"its {len(labels)} test images hold one class only"}
    F = features(X_star)
    dim = PROJECTION_DIM if F.shape[1] > PROJECT_ABOVE else F.shape[1]
    fits = []
    for C in PROBE_C:  # weaker regularisation until the probe recognises the optimal codes
        fits.append(CodeClassifier(max_dim=dim, C=C, seed=seed).fit(F, labels))
        if fits[-1].train_error <= TARGET_ERROR:
            break
    return SourceProbe(key, source, features, labels, min(fits, key=lambda f: f.train_error))


def _mixture_source(problem: LassoProblem, arrays: dict[str, np.ndarray], i: int
                    ) -> tuple[Callable[[torch.Tensor], np.ndarray], np.ndarray]:
    """Source i's features (its codes x_i of each test image's patches, in patch order) and labels."""
    k = max(1, int(arrays["patches_per_image"][i]))
    lo = sum(problem.dict_sizes[:i])
    hi = lo + problem.dict_sizes[i]
    order = np.argsort(arrays["index"][i], kind="stable")

    def features(X: torch.Tensor) -> np.ndarray:
        return X[:, lo:hi].cpu().numpy()[order].reshape(len(order) // k, -1)

    return features, arrays["labels"][i][order][::k]


def _source_names(c: ExperimentConfig, arrays: dict[str, np.ndarray]) -> list[str]:
    """The config's sources as the report names them: a stand-in says what it stands in for."""
    used = {info["stand_in_for"]: part.split()[0] for part, info in data_origin(arrays).items()
            if info.get("stand_in_for")}
    return [f"{used[n]} (stand-in for {n})" if n in used else n
            for n in ([c.data.source] if c.data.kind == "patches" else c.data.sources)]


def build_probes(c: ExperimentConfig, problem: LassoProblem, arrays: dict[str, np.ndarray],
                 X_star: torch.Tensor) -> Probes | None:
    """The probes of a run, fitted on the optimal test codes ``X_star: (P, N)``; None when the
    config does not classify (``methods.classify = false``)."""
    if not c.methods.classify:
        return None
    names = _source_names(c, arrays)
    if c.data.kind == "patches":
        labels, image = arrays["labels"], arrays["image"]
        fitted = [_fit("class_error", names[0],
                       lambda X: image_features(X.cpu().numpy(), image, len(labels)), labels, X_star, c.seed)]
    else:
        fitted = [_fit(f"class_error_{i + 1}", name, *_mixture_source(problem, arrays, i), X_star, c.seed)
                  for i, name in enumerate(names)]
    return Probes([p for p in fitted if isinstance(p, SourceProbe)], [p for p in fitted if isinstance(p, dict)])


def summary_path(run: RunContext) -> Path:
    return run.path(*SUMMARY)


def is_summary(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("probes"), list) and isinstance(value.get("skipped"), list)
            and all(isinstance(p, dict) and isinstance(p.get("key"), str) and isinstance(p.get("optimal_error"),
                                                                                          (int, float))
                    for p in value["probes"]))


def report_tables(run: RunContext, rows: list[dict]) -> tuple[list[tuple[str, str, str]], str]:
    """``(key, column label, text)`` of each classification table of the report, one per
    classified source, with the probe's own error on the optimal codes; and a line naming the
    sources not classified, and why ("" when none)."""
    path = summary_path(run)
    if not path.exists():
        return [], ""
    summary = read_step_json(path, is_summary, "the classification probes")
    out = []
    for p in summary["probes"]:
        if not any(p["key"] in r for r in rows):
            continue
        proj = (f", features randomly projected from {p['n_features']} to {p['projected_to']} dimensions"
                if p.get("projected_to") else f", {p['n_features']} features")
        out.append((p["key"], f"{p['source']} codes",
                    f"Logistic regression trained on the optimal test codes of {p['source']} ({p['n_classes']} "
                    f"classes{proj}; {p['n_images']} labelled test images), applied to each method's codes. The "
                    f"probe's own error on the optimal codes: {p['optimal_error']:.2f}% (the paper trains it to 0% / "
                    f"0.5%)."))
    skipped = "; ".join(f"{s['source']}: {s['why']}" for s in summary["skipped"])
    return out, f"Not classified: {skipped}." if skipped else ""
