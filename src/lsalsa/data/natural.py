"""A pool of natural photos shipped inside Python wheels: the offline stand-in for ASIRRA and
CIFAR-10 (neither can be downloaded on these machines).

17 images, about 6.6 Mpx, from scikit-image (``skimage.data``), scikit-learn
(``load_sample_image``) and PyWavelets (``pywt.data.aero``), converted to grayscale floats in
[0, 1] with the same luma weights as every other source. They are split by whole image, so no
test patch ever overlaps a training image: the test images are :data:`TEST_IMAGES` (a
photographer, a cat, a coffee cup, a gravel texture and a flower), about 18% of the pixels.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import LsalsaError
from .gray import resize, to_gray_float

# The pool, in a fixed order; labels are positions in this tuple.
POOL = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "moon", "hubble_deep_field",
    "immunohistochemistry", "retina", "stereo_motorcycle", "brick", "grass", "gravel",
    "china", "flower", "aero",
)
TEST_IMAGES = ("camera", "chelsea", "coffee", "gravel", "flower")


def _load_raw(name: str) -> np.ndarray:
    """One pool image as shipped (uint8, gray or RGB)."""
    try:
        if name in ("china", "flower"):
            from sklearn.datasets import load_sample_image

            return load_sample_image(f"{name}.jpg")
        if name == "aero":
            import pywt.data

            return pywt.data.aero()
        import skimage.data

        img = getattr(skimage.data, name)()
        return img[0] if name == "stereo_motorcycle" else img  # (left, right, disparity): the left view
    except ImportError as exc:
        raise LsalsaError(f"natural: image {name!r} needs the data extra (pip install 'lsalsa[data]'): {exc}") from exc


def natural_names(split: str) -> list[str]:
    """The names of the pool images in ``split`` ("train", "test" or "all"), in pool order."""
    if split == "all":
        return list(POOL)
    return [n for n in POOL if (n in TEST_IMAGES) == (split == "test")]


def load_natural(
    split: str, limit: int | None = None, size: tuple[int, int] | None = None
) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray, dict[str, Any]]:
    """The natural-photo pool: a list of ``(h_i, w_i)`` float32 gray images in [0, 1] (a stacked
    ``(n, h, w)`` array when ``size`` is given, each image resized bilinearly), labels = the
    images' positions in :data:`POOL` ``(n,)`` int64, and an info dict with their names."""
    names = natural_names(split)[:limit]
    images = [to_gray_float(_load_raw(n)) for n in names]
    if size is not None:
        images = np.stack([resize(img, size) for img in images])
    labels = np.asarray([POOL.index(n) for n in names], dtype=np.int64)
    info = {"origin": "skimage.data, sklearn.datasets.load_sample_image, pywt.data", "full": True, "names": names}
    return images, labels, info
