"""Images from a folder, e.g. ASIRRA cats and dogs (``cat.0.jpg``, ``dog.0.jpg``, ...).

Two layouts are read: class-prefixed file names (``<class>.<anything>.<ext>``, as in the Kaggle
ASIRRA archive) or one sub-folder per class (``<root>/<class>/*.jpg``). Each image is converted
to grayscale and resized bilinearly (224x224 by default, as the paper does for ASIRRA).
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LsalsaError
from .gray import resize, to_gray_float

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TEST_EVERY = 5  # without train/ and test/ sub-folders, every 5th image (per class) is a test image


def _natural_key(path: Path) -> list:
    # cat.2.jpg before cat.10.jpg
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in EXTENSIONS


def list_images(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """``(files, labels, class_names)`` of an image folder, classes interleaved round robin.

    Labels index the sorted class names; a file name without a class prefix (``123.jpg``)
    gets label -1 (unlabelled, like ASIRRA's test set).
    """
    by_class: dict[str, list[Path]] = {}
    files = sorted((p for p in root.iterdir() if _is_image(p)), key=_natural_key)
    if files:
        for p in files:
            stem = p.name[: -len(p.suffix)]
            by_class.setdefault(stem.split(".")[0] if "." in stem else "", []).append(p)
    else:
        for sub in sorted(d for d in root.iterdir() if d.is_dir()):
            imgs = sorted((p for p in sub.iterdir() if _is_image(p)), key=_natural_key)
            if imgs:
                by_class[sub.name] = imgs
    if not by_class:
        raise LsalsaError(f"image folder {str(root)!r} holds no images ({', '.join(sorted(EXTENSIONS))})")
    names = sorted(c for c in by_class if c)
    label = {c: i for i, c in enumerate(names)} | {"": -1}
    # Round robin over classes so that any prefix (limit=) and the every-5th test split are balanced.
    order = [p for group in itertools.zip_longest(*by_class.values()) for p in group if p is not None]
    cls_of = {p: c for c, ps in by_class.items() for p in ps}
    return order, [label[cls_of[p]] for p in order], names


def read_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """Decode one image file -> ``(h, w)`` float32 gray in [0, 1], resized to ``size`` if given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise LsalsaError(f"image {str(path)!r} cannot be decoded: {exc}") from exc
    gray = to_gray_float(rgb)
    return gray if size is None else resize(gray, size)


def load_folder(
    root: str | Path,
    split: str,
    limit: int | None,
    size: tuple[int, int] | None = (224, 224),
    progress: bool = False,
) -> tuple[np.ndarray | list[np.ndarray], np.ndarray, dict[str, Any]]:
    """Read an image folder.

    ``<root>/<split>/`` is used when it exists; otherwise the folder itself, split
    deterministically (every ``TEST_EVERY``-th image in the interleaved order is a test image;
    ``split="all"`` takes all). Returns images ``(n, h, w)`` float32 (a list when ``size=None``),
    labels ``(n,)`` int64 and an info dict with the class names.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise LsalsaError(f"image folder {str(root)!r} does not exist")
    if (root / split).is_dir():
        files, labels, names = list_images(root / split)
    else:
        files, labels, names = list_images(root)
        if split != "all":
            keep = [(i % TEST_EVERY == TEST_EVERY - 1) == (split == "test") for i in range(len(files))]
            files = [f for f, k in zip(files, keep) if k]
            labels = [y for y, k in zip(labels, keep) if k]
    files, labels = files[:limit], labels[:limit]
    if not files:
        raise LsalsaError(f"image folder {str(root)!r}: no images in split {split!r}")
    from tqdm.auto import tqdm

    bar = tqdm(files, desc=f"reading {root.name}", disable=not progress)
    if size is None:
        out = [read_image(p, None) for p in bar]
    else:  # filled in place: a stack of 25k 224x224 images is 5 GB, better not held twice
        out = np.empty((len(files), *size), dtype=np.float32)
        for i, p in enumerate(bar):
            out[i] = read_image(p, size)
    info = {"origin": str(root), "full": True, "class_names": names, "files": [str(p) for p in files]}
    return out, np.asarray(labels, dtype=np.int64), info
