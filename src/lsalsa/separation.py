"""Separating a whole picture into its sources (MCA, Eq. 3/6) with a patch model.

The dictionaries describe p x p patches, a user has pictures of any size. The picture is cut
into overlapping patches on a grid of step ``stride`` (plus one last row and column of patches
flush with the bottom and right edges, so every pixel is covered), the patches are coded in
batches, each source's patch ``A_i x_i`` is formed, and every source image is re-assembled by
averaging the patches that overlap each pixel. Memory is bounded by the batch size, not by the
number of patches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._validation import check_positive_int
from .bundle import SeparationModel, load_model
from .data.gray import LUMA_WEIGHTS, to_gray_float
from .errors import LsalsaError

DEFAULT_BATCH = 2048


@dataclass
class Separation:
    """A picture split into sources, all ``(H, W)`` float64 in model units (the training
    signals' units: the picture times the model's ``input_scale``).

    Attributes
    ----------
    mixture : (H, W) the input picture in model units.
    sources : (D, H, W) the separated sources ``A_i x_i``, re-assembled.
    names : the D source names.
    input_scale : picture units = model units / input_scale.
    """

    mixture: np.ndarray
    sources: np.ndarray
    names: tuple[str, ...]
    input_scale: float = 1.0

    @property
    def reconstruction(self) -> np.ndarray:
        """(H, W) the model's reconstruction of the mixture, the sum of the sources."""
        return self.sources.sum(axis=0)

    @property
    def residual(self) -> np.ndarray:
        """(H, W) what the sources do not explain: mixture - reconstruction."""
        return self.mixture - self.reconstruction


def to_gray(image: Any) -> np.ndarray:
    """A picture as an ``(h, w)`` float64 array in [0, 1].

    uint8 pictures are divided by 255, uint16 by 65535; float pictures must already be in
    [0, 1]. Colour (``(h, w, 3)`` or RGBA) is converted with the BT.601 luma weights that every
    data source of the library uses, so training patches and pictures to separate agree.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    img = np.asarray(image)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise LsalsaError(f"image: expected shape (h, w), (h, w, 3) or (h, w, 4), got {img.shape}")
    if img.dtype == np.uint8:
        return to_gray_float(img).astype(np.float64)
    if img.dtype == np.uint16:
        img = img.astype(np.float64) / 65535.0
    elif img.dtype.kind == "f":
        img = img.astype(np.float64)
        if not np.isfinite(img).all():
            raise LsalsaError("image: contains NaN or Inf")
        if img.min() < 0 or img.max() > 1:
            raise LsalsaError(f"image: float pixels must lie in [0, 1], got [{img.min():.4g}, {img.max():.4g}]")
    else:
        raise LsalsaError(f"image: expected uint8, uint16 or float pixels, got {img.dtype}")
    if img.ndim == 3:
        img = img[..., :3] @ np.asarray(LUMA_WEIGHTS)
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a picture file (PNG, JPEG, ... anything Pillow opens) as ``(h, w)`` float64 gray in
    [0, 1] (see :func:`to_gray`). An unreadable file raises :class:`LsalsaError` naming it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise LsalsaError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L"):
                arr = np.asarray(im).astype(np.uint16)
            elif im.mode == "F":  # float pixels (e.g. a float TIFF): to_gray wants them in [0, 1]
                arr = np.asarray(im, dtype=np.float64)
            elif im.mode == "I":  # 32-bit integers: 16-bit data as many tools store it
                arr = np.asarray(im)
                if arr.min() < 0 or arr.max() > 65535:
                    raise LsalsaError(f"{path}: 32-bit integer pixels in [{arr.min()}, {arr.max()}], outside the "
                                      f"16-bit range [0, 65535]; save it as 8- or 16-bit, or as float in [0, 1]")
                arr = arr.astype(np.uint16)
            else:
                arr = np.asarray(im.convert("RGBA" if "A" in im.mode else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise LsalsaError(f"{path}: cannot be read as an image ({exc})") from None
    return to_gray(arr)


def write_image(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write an ``(h, w)`` float picture in [0, 1] (clipped) as an 8-bit gray PNG."""
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8), mode="L").save(path)


def patch_grid(shape: tuple[int, int], patch_size: int, stride: int) -> np.ndarray:
    """Top-left corners ``(P, 2)`` of the patches covering an ``(H, W)`` picture: steps of
    ``stride`` plus a last row / column flush with the bottom / right edge."""
    def starts(n: int) -> np.ndarray:
        s = list(range(0, n - patch_size + 1, stride))
        if s[-1] != n - patch_size:
            s.append(n - patch_size)
        return np.asarray(s, dtype=np.int64)

    r, c = np.meshgrid(starts(shape[0]), starts(shape[1]), indexing="ij")
    return np.stack([r.ravel(), c.ravel()], axis=1)


