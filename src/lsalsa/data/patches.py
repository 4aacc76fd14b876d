"""Cutting images into vectorised patches, and putting patches back together.

The paper's preparations (Section 6.1, 6.2.1, Supplement G): MNIST padded from 28x28 to 32x32,
cut into 10x10 non-overlapping patches "ignoring extra pixels on two edges" (9 per image), and
only patches with standard deviation >= 0.1 kept; ASIRRA at 224x224 cut into 16x16 or 32x32
patches.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._validation import check_positive_int
from ..errors import LsalsaError


def _as_image_list(images: Any) -> list[np.ndarray] | np.ndarray:
    """A stacked (n, h, w) numpy array, or a list of (h_i, w_i) arrays; tensors go to numpy."""
    def to_np(x):
        return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)

    if isinstance(images, (list, tuple)):
        if not images:
            raise LsalsaError("images: expected at least one image, got an empty list")
        out = [to_np(x) for x in images]
        for i, x in enumerate(out):
            if x.ndim != 2:
                raise LsalsaError(f"images[{i}]: expected a 2-D (h, w) image, got shape {x.shape}")
        return out
    arr = to_np(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise LsalsaError(f"images: expected (n, h, w) or a list of (h, w) images, got shape {arr.shape}")
    return arr


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return check_positive_int(value[0], name), check_positive_int(value[1], name)
    v = check_positive_int(value, name)
    return v, v


def _pad(stack: np.ndarray, shape: tuple[int, int], first: int) -> np.ndarray:
    """Zero-pad (k, h, w) images to (k, H, W), centred (the odd pixel at the bottom/right): 28 ->
    32 puts the digit in the middle, as in the paper's 32x32 MNIST."""
    (h, w), (H, W) = stack.shape[1:], shape
    if h > H or w > W:
        raise LsalsaError(f"pad_to: image {first} of shape {(h, w)} is larger than pad_to={shape}")
    top, left = (H - h) // 2, (W - w) // 2
    return np.pad(stack, ((0, 0), (top, H - h - top), (left, W - w - left)))


def _prepare(img: np.ndarray, scale: float | None, index: int) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32) * np.float32(1 / 255 if scale is None else scale)
    if img.dtype not in (np.float32, np.float64):
        raise LsalsaError(f"images: expected uint8, float32 or float64 pixels, got {img.dtype} (image {index})")
    return img if scale is None else img * img.dtype.type(scale)


def extract_patches(
    images: Any,
    size: int,
    stride: int | None = None,
    *,
    min_std: float | None = None,
    pad_to: int | tuple[int, int] | None = None,
    scale: float | None = None,
    return_positions: bool = False,
):
    """Cut images into square patches, vectorised as rows.

    Patches start at rows and columns ``0, stride, 2 stride, ..`` while they fit, so pixels past
    the last whole patch are dropped (the paper's "ignoring extra pixels on two edges").

    Parameters
    ----------
    images : (n, h, w) array or tensor, or a list of (h_i, w_i) images of different sizes.
        uint8 or float; one (h, w) image is treated as n = 1.
    size : patch side p (patches are p x p).
    stride : step between patches; default ``size`` (non-overlapping).
    min_std : keep only patches whose pixel standard deviation is >= ``min_std`` (the paper
        drops the practically all-black MNIST patches with 0.1).
    pad_to : zero-pad every image, centred, to this size first (int or (H, W)), e.g. 32 for
        MNIST's 28x28.
    scale : multiply pixel values by this; default: uint8 images are divided by 255, float
        images kept as they are.
    return_positions : also return the patches' top-left corners.

    Returns
    -------
    patches : (P, p*p) float32 array (float64 for float64 images), row-major patches.
    source : (P,) int64, the index of each patch's image.
    positions : (P, 2) int64 ``(row, col)`` of each patch's top-left pixel, in the coordinates
        of the (padded) image; only with ``return_positions=True``.

    Raises
    ------
    LsalsaError
        A patch larger than an image (naming it), bad arguments, or no patch left after
        ``min_std`` (never a silent empty set).
    """
    imgs = _as_image_list(images)
    p = check_positive_int(size, "size")
    s = p if stride is None else check_positive_int(stride, "stride")
    target = None if pad_to is None else _pair(pad_to, "pad_to")
    if min_std is not None and not (isinstance(min_std, (int, float)) and np.isfinite(min_std) and min_std >= 0):
        raise LsalsaError(f"min_std: expected a number >= 0 or None, got {min_std!r}")

    def cut(stack: np.ndarray, first: int):
        # stack: (k, h, w) images of one size -> windows (k, nh, nw, p, p) as a strided view
        if target is not None:
            stack = _pad(stack, target, first)
        stack = _prepare(stack, scale, first)
        k, h, w = stack.shape
        if p > h or p > w:
            raise LsalsaError(f"size: patch size {p} is larger than image {first} of shape {(h, w)}")
        win = sliding_window_view(stack, (p, p), axis=(1, 2))[:, ::s, ::s]
        nh, nw = win.shape[1:3]
        rows = np.empty((k * nh * nw, p * p), dtype=stack.dtype)  # always a copy: never a view of the input
        rows.reshape(k, nh, nw, p, p)[...] = win
        src = np.repeat(np.arange(first, first + k, dtype=np.int64), nh * nw)
        r, c = np.meshgrid(np.arange(nh) * s, np.arange(nw) * s, indexing="ij")
        pos = np.tile(np.stack([r.ravel(), c.ravel()], axis=1), (k, 1)).astype(np.int64)
        return rows, src, pos

    if isinstance(imgs, np.ndarray):
        parts = [cut(imgs, 0)]
    else:
        parts = [cut(im[None], i) for i, im in enumerate(imgs)]
    patches = np.concatenate([q[0] for q in parts]) if len(parts) > 1 else parts[0][0]
    source = np.concatenate([q[1] for q in parts])
    positions = np.concatenate([q[2] for q in parts])
    if patches.dtype != np.float64:
        patches = patches.astype(np.float32, copy=False)
    if min_std is not None:
        keep = patches.std(axis=1) >= min_std
        if not keep.any():
            raise LsalsaError(f"min_std: no patch has a standard deviation >= {min_std} "
                              f"(largest: {patches.std(axis=1).max():.4g})")
        patches, source, positions = patches[keep], source[keep], positions[keep]
    patches = np.ascontiguousarray(patches)
    return (patches, source, positions) if return_positions else (patches, source)


