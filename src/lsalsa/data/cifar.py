"""CIFAR-10 from its python-pickle batches, converted to grayscale.

The "python version" of CIFAR-10 (``cifar-10-batches-py/``) holds ``data_batch_1`` ..
``data_batch_5`` and ``test_batch``: pickled dicts with ``b"data"``, a (n, 3072) uint8 array
(1024 red, then 1024 green, then 1024 blue values, each a 32x32 image in row-major order), and
``b"labels"``, n ints in 0..9. Not available offline here; the reader is tested on files in the
same format.
"""
from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LsalsaError
from .gray import LUMA_WEIGHTS

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
SUBDIRS = ("cifar-10-batches-py", "cifar10")


def _numpy_reconstructors() -> dict[tuple[str, str], Any]:
    # Take the functions numpy itself pickles arrays with, rather than importing private
    # modules: their module path changed (numpy.core -> numpy._core) and files written by
    # Python 2 era numpy (the real CIFAR-10 batches) name the old one.
    a = np.zeros(1)
    reconstruct, frombuffer = a.__reduce__()[0], a.__reduce_ex__(5)[0]
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): codecs.encode}  # how Python 3 pickles bytes at protocol 2
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{mod}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    A pickle may name any importable callable and call it while loading, so loading an untrusted
    one runs arbitrary code; this one refuses every global except numpy's array reconstruction.
    """

    allowed = _numpy_reconstructors()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> ``(data (n, 3072) uint8, labels (n,) int64)``."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise LsalsaError(f"CIFAR-10 batch {str(path)!r} does not exist") from None
    except Exception as exc:  # a corrupt pickle can raise nearly anything while loading
        raise LsalsaError(f"CIFAR-10 batch {str(path)!r} is not a readable pickle: {exc}") from exc
    if not isinstance(batch, dict):
        raise LsalsaError(f"CIFAR-10 batch {str(path)!r}: expected a dict, got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise LsalsaError(f"CIFAR-10 batch {str(path)!r}: expected b'data' a (n, 3072) uint8 array, got {got}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        labels = None
    if labels is None or labels.shape != (len(data),):
        raise LsalsaError(f"CIFAR-10 batch {str(path)!r}: expected b'labels' with {len(data)} integers")
    return data, labels


def to_gray(data: np.ndarray) -> np.ndarray:
    """``(n, 3072)`` uint8 RGB rows -> ``(n, 32, 32)`` float32 luma in [0, 1]."""
    rgb = data.reshape(-1, 3, 32, 32).astype(np.float32)
    gray = np.tensordot(np.asarray(LUMA_WEIGHTS, np.float32), rgb, axes=(0, 1))
    return np.clip(gray / np.float32(255.0), 0.0, 1.0)


def search_dirs(data_dir: Path, explicit: bool) -> list[Path]:
    dirs = [data_dir / s for s in SUBDIRS]
    return dirs + [data_dir] if explicit else dirs


def locate(data_dir: Path, explicit: bool, split: str = "train") -> Path | None:
    """The directory holding the CIFAR-10 batches (the first that has any of them)."""
    names = TRAIN_FILES + TEST_FILES
    return next((d for d in search_dirs(data_dir, explicit) if any((d / n).is_file() for n in names)), None)


def load_cifar10(
    split: str, data_dir: Path, explicit: bool, limit: int | None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """CIFAR-10 ``split`` as ``(images (n, 32, 32) float32 gray in [0, 1], labels (n,) int64, info)``."""
    directory = locate(data_dir, explicit, split)
    if directory is None:
        searched = ", ".join(str(d) for d in search_dirs(data_dir, explicit))
        raise LsalsaError(
            f"cifar10: no CIFAR-10 python batches (data_batch_1..5, test_batch) in {searched}; "
            "extract cifar-10-python.tar.gz into the data directory"
        )
    names = TRAIN_FILES if split == "train" else TEST_FILES
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise LsalsaError(f"cifar10: missing {', '.join(missing)} in {str(directory)!r}")
    images, labels, n = [], [], 0
    for name in names:
        if limit is not None and n >= limit:
            break
        data, lab = read_batch(directory / name)
        images.append(to_gray(data))
        labels.append(lab)
        n += len(data)
    images, labels = np.concatenate(images)[:limit], np.concatenate(labels)[:limit]
    return images, labels, {"origin": str(directory), "full": True}
