"""Encoders to and from one file, and the safe file primitives that checkpoints share.

A file is ``torch.save`` of a plain dict: JSON-able metadata (format, version, class name,
config, dtype) and tensors. It is read with ``torch.load(weights_only=True)``, which unpickles
only tensors and plain containers, so loading a file never runs code from it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LsalsaError
from .lista import LISTA
from .lsalsa import LSALSA

ENCODERS: dict[str, type[nn.Module]] = {"lista": LISTA, "lsalsa": LSALSA}

ENCODER_FORMAT = "lsalsa-encoder"
CHECKPOINT_FORMAT = "lsalsa-checkpoint"
FORMAT_VERSION = 1

_DTYPES = {str(d): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


# ---- file primitives ----------------------------------------------------------------------
def atomic_save(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename it over ``path``.

    ``os.replace`` is atomic on one file system, so a reader (or a resumed run) sees either the
    previous file or the complete new one, never a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_file(path: str | os.PathLike, expected_format: str | tuple[str, ...]) -> dict[str, Any]:
    """Load a file written by :func:`atomic_save` (tensors on CPU), checking its format tag.

    Raises :class:`LsalsaError` naming the file when it is missing, unreadable (truncated,
    corrupt, or holding anything but tensors and plain data) or of another format or version.
    """
    path = Path(path)
    formats = (expected_format,) if isinstance(expected_format, str) else expected_format
    if not path.is_file():
        raise LsalsaError(f"{path}: no such file")
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


# ---- encoders -------------------------------------------------------------------------------
def encoder_record(encoder: nn.Module) -> dict[str, Any]:
    """What rebuilds an encoder: class name, JSON-able config (None for a module without
    ``config()``), dtype, and the state dict."""
    config = encoder.config() if hasattr(encoder, "config") else None
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise LsalsaError(f"encoder: config() must be JSON-able ({exc})") from exc
    param = next(iter(encoder.parameters()), None)
    return {
        "class": type(encoder).__name__,
        "config": config,
        "dtype": str(param.dtype) if param is not None else None,
        "state_dict": dict(encoder.state_dict()),
    }


def save_encoder(encoder: nn.Module, path: str | os.PathLike) -> None:
    """Write a registered encoder (:data:`ENCODERS`) to one file, atomically.

    The file holds the class name, ``encoder.config()`` (n_layers, mu, alphas, dict_sizes,
    options), the dtype, a format version and the parameters; :func:`load_encoder` rebuilds it.
    """
    _registered_class(type(encoder).__name__, "encoder")
    atomic_save({"format": ENCODER_FORMAT, "version": FORMAT_VERSION, **encoder_record(encoder)}, path)


def load_encoder(path: str | os.PathLike, *, device: Any = None) -> nn.Module:
    """Rebuild an encoder saved by :func:`save_encoder` (or the last parameters of a
    :func:`lsalsa.train_encoder` checkpoint), in its saved dtype, on ``device`` (default CPU).

    Never executes code from the file. Raises :class:`LsalsaError` naming the file when it is
    missing, truncated, corrupt or not an lsalsa encoder.
    """
    obj = read_file(path, (ENCODER_FORMAT, CHECKPOINT_FORMAT))
    record = obj if obj["format"] == ENCODER_FORMAT else obj.get("encoder")
    return build_encoder(record, path, device)


def build_encoder(record: Any, path: Any, device: Any = None) -> nn.Module:
    """The module described by an :func:`encoder_record` read from ``path``."""
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise LsalsaError(f"{path}: holds no encoder configuration")
    cls = _registered_class(record.get("class"), str(path))
    dtype = _DTYPES.get(record.get("dtype"))
    if dtype is None:
        raise LsalsaError(f"{path}: unknown parameter dtype {record.get('dtype')!r}")
    try:
        model = cls.from_config(record["config"], dtype=dtype, device=device)
        model.load_state_dict(record["state_dict"])
    except (LsalsaError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise LsalsaError(f"{path}: the stored {cls.__name__} does not rebuild ({exc})") from exc
    return model


def _registered_class(name: Any, where: str) -> type[nn.Module]:
    for cls in ENCODERS.values():
        if cls.__name__ == name:
            return cls
    known = [cls.__name__ for cls in ENCODERS.values()]
    raise LsalsaError(f"{where}: expected an encoder of class {known}, got {name!r}")
