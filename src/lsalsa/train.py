"""Training an encoder to predict optimal codes (Eq. 15): one flat, model-agnostic loop.

``train_encoder`` minimises ``1/(2P) sum_p ||x*_p - f_e(y_p)||^2`` over any ``nn.Module`` mapping
``(B, M) -> (B, N)``, by Adam (relative rates) or the paper's SGD, with a learning rate found by
a range test (``lr="auto"``, :mod:`lsalsa.learning_rate`), warm-up and decay, gradient-norm
clipping, a rollback to the last good epoch (at a lower rate) when training diverges, a
relative-change stopping rule, best-on-validation restore, optional deep supervision, callbacks,
a progress bar and atomic checkpoints that resume bit-for-bit. It keeps no global state:
shuffling uses a ``torch.Generator`` seeded from ``(seed, epoch)``.

With ``distributed`` it runs on every rank of a torch.distributed process group (started by
torchrun): each rank reads its shard of every epoch's permutation, gradients are averaged by
DistributedDataParallel, and every decision is taken from all-reduced losses
(:mod:`lsalsa.ddp`), so K ranks at ``batch_size`` b take the steps of one process at batch K b.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._validation import FLOAT_DTYPES
from .ddp import Ranks, any_rank, from_rank0, join, launched, loss_step, mean_over_ranks
from .errors import LsalsaError
from .learning_rate import find_lr, grad_norm, make_optimizer, schedule_factor, set_lr
from .train_checkpoint import read_run, restore_run, save_run
from .train_config import TrainConfig
from .training_data import Batches, Tensors, epoch_batches, training_set, validation_set

# TrainConfig fields a resumed run may change without changing what it computes
_RESUMABLE_CHANGES = ("epochs", "rel_tol", "device", "checkpoint_every")


@dataclass
class TrainHistory:
    """Per-epoch record of a run (epochs count from 1), returned by :func:`train_encoder`.

    ``val_loss`` holds None where no validation set was given; ``lr`` is each epoch's base rate
    (after warm-up, at its first step); ``best_epoch`` is the epoch whose parameters the encoder
    holds at the end when there was one (0: the initial parameters were never beaten on the
    validation set); ``stop_reason`` is "epochs", "converged" (``rel_tol``) or "callback".
    ``lr_found`` is the rate the ``lr="auto"`` range test chose (None for a given rate);
    ``rollbacks`` one ``{"epoch", "loss", "lr"}`` per diverged epoch that was rolled back (its
    loss, and the base rate it had); ``lr_scale`` the factor rollbacks have put on the rate;
    ``steps`` the optimiser steps taken.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stop_reason: str | None = None
    lr_found: float | None = None
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    lr_scale: float = 1.0
    steps: int = 0

    def rows(self) -> list[dict[str, Any]]:
        """One tidy row per epoch: ``{"epoch", "train_loss", "val_loss", "lr", "time_s"}``."""
        keys = ("epoch", "train_loss", "val_loss", "lr", "time_s")
        return [dict(zip(keys, values)) for values in zip(*(getattr(self, k) for k in keys))]


@dataclass
class TrainState:
    """What a callback sees after each epoch; ``callback(state)`` returning True stops training."""

    epoch: int
    train_loss: float
    val_loss: float | None
    lr: float
    encoder: nn.Module
    optimizer: torch.optim.Optimizer
    history: TrainHistory


