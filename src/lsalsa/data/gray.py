"""Colour to grayscale and resizing, shared by every image source."""
from __future__ import annotations

import numpy as np

from ..errors import LsalsaError

# ITU-R BT.601 luma, the weights of Pillow's "L" mode and of Torch7's image.rgb2y (the paper's
# toolkit), so that every source converts colour the same way.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_gray_float(image: np.ndarray) -> np.ndarray:
    """``(h, w)`` or ``(h, w, 3|4)`` uint8 (0..255) -> ``(h, w)`` float32 in [0, 1] (alpha dropped)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise LsalsaError(f"image: expected uint8 pixels, got {img.dtype}")
    x = img.astype(np.float32)
    if x.ndim == 3 and x.shape[2] in (3, 4):
        x = x[..., :3] @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    elif x.ndim != 2:
        raise LsalsaError(f"image: expected shape (h, w) or (h, w, 3), got {img.shape}")
    return np.clip(x / np.float32(255.0), 0.0, 1.0)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float ``(h, w)`` image to ``size = (height, width)`` (Pillow)."""
    from PIL import Image

    h, w = size
    out = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32)).resize(
        (w, h), Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.float32)
