"""IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the array in C order (big-endian for multi-byte types).
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import LsalsaError

# IDX dtype codes -> big-endian numpy dtypes
_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _open(path: Path):
    # Decide by content, not by name: a renamed .gz (or an un-gzipped file still called .gz)
    # must still read correctly.
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == _GZIP_MAGIC else open(path, "rb")


def read_idx(path: str | Path, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) into a numpy array.

    Parameters
    ----------
    path : the file.
    limit : read only the first ``limit`` items along the first axis (all when None).

    Returns
    -------
    array of shape ``(n, *dims)`` in native byte order (uint8 for MNIST images and labels).

    Raises
    ------
    LsalsaError
        The file is missing, is not IDX (wrong magic number), or is shorter than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise LsalsaError(f"IDX file {str(path)!r} does not exist")
    try:
        with _open(path) as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] not in _DTYPES or magic[3] == 0:
                raise LsalsaError(
                    f"IDX file {str(path)!r}: wrong magic number {magic.hex() or '(empty file)'}; "
                    "expected 0000<dtype code><ndim>, e.g. 00000803 for images"
                )
            dtype, ndim = _DTYPES[magic[2]], magic[3]
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise LsalsaError(f"IDX file {str(path)!r} is truncated inside its header")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            n = dims[0] if limit is None else min(int(limit), dims[0])
            shape = (n, *dims[1:])
            n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            payload = f.read(n_bytes)
    except (OSError, EOFError, zlib.error) as exc:  # unreadable file, corrupt gzip stream
        raise LsalsaError(f"IDX file {str(path)!r} cannot be read: {exc}") from exc
    if len(payload) < n_bytes:
        raise LsalsaError(
            f"IDX file {str(path)!r} is truncated: header announces shape {tuple(dims)} "
            f"({n_bytes} bytes of data for {n} items) but only {len(payload)} bytes follow"
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_pair(images_path: Path, labels_path: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An images file ``(n, h, w)`` uint8 and its labels file ``(n,)``, checked against each other.

    Returns ``images (n, h, w)`` float32 in [0, 1] and ``labels (n,)`` int64.
    """
    images = read_idx(images_path, limit)
    labels = read_idx(labels_path, limit)
    if images.ndim != 3:
        raise LsalsaError(f"IDX file {str(images_path)!r}: expected 3-D images (n, h, w), got shape {images.shape}")
    if labels.ndim != 1:
        raise LsalsaError(f"IDX file {str(labels_path)!r}: expected 1-D labels (n,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise LsalsaError(
            f"IDX files {str(images_path)!r} and {str(labels_path)!r}: {len(images)} images but {len(labels)} labels"
        )
    if images.dtype != np.uint8:
        raise LsalsaError(f"IDX file {str(images_path)!r}: expected uint8 pixels, got {images.dtype}")
    return images.astype(np.float32) / np.float32(255.0), labels.astype(np.int64)