def train_encoder(
    encoder: nn.Module,
    Y: torch.Tensor | Batches,
    X_star: torch.Tensor | None = None,
    config: TrainConfig | None = None,
    *,
    val: tuple[torch.Tensor, torch.Tensor] | Batches | None = None,
    callbacks: Sequence[Callable[[TrainState], Any]] = (),
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
    distributed: bool | None = None,
) -> TrainHistory:
    """Train ``encoder`` to map signals to their optimal codes by minimising Eq. 15.

    Parameters
    ----------
    encoder : any ``nn.Module`` mapping ``(B, M) -> (B, N)`` (e.g. :class:`~lsalsa.LSALSA`);
        trained in place.
    Y, X_star : training signals ``(P, M)`` and their optimal codes ``(P, N)`` (tensors or numpy
        arrays, of the encoder's dtype), shuffled every epoch from ``config.seed``; or ``Y`` an
        iterable of ``(Y_b, X_star_b)`` batches (e.g. a ``DataLoader``, re-iterated every epoch,
        its sampler's ``set_epoch`` called if it has one) and ``X_star`` None.
    config : :class:`TrainConfig` (default: ``TrainConfig()``, the library's recipe).
    val : validation data, ``(Y_val, X_star_val)`` or an iterable of batches. With it, the encoder
        ends with the parameters of the epoch of lowest validation loss (the initial ones count
        as epoch 0), and divergence is judged on it.
    callbacks : ``callback(state: TrainState)`` after every epoch; returning True stops training.
    checkpoint : a file to write the run to every ``config.checkpoint_every`` epochs, atomically.
    resume : continue the run saved in ``checkpoint`` (start afresh when the file does not exist
        yet). The resumed run ends with exactly the parameters of an uninterrupted one.
    progress : show a tqdm progress bar over epochs.
    distributed : train on every rank of the torch.distributed process group (the one
        initialised, else the one torchrun describes; gloo on CPU, NCCL on CUDA, ``device="cuda"``
        meaning GPU ``LOCAL_RANK``), each rank called with the same full ``Y`` and ``X_star``
        (arrays or memmaps: it reads its shard of each epoch) and the same arguments.
        ``config.batch_size`` is per rank: K ranks take the steps of one process at batch K times
        as large over the same permutation. When K does not divide P, each epoch leaves out the
        last ``P mod K`` signals of its permutation (as ``DistributedSampler(drop_last=True)``).
        An iterable of batches is each rank's own (give it a ``DistributedSampler``; every rank
        must yield as many batches). Losses, stopping, divergence, the best epoch, callbacks'
        stops and the learning rate are the same on every rank; the ``lr="auto"`` range test
        runs on rank 0 on batches of K ``batch_size``; only rank 0 writes the checkpoint and shows
        progress. None (the default): when the process was started by torchrun. False: one
        process, even under torchrun.

    Returns
    -------
    TrainHistory : per-epoch training and validation loss, learning rate, seconds, rollbacks.

    Raises
    ------
    LsalsaError : on bad arguments (with ``distributed=True``: no process group, a checkpoint
        written by another number of ranks), and when training still diverges after
        ``config.max_rollbacks`` rollbacks in a row (the encoder is then left with the last good
        parameters, or with ``val`` those of lowest validation loss, and no checkpoint is written
        for the diverged epoch).
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise LsalsaError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if resume and checkpoint is None:
        raise LsalsaError("resume: needs the checkpoint path of the run to continue, got checkpoint=None")
    params = _check_encoder(encoder)
    device = params[0].device if config.device is None else torch.device(config.device)
    # joined first: a group it initialises makes "cuda" mean GPU LOCAL_RANK before anything moves there
    ranks = join(device) if (launched() if distributed is None else distributed) else None
    if config.device is not None:
        encoder.to(config.device)
    lead = ranks is None or ranks.rank == 0  # the rank that writes, warns and shows progress
    train_data = training_set(encoder, Y, X_star, "Y", "X_star", params[0].dtype, device)
    val_data = None if val is None else validation_set(encoder, val, params[0].dtype, device)
    loss_fn = functools.partial(batch_loss, weight=config.deep_supervision)
    optimizer = make_optimizer(config.optimizer, encoder, 1.0)  # rates set per step
    world = 1 if ranks is None else ranks.size
    if ranks is not None and isinstance(train_data, Tensors) and len(train_data.Y) % world and lead:
        warnings.warn(f"distributed: {len(train_data.Y)} training signals on {world} ranks; each epoch leaves out "
                      f"the last {len(train_data.Y) % world} of its permutation", RuntimeWarning, stacklevel=2)

    def train_batches(epoch: int) -> Iterable:
        return epoch_batches(train_data, config.batch_size, config.seed, epoch, ranks)

    def evaluate(data: Any) -> float:
        return _evaluate(encoder, epoch_batches(data, config.batch_size, config.seed, None, ranks), device, ranks)

    history, best, clip = TrainHistory(), None, {"mean": None}
    if resume:  # rank 0 reads the file, every rank loads it
        saved = from_rank0(lambda: read_run(checkpoint), ranks)
        if saved is not None:
            saved = restore_run(checkpoint, saved, encoder, optimizer, dataclasses.asdict(config), _RESUMABLE_CHANGES,
                                world)
            history, best, clip = TrainHistory(**saved["history"]), saved["best"], saved["clip"]
    start = len(history.epoch)
    if start == 0:
        if config.lr == "auto":  # on rank 0, on the batches of one process at batch K b (all its shards)
            def whole() -> Iterator:
                return _on(epoch_batches(train_data, config.batch_size * world, config.seed, 0), device)
            found = from_rank0(lambda: find_lr(encoder, config.optimizer, whole, loss_fn, n_steps=config.lr_test_steps),
                               ranks)
            if not found["improved"] and lead:
                warnings.warn(f"lr='auto': no rate tried ({found['lrs'][0]:g} to {found['lrs'][-1]:g}) lowered the "
                              f"training loss in the range test; training at {found['lr']:g}",
                              RuntimeWarning, stacklevel=2)
            history.lr_found = found["lr"]
        # The initial parameters (e.g. exact SALSA) are a candidate too: training that only
        # makes the validation loss worse then leaves the encoder as it started (best_epoch 0).
        reference = evaluate(val_data if val_data is not None else train_data)
        best = {"epoch": 0, "val_loss": reference if val_data is not None else None,
                "loss": reference, "state_dict": _copy_state(encoder)}
        history.best_epoch = 0 if val_data is not None else None
    base_lr = (history.lr_found if config.lr == "auto" else config.lr) * config.lr_scale
    # A resumed run that converged or was stopped by a callback is complete; one that ran out of
    # epochs continues when config.epochs is larger now.
    finished = history.stop_reason in ("converged", "callback")

    def lr_at(epoch: int, step: int) -> float:
        return base_lr * history.lr_scale * schedule_factor(config.schedule, epoch, config.epochs, step,
                                                            config.warmup, config.lr_decay)

    step_loss = loss_step(encoder, loss_fn, ranks)  # DistributedDataParallel under ranks
    bar = tqdm(range(start, config.epochs), initial=start, total=config.epochs, disable=not (progress and lead),
               desc="train")
    for epoch in ([] if finished else bar):
        good = (_copy_state(encoder), copy.deepcopy(optimizer.state_dict()), dict(clip), history.steps)
        for attempt in range(config.max_rollbacks + 1):
            t0 = time.perf_counter()
            lr = lr_at(epoch, config.warmup)  # the epoch's rate after warm-up, as recorded
            train_loss, history.steps = _train_epoch(encoder, optimizer, _on(train_batches(epoch), device), step_loss,
                                                     functools.partial(lr_at, epoch), history.steps, config.clip, clip,
                                                     ranks)
            val_loss = None if val_data is None else evaluate(val_data)
            watched = train_loss if val_loss is None else val_loss
            good_epoch = math.isfinite(watched) and watched <= config.blowup * best["loss"] and _finite(encoder)
            if not any_rank(not good_epoch, ranks):
                break
            # diverged: back to the state before this epoch, at a tenth of the rate
            history.rollbacks.append({"epoch": epoch + 1, "loss": watched, "lr": lr})
            encoder.load_state_dict(good[0])
            optimizer.load_state_dict(good[1])
            clip.clear()
            clip.update(good[2])
            history.steps = good[3]
            if attempt == config.max_rollbacks:
                held = "the parameters before this epoch"
                if best["val_loss"] is not None:  # as a run that ends: the best on validation
                    encoder.load_state_dict(best["state_dict"])
                    held = f"the parameters of epoch {best['epoch']} (its lowest validation loss)"
                raise LsalsaError(
                    f"training diverged in epoch {epoch + 1}: loss {watched} (best {best['loss']:.6g}), still "
                    f"after {config.max_rollbacks} rollbacks, each at a tenth of the rate; lower the learning "
                    f"rate (lr={base_lr:g}). The encoder holds {held}; no checkpoint was written for it."
                )
            history.lr_scale /= 10
        _append(history, epoch + 1, train_loss, val_loss, lr, time.perf_counter() - t0)
        best["loss"] = min(best["loss"], watched)  # the lowest loss so far, that divergence is judged by
        if val_loss is not None and val_loss < best["val_loss"]:
            best = {"epoch": epoch + 1, "val_loss": val_loss, "loss": val_loss, "state_dict": _copy_state(encoder)}
            history.best_epoch = epoch + 1
        bar.set_postfix(loss=f"{train_loss:.4g}", **({} if val_loss is None else {"val": f"{val_loss:.4g}"}))

        history.stop_reason = _stop_reason(history, config, epoch)
        state = TrainState(epoch + 1, train_loss, val_loss, lr, encoder, optimizer, history)
        if any_rank(any([bool(callback(state)) for callback in callbacks]), ranks):  # a list: every callback runs
            history.stop_reason = "callback"
        if lead and checkpoint is not None and ((epoch + 1) % config.checkpoint_every == 0 or history.stop_reason):
            save_run(checkpoint, encoder, optimizer, dataclasses.asdict(config), dataclasses.asdict(history), best, clip,
                     world)
        if history.stop_reason in ("converged", "callback"):
            break
    bar.close()

    if best is not None and best["val_loss"] is not None:
        encoder.load_state_dict(best["state_dict"])
    return history


# ---- the loop's pieces -------------------------------------------------------------------------
def _check_encoder(encoder: Any) -> list[nn.Parameter]:
    if not isinstance(encoder, nn.Module):
        raise LsalsaError(f"encoder: expected a torch.nn.Module, got {type(encoder).__name__}")
    params = [p for p in encoder.parameters() if p.requires_grad]
    if not params:
        raise LsalsaError("encoder: has no trainable parameters")
    if params[0].dtype not in FLOAT_DTYPES:
        raise LsalsaError(f"encoder: expected float32 or float64 parameters, got {params[0].dtype}")
    return params


def _on(batches: Iterable, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    return ((Y_b.to(device, non_blocking=True), X_b.to(device, non_blocking=True)) for Y_b, X_b in batches)


def _loss_sum(X: torch.Tensor, X_star: torch.Tensor) -> torch.Tensor:
    """``1/2 sum_p ||x*_p - x_p||^2`` over a batch (Eq. 15 before dividing by P)."""
    if X.shape != X_star.shape:
        raise LsalsaError(
            f"X_star: batch of shape {tuple(X_star.shape)} does not match the encoder's output {tuple(X.shape)}"
        )
    # one fused kernel forward and one backward, where (X - X*)^2 summed takes three of each
    return 0.5 * F.mse_loss(X, X_star, reduction="sum")


def batch_loss(encoder: nn.Module, Y: torch.Tensor, X_star: torch.Tensor, weight: float = 0.0) -> torch.Tensor:
    """The mean training loss of a batch: Eq. 15 at the output, plus ``weight`` times its mean
    over the earlier layers' read-outs (deep supervision) where the encoder has them."""
    if weight > 0 and hasattr(encoder, "forward_layers"):
        outputs = encoder.forward_layers(Y)
        loss = _loss_sum(outputs[-1], X_star)
        if len(outputs) > 1:
            loss = loss + weight * sum(_loss_sum(X, X_star) for X in outputs[:-1]) / (len(outputs) - 1)
    else:
        loss = _loss_sum(encoder(Y), X_star)
    return loss / Y.shape[0]


