"""Additive mixtures of sources with their ground truth, for MCA (Eq. 3; Section 6.2.1).

The paper adds whole 32x32 MNIST digits (padded from 28x28) to 32x32 patches of ASIRRA photos,
pairing them at random; here the natural-photo pool stands in for ASIRRA.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..errors import LsalsaError


@dataclass
class Mixture:
    """Mixed signals and what they are made of.

    Attributes
    ----------
    Y : (P, M) the mixtures, ``Y = components.sum(axis=0)`` exactly.
    components : (D, P, M) the ground-truth sources ``y_i`` of each mixture.
    labels : (D, P) int64 label of each component (-1 where a source has none).
    index : (D, P) int64 row of each component in its source array.
    names : names of the D sources.
    """

    Y: np.ndarray
    components: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    names: tuple[str, ...] = field(default=())
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.Y.shape[0]


def _balanced_draw(n_items: int, n: int, rng: np.random.Generator) -> np.ndarray:
    # Concatenated random permutations: every item is used floor(n / n_items) or one more
    # times, so no item is over-represented the way independent draws would allow.
    reps = -(-n // n_items)
    return np.concatenate([rng.permutation(n_items) for _ in range(reps)])[:n]


def mix(
    sources: Sequence[Any],
    labels: Sequence[Any] | None = None,
    n_mixtures: int | None = None,
    *,
    seed: int | np.random.Generator | None = 0,
    names: Sequence[str] = (),
) -> Mixture:
    """Add rows of D sources, paired at random.

    Parameters
    ----------
    sources : D arrays ``(P_i, M)`` (e.g. vectorised 32x32 digits and 32x32 photo patches).
    labels : D arrays ``(P_i,)`` of labels, or None.
    n_mixtures : how many mixtures (default: the largest ``P_i``, so that each row of the
        largest source is used once and the others are reused evenly).
    seed : int or ``np.random.Generator`` for the pairing.
    names : names of the sources, kept in the result.

    Returns
    -------
    Mixture with ``Y (P, M)``, ``components (D, P, M)``, ``labels (D, P)``, ``index (D, P)``.
    """
    if isinstance(sources, np.ndarray) or len(sources) < 1:
        raise LsalsaError("sources: expected a list of D (P_i, M) arrays")
    arrays = [np.asarray(s.detach().cpu().numpy() if hasattr(s, "detach") else s) for s in sources]
    M = arrays[0].shape[-1] if arrays[0].ndim == 2 else None
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != M:
            raise LsalsaError(f"sources[{i}]: expected a non-empty (P_i, {M}) array, got shape {a.shape}")
    if labels is None:
        labels = [np.full(len(a), -1, dtype=np.int64) for a in arrays]
    if len(labels) != len(arrays):
        raise LsalsaError(f"labels: expected {len(arrays)} arrays (one per source), got {len(labels)}")
    labels = [np.asarray(l, dtype=np.int64) for l in labels]
    for i, (a, l) in enumerate(zip(arrays, labels)):
        if l.shape != (len(a),):
            raise LsalsaError(f"labels[{i}]: expected shape ({len(a)},), got {l.shape}")
    n = max(len(a) for a in arrays) if n_mixtures is None else check_positive_int(n_mixtures, "n_mixtures")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    index = np.stack([_balanced_draw(len(a), n, rng) for a in arrays])
    dtype = np.result_type(*arrays)
    components = np.stack([a[idx] for a, idx in zip(arrays, index)]).astype(dtype, copy=False)
    Y = components.sum(axis=0)
    mixed_labels = np.stack([l[idx] for l, idx in zip(labels, index)])
    return Mixture(Y, components, mixed_labels, index, tuple(names))


def mnist_natural(
    split: str = "train",
    *,
    patch_size: int = 32,
    stride: int | None = None,
    n_mixtures: int | None = None,
    limit: int | None = None,
    seed: int | np.random.Generator | None = 0,
    data_dir: Any = None,
) -> Mixture:
    """The paper's MNIST + ASIRRA mixtures (Section 6.2.1) with the natural-photo stand-in.

    Whole MNIST digits zero-padded from 28x28 to ``patch_size`` (32) plus ``patch_size`` square
    patches (non-overlapping unless ``stride`` is given) of the natural photos of the same split,
    paired at random. ``limit`` caps the number of digits read. Rows are ``(P, patch_size**2)``
    float32 in [0, 2].
    """
    from .patches import extract_patches
    from .sources import load_images

    digits, digit_labels, digit_info = load_images("mnist", split, data_dir, limit=limit, return_info=True)
    photos, photo_labels, photo_info = load_images("natural", split, return_info=True)
    y1, _ = extract_patches(digits, patch_size, pad_to=patch_size)
    y2, src = extract_patches(photos, patch_size, stride)
    mixture = mix([y1, y2], [digit_labels, photo_labels[src]], n_mixtures, seed=seed, names=("mnist", "natural"))
    return replace(mixture, info={"mnist": digit_info, "natural": photo_info})


def digits_over_photo(
    photo: str = "camera",
    size: int = 128,
    *,
    cell: int = 32,
    seed: int | np.random.Generator | None = 0,
    data_dir: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A whole picture to separate: real MNIST test digits laid over a real held-out photo.

    The photo is a random ``size`` x ``size`` crop of one of the natural pool's test images
    (:data:`lsalsa.data.natural.TEST_IMAGES`, never used in training), at its own resolution;
    the digits are MNIST test images, one zero-padded ``cell`` x ``cell`` tile per cell of a
    grid over the crop (the layout of the paper's 32x32 mixtures, repeated).

    Returns
    -------
    mixture : (size, size) float32, digits + photo, in [0, 2] like the training mixtures.
    components : (2, size, size) float32, the digit layer and the photo crop, each in [0, 1].
    """
    from .natural import TEST_IMAGES, load_natural
    from .patches import _pad
    from .sources import load_images

    size, cell = check_positive_int(size, "size"), check_positive_int(cell, "cell")
    if photo not in TEST_IMAGES:
        raise LsalsaError(f"photo: expected a held-out test photo {list(TEST_IMAGES)}, got {photo!r}")
    if cell > size:
        raise LsalsaError(f"size: {size} is smaller than one digit cell of {cell}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    images, _, info = load_natural("test")
    img = images[info["names"].index(photo)]
    if min(img.shape) < size:
        raise LsalsaError(f"size: {size} is larger than photo {photo!r} of shape {img.shape}")
    r0, c0 = (int(rng.integers(0, n - size + 1)) for n in img.shape)
    crop = img[r0:r0 + size, c0:c0 + size]
    n = size // cell
    digits, _ = load_images("mnist", "test", data_dir)
    tiles = _pad(digits[rng.choice(len(digits), n * n, replace=False)], (cell, cell), 0).astype(np.float32)
    layer = np.zeros((size, size), dtype=np.float32)
    layer[: n * cell, : n * cell] = tiles.reshape(n, n, cell, cell).transpose(0, 2, 1, 3).reshape(n * cell, n * cell)
    components = np.stack([layer, crop.astype(np.float32)])
    return components.sum(axis=0), components
