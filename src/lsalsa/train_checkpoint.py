"""A training run on disk: what :func:`lsalsa.train_encoder` writes to resume bit-for-bit.

One file holds the encoder (class, config, parameters), the optimiser's state (its groups keep
Adam's relative scales), the training config, the history (rollbacks, the found rate and the
step count included), the best epoch's parameters, the gradient clipper's running norm and the
number of ranks that trained it (a distributed run's steps depend on it). The loop's only
randomness is the shuffle, a pure function of ``(seed, epoch)``, so nothing else is needed to
continue exactly.
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .encoders.io import CHECKPOINT_FORMAT, encoder_record
from .errors import LsalsaError
from .files import FORMAT_VERSION, read_torch, save_torch


def save_run(path: Any, encoder: nn.Module, optimizer: torch.optim.Optimizer, config: dict[str, Any],
             history: dict[str, Any], best: dict[str, Any] | None, clip: dict[str, Any], world_size: int = 1) -> None:
    """Write the run atomically (``config`` and ``history`` as dicts of the dataclasses;
    ``world_size`` the ranks of a distributed run)."""
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
            "world_size": world_size,
        },
        path,
    )


def read_run(path: Any) -> dict[str, Any] | None:
    """The run saved in ``path`` as read from disk, None when there is no such file yet."""
    return read_torch(path, CHECKPOINT_FORMAT) if os.path.exists(path) else None


def restore_run(path: Any, ckpt: dict[str, Any], encoder: nn.Module, optimizer: torch.optim.Optimizer,
                config: dict[str, Any], resumable: tuple[str, ...], world_size: int = 1) -> dict[str, Any]:
    """Load the run ``ckpt`` (read from ``path`` by :func:`read_run`) into ``encoder`` and
    ``optimizer``; returns ``{"history", "best", "clip"}``.

    The run must have been written for the same encoder (class and config), the same training
    config, except for the fields in ``resumable``, and the same number of ranks."""
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
    saved_ranks = ckpt.get("world_size", 1)
    if saved_ranks != world_size:
        raise LsalsaError(f"{path}: the run was trained on {saved_ranks} rank(s), not {world_size}: its steps depend "
                          f"on it; resume with the same world size (torchrun --nproc-per-node) or resume=False")
    try:
        encoder.load_state_dict(record["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        return {"history": dict(ckpt["history"]), "best": ckpt.get("best"), "clip": dict(ckpt["clip"])}
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise LsalsaError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})") from exc