def _train_epoch(encoder: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, step_loss: Callable,
                 lr_at: Callable[[int], float], step: int, clip: float, clip_state: dict,
                 ranks: Ranks | None) -> tuple[float, int]:
    """One pass of mini-batch steps at the scheduled rates, gradients clipped at ``clip`` times
    their running mean norm (of the gradients averaged over the ranks, the same on all); returns
    the mean loss over the epoch's signals (of all ranks) and the step count."""
    encoder.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    total, count = 0.0, 0
    for Y_b, X_b in batches:
        set_lr(optimizer, lr_at(step))
        loss = step_loss(Y_b, X_b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            _clip_gradients(params, clip, clip_state)
        optimizer.step()
        step += 1
        total = total + loss.detach() * Y_b.shape[0]  # stays on the device: one sync per epoch
        count += Y_b.shape[0]
    mean, count = mean_over_ranks(total, count, ranks)
    if count == 0:
        raise LsalsaError(
            "Y: the batches yielded no signal this epoch; pass a re-iterable (a DataLoader or a list), "
            "not a one-shot generator" + ("" if ranks is None else f", and at least {ranks.size} signals")
        )
    return mean, step


def _clip_gradients(params: list[nn.Parameter], clip: float, state: dict) -> None:
    """Scale the gradients down to ``clip`` times the running mean of the (clipped) norms, kept
    on the device in ``state["mean"]`` (no host sync per step)."""
    norm = grad_norm(params)
    mean = state.get("mean")
    if mean is None:
        state["mean"] = norm.detach().clone()
        return
    mean = torch.as_tensor(mean, dtype=norm.dtype, device=norm.device)
    coef = torch.clamp(clip * mean / (norm + 1e-30), max=1.0)
    torch._foreach_mul_([p.grad for p in params if p.grad is not None], coef)
    state["mean"] = 0.99 * mean + 0.01 * torch.minimum(norm, clip * mean)


@torch.no_grad()
def _evaluate(encoder: nn.Module, batches: Iterable, device: torch.device, ranks: Ranks | None) -> float:
    """Eq. 15 on a data set, in evaluation mode (the mean over all ranks' parts)."""
    encoder.eval()
    total, count = 0.0, 0
    for Y_b, X_b in _on(batches, device):
        total = total + _loss_sum(encoder(Y_b), X_b)
        count += Y_b.shape[0]
    mean, count = mean_over_ranks(total, count, ranks)
    if count == 0:
        raise LsalsaError("val: the validation batches yielded no signal")
    return mean


def _finite(encoder: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in encoder.parameters())


def _append(history: TrainHistory, epoch: int, train_loss: float, val_loss: float | None, lr: float,
            seconds: float) -> None:
    history.epoch.append(epoch)
    history.train_loss.append(train_loss)
    history.val_loss.append(val_loss)
    history.lr.append(lr)
    history.time_s.append(seconds)


def _stop_reason(history: TrainHistory, config: TrainConfig, epoch: int) -> str | None:
    """The paper's rule: stop after ``epochs``, or when the epoch loss's relative change < rel_tol."""
    if len(history.train_loss) >= 2 and config.rel_tol > 0:
        previous, current = history.train_loss[-2], history.train_loss[-1]
        if abs(current - previous) < config.rel_tol * abs(previous):
            return "converged"
    return "epochs" if epoch + 1 >= config.epochs else None


def _copy_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in encoder.state_dict().items()}
