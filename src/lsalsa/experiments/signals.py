"""Step 1's signals: which data set each source of a config is read from, and the training and
test signals of a patches or a mixture experiment built from them.

A config names its sources (``data.source``, or ``data.sources`` for a mixture); a source whose
files are not in the data directory is replaced by ``data.stand_in`` when the config names one
(the natural photos for ASIRRA or CIFAR-10), and is an error naming how to get it otherwise, before
anything is loaded. What was read, stand-ins and subsets included, is kept in ``origin`` for the
log and the report.

Test signals are whole test images (all their patches), so that an image's codes can be
concatenated for the classification probe (Section 6.1); in a mixture, every source with class
labels contributes whole test images too (the paper's 49 patches of each ASIRRA test image).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import data as lsdata
from ..data import mnist
from ..data.paths import FETCH_HINT, resolve_data_dir
from ..errors import LsalsaError
from .config import ExperimentConfig

FOLDER_SIZE = 224  # folder sources (ASIRRA) are read resized to 224x224 (Section 6.1)


@dataclass(frozen=True)
class Resolved:
    """A source of the config: the one it names, the one read (the same, or ``data.stand_in``)
    and, for a stand-in, why."""
    named: str
    used: str
    note: str = ""

    @property
    def labelled(self) -> bool:
        """Whether its labels are classes (an image folder's may still be -1: unlabelled)."""
        return self.used not in lsdata.SOURCES or lsdata.SOURCES[self.used].labelled


def resolve_sources(c: ExperimentConfig) -> list[Resolved]:
    """The config's sources in dictionary order, each found now (nothing loaded): a missing one
    is read from ``data.stand_in``, or is a one-line error naming how to get it; so is asking
    for more than MNIST's fallback subset holds (:func:`check_sizes`)."""
    d = c.data
    directory, _ = resolve_data_dir(d.data_dir or None)
    out = []
    for name in [d.source] if d.kind == "patches" else d.sources:
        if name not in lsdata.SOURCES:
            if not Path(name).expanduser().is_dir():
                raise LsalsaError(f"data: source {name!r} is neither a source name nor an image folder")
            out.append(Resolved(name, name))
            continue
        if lsdata.locate_source(name, d.data_dir or None) is not None:
            out.append(Resolved(name, name))
            continue
        hint = lsdata.SOURCES[name].hint.replace("DIR", str(directory))
        if not d.stand_in:
            raise LsalsaError(f"data: source {name!r} is not in the data directory {directory}: {hint}")
        out.append(Resolved(name, d.stand_in, f"stand-in for {name!r}, which is not in {directory} ({hint})"))
    check_sizes(c, out)
    return out


def check_sizes(c: ExperimentConfig, sources: list[Resolved]) -> None:
    """Fail at once, before reading it, when MNIST would come from its 5k fallback subset and
    cannot give the signals asked for (an upper bound: every patch of every image), naming
    ``lsalsa data fetch``."""
    d = c.data
    directory, explicit = resolve_data_dir(d.data_dir or None)
    for s in sources:
        if s.used != "mnist":
            continue
        for split, asked in (("train", c.scaled(d.n_train) if d.kind == "patches" else 0),
                             ("test", c.scaled(d.n_test))):
            n = mnist.fallback_size(split, directory, explicit)
            side = max(28, d.pad_to if d.kind == "patches" else d.patch_size)
            per_image = ((side - d.patch_size) // (d.stride or d.patch_size) + 1) ** 2
            if n is not None and asked > n * per_image:
                raise LsalsaError(f"data.n_{split}: {asked} signals asked for (after data.scale), MNIST's 5k "
                                  f"fallback subset has {n} {split} images ({n * per_image} signals at most); "
                                  f"`{FETCH_HINT.format(directory)}` fetches the full MNIST (or lower data.scale)")


def _load(c: ExperimentConfig, source: Resolved, split: str, n_signals: int, stride: int):
    """``(images, labels, info)`` of one split; a folder source reads only the images that
    ``n_signals`` patches need (a stack of ASIRRA's 25k images is 5 GB)."""
    limit = None
    if lsdata.SOURCES.get(source.used) is None or source.used in ("asirra", "folder"):
        per_image = ((FOLDER_SIZE - c.data.patch_size) // stride + 1) ** 2
        limit = None if c.data.min_std else max(1, math.ceil(n_signals / per_image))
    images, labels, info = lsdata.load_images(source.used, split, c.data.data_dir or None, limit=limit,
                                              return_info=True)
    if source.note:
        info = {**info, "stand_in_for": source.named, "note": source.note}
    return images, labels, info


def _enough(key: str, asked: int, available: int, what: str, info: dict) -> None:
    if asked > available:
        fix = (f"; {info['note']}" if info.get("full") is False and "note" in info else
               " (lower data.scale)")
        raise LsalsaError(f"{key}: {asked} signals asked for (after data.scale), the source gives {available} "
                          f"{what}{fix}")


def _origin(infos: dict[str, dict]) -> np.ndarray:
    """What each part of the data was read from (``load_images``'s ``info``), as a JSON string
    kept in ``data.npz`` (a string array: no pickle) for the log and the report."""
    keep = ("origin", "full", "note", "stand_in_for")
    return np.array(json.dumps({k: {f: v[f] for f in keep if f in v} for k, v in infos.items()}))


def data_origin(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """What the run's data was read from, per part (empty for a run written before it was kept)."""
    return json.loads(str(arrays["origin"])) if "origin" in arrays else {}


def _part(source: Resolved, split: str) -> str:
    return f"{source.used} {split}" + (f" (stand-in for {source.named})" if source.note else "")


def patch_signals(c: ExperimentConfig, rng: np.random.Generator, source: Resolved) -> dict[str, np.ndarray]:
    """A patches experiment's signals: ``Y_train (n_train, p*p)``, ``Y_dict (n_dict, p*p)``,
    ``Y_test (P, p*p)`` (all patches of whole test images; a random sample of them for photos of
    different sizes), ``image (P,)`` each test patch's image, ``labels (n_images,)`` their classes
    (empty when the source has none), ``origin``."""
    d = c.data
    stride = d.stride or d.patch_size
    opts = dict(pad_to=d.pad_to or None)
    n_train, n_dict, n_test = c.scaled(d.n_train), c.scaled(d.n_dict), c.scaled(d.n_test)
    train_imgs, _, train_info = _load(c, source, "train", max(n_train, n_dict), stride)
    train, _ = lsdata.extract_patches(train_imgs, d.patch_size, stride, min_std=d.min_std or None, **opts)
    train = train[rng.permutation(len(train))]
    _enough("data.n_train", n_train, len(train), "training patches", train_info)
    test_imgs, test_labels, test_info = _load(c, source, "test", n_test, stride)
    origin = _origin({_part(source, "train"): train_info, _part(source, "test"): test_info})
    if isinstance(test_imgs, list):  # photos of different sizes: a random sample of their patches
        test, image = lsdata.extract_patches(test_imgs, d.patch_size, stride, **opts)
        _enough("data.n_test", n_test, len(test), "test patches", test_info)
        pick = np.sort(rng.permutation(len(test))[:n_test])
        return {"Y_train": train[:n_train], "Y_dict": train[-n_dict:], "Y_test": test[pick], "image": image[pick],
                "labels": np.zeros(0, dtype=np.int64), "origin": origin}
    order = rng.permutation(len(test_imgs))
    probe, _ = lsdata.extract_patches(test_imgs[order[:1]], d.patch_size, stride, **opts)
    _enough("data.n_test", n_test, len(test_imgs) * len(probe), "test patches (whole test images)", test_info)
    chosen = order[: max(1, n_test // len(probe))]
    test, image = lsdata.extract_patches(test_imgs[chosen], d.patch_size, stride, **opts)
    labels = test_labels[chosen].astype(np.int64) if source.labelled else np.zeros(0, dtype=np.int64)
    return {"Y_train": train[:n_train], "Y_dict": train[-n_dict:], "Y_test": test, "image": image,
            "labels": labels, "origin": origin}


def _cut(c: ExperimentConfig, images: Any, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """A mixture source's signals ``(P_i, p*p)`` and their images ``(P_i,)``: images smaller than
    ``patch_size`` zero-padded, centred, to it (MNIST's 28x28 -> 32x32), larger ones cut into
    patches (ASIRRA's 49 per 224x224 image)."""
    p = c.data.patch_size
    if isinstance(images, list):
        return lsdata.extract_patches(images, p, stride)
    h, w = images.shape[1:]
    return lsdata.extract_patches(images, p, stride, pad_to=(max(h, p), max(w, p)))


def mixture_signals(c: ExperimentConfig, rng: np.random.Generator, sources: list[Resolved]
                    ) -> dict[str, np.ndarray]:
    """A mixture experiment's signals, D = ``len(sources)``: ``Y_train (n_train, M)``,
    ``C_train_dict (D, n_dict, M)`` (the components of the first training mixtures, one
    dictionary's signals per source), ``Y_test (P, M)``, ``C_test (D, P, M)``, ``labels (D, P)``
    each test component's class (-1: the source has none), ``index (D, P)`` its row in its
    source's test signals (ordered image by image, patch by patch), ``patches_per_image (D,)``
    (0: not whole images), ``origin``.

    Training mixtures pair the training signals of the sources at random (:func:`lsdata.mix`).
    P is ``n_test`` rounded down so that each labelled source's test components are all patches of
    whole images, each once."""
    d = c.data
    stride = d.stride or d.patch_size
    seed = int(rng.integers(2**31))
    n_train, n_test = c.scaled(d.n_train), c.scaled(d.n_test)
    infos, train_sets, test_sets = {}, [], []
    for s in sources:
        imgs, labels, info = _load(c, s, "train", n_train, stride)
        Y, image = _cut(c, imgs, stride)
        train_sets.append((Y, labels[image] if s.labelled else np.full(len(Y), -1, np.int64)))
        infos[_part(s, "train")] = info
        imgs, labels, info = _load(c, s, "test", n_test, stride)
        test_sets.append((imgs, labels, _cut(c, imgs, stride), s))
        infos[_part(s, "test")] = info
    train = lsdata.mix(*zip(*train_sets), n_train, seed=seed, names=[s.used for s in sources])
    # whole images of every labelled source with several patches per image, each patch once
    per_image = [len(Y) // len(imgs) if s.labelled and not isinstance(imgs, list) else 0
                 for imgs, _, (Y, _), s in test_sets]
    step = math.lcm(*[k for k in per_image if k > 1], 1)
    P = n_test // step * step
    if P == 0:
        raise LsalsaError(f"data.n_test: {n_test} test mixtures (after data.scale) hold no whole test image; "
                          f"at least {step} are needed")
    parts, part_labels = [], []
    for (imgs, labels, (Y, image), s), k in zip(test_sets, per_image):
        lab = labels[image] if s.labelled else np.full(len(Y), -1, np.int64)
        if k > 1:
            _enough("data.n_test", P, len(Y), f"test patches of {s.used}", infos[_part(s, "test")])
            keep = np.isin(image, np.sort(rng.permutation(len(imgs))[: P // k]))
            Y, lab = Y[keep], lab[keep]
        elif k == 1:
            _enough("data.n_test", P, len(Y), f"test images of {s.used}", infos[_part(s, "test")])
        parts.append(Y)
        part_labels.append(lab)
    test = lsdata.mix(parts, part_labels, P, seed=seed + 1)
    n_dict = min(c.scaled(d.n_dict), n_train)
    return {"Y_train": train.Y, "Y_test": test.Y, "C_train_dict": train.components[:, :n_dict],
            "C_test": test.components, "labels": test.labels, "index": test.index,
            "patches_per_image": np.asarray(per_image, dtype=np.int64), "origin": _origin(infos)}