def assemble_patches(
    patches: Any,
    positions: Any,
    image_shape: tuple[int, int],
    source: Any = None,
    n_images: int | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Put vectorised patches back into images, averaging where patches overlap.

    The inverse of :func:`extract_patches` (exact wherever the patches cover the image).

    Parameters
    ----------
    patches : (P, p*p) rows of square patches.
    positions : (P, 2) ``(row, col)`` top-left corners, as returned by ``extract_patches``.
    image_shape : (H, W) of the (padded) images.
    source : (P,) image index of each patch; None when all come from one image.
    n_images : how many images to build (default ``source.max() + 1``).
    fill : value of pixels that no patch covers (dropped edges, patches removed by ``min_std``).

    Returns
    -------
    (H, W) image when ``source`` is None, else (n_images, H, W); dtype of ``patches``.
    """
    patches = patches.detach().cpu().numpy() if hasattr(patches, "detach") else np.asarray(patches)
    positions = np.asarray(positions, dtype=np.int64)
    if patches.ndim != 2:
        raise LsalsaError(f"patches: expected (P, p*p), got shape {patches.shape}")
    P, pp = patches.shape
    p = int(round(np.sqrt(pp)))
    if p * p != pp:
        raise LsalsaError(f"patches: rows of length {pp} are not square p*p patches")
    if positions.shape != (P, 2):
        raise LsalsaError(f"positions: expected shape ({P}, 2), got {positions.shape}")
    H, W = _pair(tuple(image_shape), "image_shape")
    single = source is None
    src = np.zeros(P, dtype=np.int64) if single else np.asarray(source, dtype=np.int64)
    if src.shape != (P,):
        raise LsalsaError(f"source: expected shape ({P},), got {src.shape}")
    if single:
        n = 1
    elif n_images is not None:
        n = check_positive_int(n_images, "n_images")
    else:
        n = int(src.max()) + 1 if P else 1
    if P and (positions.min() < 0 or (positions[:, 0] + p).max() > H or (positions[:, 1] + p).max() > W):
        raise LsalsaError(f"positions: some {p}x{p} patches fall outside images of shape {(H, W)}")
    if P and (src.min() < 0 or src.max() >= n):
        raise LsalsaError(f"source: expected indices in [0, {n}), got [{src.min()}, {src.max()}]")
    # Flat pixel index of every patch entry; bincount sums overlapping contributions (in float64,
    # so averaging k copies of the same value gives that value back exactly).
    dy, dx = np.divmod(np.arange(pp), p)
    base = (src * H + positions[:, 0]) * W + positions[:, 1]
    flat = (base[:, None] + (dy * W + dx)[None, :]).ravel()
    total = np.bincount(flat, weights=patches.ravel().astype(np.float64), minlength=n * H * W)
    count = np.bincount(flat, minlength=n * H * W)
    out = np.full(n * H * W, fill, dtype=np.float64)
    covered = count > 0
    out[covered] = total[covered] / count[covered]
    out = out.reshape(n, H, W).astype(patches.dtype if patches.dtype.kind == "f" else np.float32)
    return out[0] if single else out
