"""Encoders to and from one file, and the record of an encoder that models and checkpoints embed.

A file is a plain dict written by :func:`lsalsa.files.save_torch`: JSON-able metadata (format,
version, class name, config, dtype) and tensors. It is read by :func:`lsalsa.files.read_torch`
(``weights_only=True``), so loading a file never runs code from it.
"""
from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from .._validation import all_finite
from ..errors import LsalsaError
from ..files import FORMAT_VERSION, read_torch, save_torch
from .lista import LISTA
from .lsalsa import LSALSA

ENCODERS: dict[str, type[nn.Module]] = {"lista": LISTA, "lsalsa": LSALSA}

ENCODER_FORMAT = "lsalsa-encoder"
CHECKPOINT_FORMAT = "lsalsa-checkpoint"

_DTYPES = {str(d): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


# ---- encoders -------------------------------------------------------------------------------
def encoder_record(encoder: nn.Module) -> dict[str, Any]:
    """What rebuilds an encoder: class name, JSON-able config (None for a module without
    ``config()``), dtype, and the state dict. Refuses (:class:`LsalsaError`) an encoder whose
    parameters or buffers hold a NaN or Inf (a diverged run): no file is written for it."""
    _check_finite_state(encoder.state_dict(), "encoder")
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
    An encoder with a NaN or Inf parameter is refused (:class:`LsalsaError`), no file written.
    """
    _registered_class(type(encoder).__name__, "encoder")
    save_torch({"format": ENCODER_FORMAT, "version": FORMAT_VERSION, **encoder_record(encoder)}, path)


def load_encoder(path: str | os.PathLike, *, device: Any = None) -> nn.Module:
    """Rebuild an encoder saved by :func:`save_encoder` (or the last parameters of a
    :func:`lsalsa.train_encoder` checkpoint), in its saved dtype, on ``device`` (default CPU).

    Never executes code from the file. Raises :class:`LsalsaError` naming the file when it is
    missing, truncated, corrupt, not an lsalsa encoder, or holds NaN/Inf parameters.
    """
    obj = read_torch(path, (ENCODER_FORMAT, CHECKPOINT_FORMAT))
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
    _check_finite_state(model.state_dict(), f"{path}: the stored {cls.__name__}")
    return model


def _check_finite_state(state: dict[str, torch.Tensor], what: str) -> None:
    """Raise naming the first floating tensor of ``state`` that holds a NaN or Inf."""
    for name, t in state.items():
        if t.is_floating_point() and t.numel() and not all_finite(t.detach()):
            n_bad = int((~torch.isfinite(t)).sum())
            raise LsalsaError(f"{what}: {name} holds {n_bad} NaN/Inf entries (a diverged encoder); refusing it")


def _registered_class(name: Any, where: str) -> type[nn.Module]:
    for cls in ENCODERS.values():
        if cls.__name__ == name:
            return cls
    known = [cls.__name__ for cls in ENCODERS.values()]
    raise LsalsaError(f"{where}: expected an encoder of class {known}, got {name!r}")
