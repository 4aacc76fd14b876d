"""Files written whole or not at all, and read back with errors that name the file.

Every file lsalsa writes (models, checkpoints, run steps, code caches, reports) goes through
:func:`atomic_write`: the content is written to a temporary file in the same directory, synced
to disk and renamed over the target. ``os.replace`` is atomic on one file system, so a reader,
a resumed run or a second process sees the previous file or the complete new one, never a
half-written file, and an interrupted write leaves nothing behind.

The readers raise :class:`LsalsaError` naming the file when it is missing or unreadable.
Torch files are read with ``torch.load(weights_only=True)``, which unpickles only tensors and
plain containers, so reading a file never runs code from it.
"""
from __future__ import annotations

import json
import os
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import LsalsaError

FORMAT_VERSION = 1
"""The version of the layout of lsalsa's torch files, checked by :func:`read_torch`."""

PathLike = str | os.PathLike


# ---- writing ---------------------------------------------------------------------------------
def atomic_write(path: PathLike, write: Callable[[Path], Any]) -> Path:
    """Create ``path`` by ``write(tmp)``, which writes the complete file at the path ``tmp``.

    ``tmp`` is a fresh hidden name in ``path``'s directory (created if needed) that ends with
    ``path``'s suffix, so writers that pick the format from the name (``np.save``, ``np.savez``,
    ``savefig``) write the right one. The file is then synced and renamed over ``path``; if
    ``write`` raises (or the process is interrupted), ``tmp`` is removed and ``path`` is left as
    it was. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_torch(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path``, atomically (the argument order of ``torch.save``)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_npz(path: PathLike, **arrays: Any) -> Path:
    """``np.savez(path, **arrays)``, atomically (uncompressed, as :func:`load_npz` reads it).

    Written through an open file, so that ``np.savez`` adds no ``.npz`` to another suffix."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def write_text(path: PathLike, text: str) -> Path:
    """``text`` to ``path`` in UTF-8, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: PathLike, obj: Any) -> Path:
    """``obj`` as indented JSON, atomically; numpy scalars (anything ``float()`` takes) are
    written as numbers."""
    return write_text(path, json.dumps(obj, indent=2, default=float))


# ---- reading ---------------------------------------------------------------------------------
def _existing(path: PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise LsalsaError(f"{path}: no such file")
    return path


def read_torch(path: PathLike, expected_format: str | tuple[str, ...]) -> dict[str, Any]:
    """The dict in a torch file (tensors on CPU) whose ``"format"`` is ``expected_format`` (or
    one of them) and whose ``"version"`` is :data:`FORMAT_VERSION`.

    Raises :class:`LsalsaError` naming the file when it is missing, unreadable (truncated,
    corrupt, or holding anything but tensors and plain data) or of another format or version.
    """
    path = _existing(path)
    formats = (expected_format,) if isinstance(expected_format, str) else tuple(expected_format)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        first = (str(exc).strip().splitlines() or [""])[0]  # torch's messages run to many lines
        raise LsalsaError(f"{path}: not a readable lsalsa file ({type(exc).__name__}: {first})") from exc
    if not isinstance(obj, dict) or obj.get("format") not in formats:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise LsalsaError(f"{path}: expected an lsalsa file of format {' or '.join(formats)}, found {found!r}")
    if obj.get("version") != FORMAT_VERSION:
        raise LsalsaError(f"{path}: format version {obj.get('version')!r} is not supported (expected {FORMAT_VERSION})")
    return obj


def read_json(path: PathLike) -> Any:
    """The JSON value in ``path``; :class:`LsalsaError` naming the file when it is missing or
    not JSON."""
    path = _existing(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise LsalsaError(f"{path}: cannot be read as JSON ({exc})") from None


def load_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read into memory (the file is closed on return);
    :class:`LsalsaError` naming the file when it is missing or not a readable ``.npz``.

    Arrays of Python objects are refused (``allow_pickle=False``): reading never runs code.
    """
    path = _existing(path)
    try:
        f = np.load(path)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError("an .npy array, not an .npz archive")
        with f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise LsalsaError(f"{path}: cannot be read ({exc})") from None
