"""A training run on disk: what :func:`lsalsa.train_encoder` writes to resume bit-for-bit.

One file holds the encoder (class, config, parameters), the optimiser's state (its groups keep
Adam's relative scales), the training config, the history (rollbacks, the found rate and the
step count included), the best epoch's parameters, and the gradient clipper's running norm. The
loop's only randomness is the shuffle, a pure function of ``(seed, epoch)``, so nothing else is
needed to continue exactly.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .encoders.io import CHECKPOINT_FORMAT, encoder_record
from .errors import LsalsaError
from .files import FORMAT_VERSION, read_torch, save_torch


def save_run(path: Any, encoder: nn.Module, optimizer: torch.optim.Optimizer, config: dict[str, Any],
             history: dict[str, Any], best: dict[str, Any] | None, clip: dict[str, Any]) -> None:
    """Write the run atomically (``config`` and ``history`` as dicts of the dataclasses)."""
    mean = clip.get("mean")
    save_torch(
        {
            "format": CHECKPOINT_FORMAT,
            "version": FORMAT_VERSION,
            "encoder": encoder_record(encoder),
            "optimizer": optimizer.state_dict(),
            "train_config": config,
            "epoch": len(history["epoch"]),
            "history": history,
            "best": best,
            "clip": {"mean": None if mean is None else float(mean)},
            "rng": {"seed": config["seed"], "next_epoch": len(history["epoch"])},
        },
        path,
    )


def restore_run(path: Any, encoder: nn.Module, optimizer: torch.optim.Optimizer, config: dict[str, Any],
                resumable: tuple[str, ...]) -> dict[str, Any]:
    """Load a run into ``encoder`` and ``optimizer``; returns ``{"history", "best", "clip"}``.

    The run must have been written for the same encoder (class and config) and the same training
    config, except for the fields in ``resumable``."""
    ckpt = read_torch(path, CHECKPOINT_FORMAT)
    record = ckpt.get("encoder") or {}
    own_config = encoder.config() if hasattr(encoder, "config") else None
    if record.get("class") != type(encoder).__name__ or record.get("config") != own_config:
        raise LsalsaError(
            f"{path}: written for a {record.get('class')} with config {record.get('config')}, "
            f"cannot resume a {type(encoder).__name__} with config {own_config}"
        )
    saved = ckpt.get("train_config") or {}
    changed = [k for k in config if k not in resumable and saved.get(k) != config[k]]
    if changed:
        diffs = ", ".join(f"{k}={saved.get(k)!r} (now {config[k]!r})" for k in changed)
        raise LsalsaError(f"{path}: the run was written with {diffs}; resume with the same TrainConfig or resume=False")
    try:
        encoder.load_state_dict(record["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        return {"history": dict(ckpt["history"]), "best": ckpt.get("best"), "clip": dict(ckpt["clip"])}
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise LsalsaError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})") from exc
