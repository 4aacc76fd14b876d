"""The training pairs of :func:`lsalsa.train_encoder`: ``(Y, X_star)`` checked against the
encoder, and the mini-batches of each epoch, shuffled by a permutation that is a pure function of
``(seed, epoch)`` (so a resumed run redraws it exactly, and every rank of a distributed run
draws the same one and reads its shard of it, :func:`lsalsa.ddp.shard`)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._validation import check_finite
from .ddp import Ranks, shard
from .errors import LsalsaError

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Tensors:
    """A data set given as tensors (as opposed to an iterable of batches): ``Y: (P, M)``,
    ``X_star: (P, N)``."""

    Y: torch.Tensor
    X_star: torch.Tensor


def training_set(encoder: nn.Module, Y: Any, X_star: Any, y_name: str, x_name: str,
             dtype: torch.dtype, device: torch.device):
    """Validated ``(Y, X_star)`` tensors on ``device``, or the iterable of batches as given."""
    Y, X_star = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in (Y, X_star))
    if not isinstance(Y, torch.Tensor):
        if X_star is not None:
            raise LsalsaError(f"{x_name}: expected None when {y_name} is an iterable of (Y, X_star) batches")
        if not isinstance(Y, Iterable):
            raise LsalsaError(
                f"{y_name}: expected a tensor or an iterable of (Y, X_star) batches, got {type(Y).__name__}"
            )
        return Y
    if not isinstance(X_star, torch.Tensor):
        raise LsalsaError(f"{x_name}: expected a (P, N) tensor of optimal codes, got {type(X_star).__name__}")
    n_features, n_atoms = getattr(encoder, "n_features", None), getattr(encoder, "n_atoms", None)
    _check_matrix(Y, y_name, n_features, dtype)
    _check_matrix(X_star, x_name, n_atoms, dtype)
    if X_star.shape[0] != Y.shape[0]:
        raise LsalsaError(f"{x_name}: expected {Y.shape[0]} rows like {y_name}, got {X_star.shape[0]}")
    if Y.shape[0] == 0:
        raise LsalsaError(f"{y_name}: expected at least one signal, got shape {tuple(Y.shape)}")
    return Tensors(Y.to(device), X_star.to(device))


def validation_set(encoder: nn.Module, val: Any, dtype: torch.dtype, device: torch.device):
    if isinstance(val, (tuple, list)) and len(val) == 2 and isinstance(val[0], (torch.Tensor, np.ndarray)):
        return training_set(encoder, val[0], val[1], "val[0]", "val[1]", dtype, device)
    return training_set(encoder, val, None, "val", "val", dtype, device)


def _check_matrix(T: torch.Tensor, name: str, n_cols: int | None, dtype: torch.dtype) -> None:
    cols = "N" if n_cols is None else n_cols
    if T.ndim != 2 or (n_cols is not None and T.shape[1] != n_cols):
        raise LsalsaError(f"{name}: expected shape (P, {cols}), got {tuple(T.shape)}")
    if T.dtype != dtype:
        raise LsalsaError(
            f"{name}: dtype {T.dtype} does not match the encoder's {dtype}; convert one of them "
            f"(e.g. encoder.to({T.dtype}))"
        )
    check_finite(T, name)


def epoch_batches(data: Any, batch_size: int, seed: int, epoch: int | None, ranks: Ranks | None = None
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of one epoch: a permutation drawn from ``(seed, epoch)`` for tensors (in order
    when ``epoch`` is None, for evaluation), of which a distributed run's rank takes its shard
    (:func:`lsalsa.ddp.shard`: equal parts in training, all signals once in evaluation); an
    iterable's own batches otherwise (on each rank its own, e.g. through a DistributedSampler)."""
    if not isinstance(data, Tensors):
        sampler = getattr(data, "sampler", None)
        if epoch is not None and callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch)  # e.g. a DistributedSampler, so each epoch reshuffles
        return iter(data)
    Y, X_star = data.Y, data.X_star
    if epoch is None:
        order = shard(torch.arange(Y.shape[0]), ranks, drop=False)
    else:
        order = shard(torch.randperm(Y.shape[0], generator=_epoch_generator(seed, epoch)), ranks)
    order = order.to(Y.device)
    return ((Y[idx], X_star[idx]) for idx in order.split(batch_size))


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # Epoch k's shuffle needs no state from earlier epochs, so a resumed run redraws it exactly.
    # SeedSequence mixes (seed, epoch) (a plain seed + epoch would give seed 0's epoch 1 the
    # shuffle of seed 1's epoch 0).
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]) >> 1
    return torch.Generator().manual_seed(mixed)