def separate_image(
    image: Any,
    model: SeparationModel | str | os.PathLike,
    patch_size: int | None = None,
    stride: int | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> Separation:
    """Split a picture into the model's sources (Section 6.2, applied patch by patch).

    Parameters
    ----------
    image : (H, W) gray or (H, W, 3|4) colour picture, uint8 / uint16 / float in [0, 1], of
        any size at least ``patch_size`` on each side (see :func:`to_gray`).
    model : a :class:`SeparationModel` or the path of a model file (:func:`save_model`).
    patch_size : must equal the model's (None: take it from the model); given so that a
        caller's assumption is checked, not silently ignored.
    stride : step between patches, 1 <= stride <= patch_size (default ``patch_size // 4``);
        smaller is slower and smoother.
    batch_size : patches coded at once (bounds memory: about ``batch_size * M`` floats a few
        times over).
    progress : show a tqdm bar over the batches.

    Returns
    -------
    :class:`Separation` with ``mixture (H, W)``, ``sources (D, H, W)`` in model units.
    """
    if not isinstance(model, SeparationModel):
        model = load_model(model)
    p = model.patch_size
    if patch_size is not None and check_positive_int(patch_size, "patch_size") != p:
        raise LsalsaError(f"patch_size: the model codes {p}x{p} patches, got patch_size={patch_size}")
    s = max(1, p // 4) if stride is None else check_positive_int(stride, "stride")
    if s > p:
        raise LsalsaError(f"stride: expected 1 <= stride <= patch size {p}, got {s} (gaps would leave pixels uncovered)")
    gray = to_gray(image)
    H, W = gray.shape
    if H < p or W < p:
        raise LsalsaError(f"image: the model's {p}x{p} patches do not fit a picture of {H}x{W} pixels")
    batch_size = check_positive_int(batch_size, "batch_size")

    problem = model.problem
    dtype, device = problem.dtype, problem.device
    flat = torch.as_tensor(gray.ravel() * model.input_scale, dtype=dtype, device=device)
    corners = torch.as_tensor(patch_grid((H, W), p, s), device=device)
    dy, dx = torch.meshgrid(torch.arange(p, device=device), torch.arange(p, device=device), indexing="ij")
    offsets = (dy * W + dx).reshape(1, -1)  # row-major p*p patch, as extract_patches vectorises
    D = len(problem.dict_sizes)
    # The averaging of data.assemble_patches, but accumulated batch by batch on the model's device
    # (assemble_patches needs all patches at once). Sums in float64, as there.
    total = torch.zeros(D, H * W, dtype=torch.float64, device=device)
    count = torch.zeros(H * W, dtype=torch.float64, device=device)
    encode = model.coder()  # a solver's operators prepared once for all batches
    starts = range(0, len(corners), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="separate", unit="batch")
    for i in starts:
        c = corners[i:i + batch_size]
        index = (c[:, :1] * W + c[:, 1:]) + offsets  # (b, p*p) flat pixel indices
        parts = problem.reconstruct(encode(flat[index]))
        idx = index.reshape(-1)
        for d, part in enumerate(parts):
            total[d].index_add_(0, idx, part.reshape(-1).to(torch.float64))
        count.index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))
    sources = (total / count).reshape(D, H, W).cpu().numpy()
    return Separation(gray * model.input_scale, sources, model.names, model.input_scale)


def save_separation(sep: Separation, out_dir: str | os.PathLike, *, truth: np.ndarray | None = None,
                    title: str = "") -> dict[str, Any]:
    """Write one PNG per source, the reconstruction and a side-by-side figure into ``out_dir``.

    Sources and ``reconstruction.png`` are written in the units of the input picture (model
    units / ``input_scale``): the sources add up to the reconstruction, which can be compared
    with the picture pixel for pixel. (In model units a source fills [0, 1], as the training
    sources did; a plain photograph, all of it one source, is then twice the range and half its
    pixels saturated.) Pixels outside [0, 1] are clipped and counted in ``paths["clipped"]``
    (the fraction per written picture). ``truth`` (D, H, W), when known, adds a row of the true
    sources to the figure. Returns the written paths by name.
    """
    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    clipped: dict[str, float] = {}
    pictures = [(name, out / f"source{i + 1}_{_slug(name)}.png", src) for i, (name, src) in
                enumerate(zip(sep.names, sep.sources))] + [("reconstruction", out / "reconstruction.png", sep.reconstruction)]
    for name, path, image in pictures:
        image = image / sep.input_scale
        paths[name] = path
        write_image(image, path)
        clipped[name] = float(np.mean((image < 0) | (image > 1)))
    paths["figure"] = out / "separation.png"
    plots.save(plots.plot_separation(sep.mixture, sep.sources, sep.names, truth=truth, title=title), paths["figure"])
    return {**paths, "clipped": clipped}


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_") or "source"
