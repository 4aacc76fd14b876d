"""Training an encoder to predict optimal codes (Eq. 15): one flat, model-agnostic loop.

``train_encoder`` minimises ``1/(2P) sum_p ||x*_p - f_e(y_p)||^2`` over any ``nn.Module`` mapping
``(B, M) -> (B, N)``, by SGD (the paper) or Adam, with a per-epoch learning-rate decay, a
relative-change stopping rule, best-on-validation restore, callbacks, a progress bar and atomic
checkpoints that resume bit-for-bit. It keeps no global state: shuffling uses a
``torch.Generator`` seeded from ``(seed, epoch)``, so the same code runs unchanged under DDP.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._validation import FLOAT_DTYPES, check_nonneg_int, check_positive, check_positive_int
from .encoders.io import CHECKPOINT_FORMAT, encoder_record
from .files import FORMAT_VERSION, read_torch, save_torch
from .errors import LsalsaError
from .training_data import Batches, epoch_batches, training_set, validation_set

OPTIMIZERS = ("sgd", "adam")
# TrainConfig fields a resumed run may change without changing what it computes
_RESUMABLE_CHANGES = ("epochs", "rel_tol", "device", "checkpoint_every")


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_encoder`.

    Attributes
    ----------
    epochs : the most passes over the training data (>= 1).
    batch_size : signals per gradient step (>= 1; ignored when batches are given as an iterable).
    lr : initial learning rate (> 0). Problem-dependent: the paper grid-searched 1e-7 to 1e-2;
        too large a rate makes training diverge, which :func:`train_encoder` reports.
    lr_decay : factor applied to the learning rate after every epoch, ``lr * lr_decay**epoch``
        (0 < lr_decay <= 1; 1 keeps it constant).
    optimizer : "sgd" (plain SGD, as in the paper) or "adam".
    rel_tol : stop when the training loss changes by less than this, relatively, from one epoch
        to the next (the paper uses 1e-6; 0 disables the rule).
    seed : seeds the per-epoch shuffle of tensor data, ``(seed, epoch) -> permutation``.
    device : where to train (e.g. "cuda"); None trains where the encoder's parameters are.
    checkpoint_every : with a checkpoint path, write it every this many epochs (and at the end).
    """

    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    lr_decay: float = 1.0
    optimizer: str = "sgd"
    rel_tol: float = 1e-6
    seed: int = 0
    device: str | None = None
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        self.epochs = check_positive_int(self.epochs, "epochs")
        self.batch_size = check_positive_int(self.batch_size, "batch_size")
        self.lr = check_positive(self.lr, "lr")
        self.lr_decay = check_positive(self.lr_decay, "lr_decay")
        if self.lr_decay > 1:
            raise LsalsaError(f"lr_decay: expected 0 < lr_decay <= 1, got {self.lr_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise LsalsaError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.rel_tol != 0:
            self.rel_tol = check_positive(self.rel_tol, "rel_tol")
        self.seed = check_nonneg_int(self.seed, "seed")
        self.device = None if self.device is None else str(torch.device(self.device))
        self.checkpoint_every = check_positive_int(self.checkpoint_every, "checkpoint_every")


@dataclass
class TrainHistory:
    """Per-epoch record of a run (epochs count from 1), returned by :func:`train_encoder`.

    ``val_loss`` holds None where no validation set was given; ``best_epoch`` is the epoch whose
    parameters the encoder holds at the end when there was one (0: the initial parameters were
    never beaten on the validation set); ``stop_reason`` is "epochs",
    "converged" (``rel_tol``) or "callback".
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stop_reason: str | None = None

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
) -> TrainHistory:
    """Train ``encoder`` to map signals to their optimal codes by minimising Eq. 15.

    Parameters
    ----------
    encoder : any ``nn.Module`` mapping ``(B, M) -> (B, N)`` (e.g. :class:`~lsalsa.LSALSA`);
        trained in place.
    Y, X_star : training signals ``(P, M)`` and their optimal codes ``(P, N)`` (tensors or numpy
        arrays, of the encoder's dtype), shuffled every epoch from ``config.seed``; or ``Y`` an iterable of
        ``(Y_b, X_star_b)`` batches (e.g. a ``DataLoader``, re-iterated every epoch, its sampler's
        ``set_epoch`` called if it has one) and ``X_star`` None.
    config : :class:`TrainConfig` (default: ``TrainConfig()``).
    val : validation data, ``(Y_val, X_star_val)`` or an iterable of batches. With it, the encoder
        ends with the parameters of the epoch of lowest validation loss.
    callbacks : ``callback(state: TrainState)`` after every epoch; returning True stops training.
    checkpoint : a file to write the run to every ``config.checkpoint_every`` epochs, atomically.
    resume : continue the run saved in ``checkpoint`` (start afresh when the file does not exist
        yet). The resumed run ends with exactly the parameters of an uninterrupted one.
    progress : show a tqdm progress bar over epochs.

    Returns
    -------
    TrainHistory : per-epoch training and validation loss, learning rate, seconds.

    Raises
    ------
    LsalsaError : on bad arguments, and when training diverges (a NaN/Inf loss or parameter); no
        checkpoint is written for a diverged epoch, and the encoder is left as it diverged.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise LsalsaError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if resume and checkpoint is None:
        raise LsalsaError("resume: needs the checkpoint path of the run to continue, got checkpoint=None")
    params = _check_encoder(encoder)
    if config.device is not None:
        encoder.to(config.device)
    device = params[0].device if config.device is None else torch.device(config.device)
    train_data = training_set(encoder, Y, X_star, "Y", "X_star", params[0].dtype, device)
    val_data = None if val is None else validation_set(encoder, val, params[0].dtype, device)
    optimizer = _make_optimizer(config, encoder.parameters())

    history, best = TrainHistory(), None
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        history, best = _restore(checkpoint, encoder, optimizer, config)
    start = len(history.epoch)
    if start == 0 and val_data is not None:
        # The initial parameters (e.g. exact SALSA) are a candidate too: training that only
        # makes the validation loss worse then leaves the encoder as it started (best_epoch 0).
        initial = _evaluate(encoder, epoch_batches(val_data, config.batch_size, config.seed, None), device)
        best = {"epoch": 0, "val_loss": initial, "state_dict": _copy_state(encoder)}
        history.best_epoch = 0
    # A resumed run that converged or was stopped by a callback is complete; one that ran out of
    # epochs continues when config.epochs is larger now.
    finished = history.stop_reason in ("converged", "callback")

    bar = tqdm(range(start, config.epochs), initial=start, total=config.epochs, disable=not progress, desc="train")
    for epoch in ([] if finished else bar):
        lr = config.lr * config.lr_decay**epoch  # a function of the epoch, so resuming restores it
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        train_loss = _train_epoch(encoder, optimizer, epoch_batches(train_data, config.batch_size, config.seed, epoch), device)
        val_loss = None if val_data is None else _evaluate(encoder, epoch_batches(val_data, config.batch_size, config.seed, None), device)
        _check_diverged(encoder, epoch + 1, train_loss, val_loss, lr)
        _append(history, epoch + 1, train_loss, val_loss, lr, time.perf_counter() - t0)
        if val_loss is not None and (best is None or val_loss < best["val_loss"]):
            best = {"epoch": epoch + 1, "val_loss": val_loss, "state_dict": _copy_state(encoder)}
            history.best_epoch = epoch + 1
        bar.set_postfix(loss=f"{train_loss:.4g}", **({} if val_loss is None else {"val": f"{val_loss:.4g}"}))

        history.stop_reason = _stop_reason(history, config, epoch)
        state = TrainState(epoch + 1, train_loss, val_loss, lr, encoder, optimizer, history)
        if any([bool(callback(state)) for callback in callbacks]):  # a list: every callback runs
            history.stop_reason = "callback"
        if checkpoint is not None and ((epoch + 1) % config.checkpoint_every == 0 or history.stop_reason):
            _save_checkpoint(checkpoint, encoder, optimizer, config, history, best)
        if history.stop_reason in ("converged", "callback"):
            break
    bar.close()

    if best is not None:
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


def _make_optimizer(config: TrainConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr)
    return torch.optim.Adam(params, lr=config.lr)


def _loss_sum(encoder: nn.Module, Y: torch.Tensor, X_star: torch.Tensor) -> torch.Tensor:
    """``1/2 sum_p ||x*_p - f_e(y_p)||^2`` over a batch (Eq. 15 before dividing by P)."""
    X = encoder(Y)
    if X.shape != X_star.shape:
        raise LsalsaError(
            f"X_star: batch of shape {tuple(X_star.shape)} does not match the encoder's output {tuple(X.shape)}"
        )
    # one fused kernel forward and one backward, where (X - X*)^2 summed takes three of each
    return 0.5 * F.mse_loss(X, X_star, reduction="sum")


def _train_epoch(encoder: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable,
                 device: torch.device) -> float:
    """One pass of mini-batch steps; returns the mean of Eq. 15 over the epoch's batches."""
    encoder.train()
    total, count = 0.0, 0
    for Y_b, X_b in batches:
        Y_b, X_b = Y_b.to(device, non_blocking=True), X_b.to(device, non_blocking=True)
        loss = _loss_sum(encoder, Y_b, X_b) / Y_b.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total = total + loss.detach() * Y_b.shape[0]  # stays on the device: one sync per epoch
        count += Y_b.shape[0]
    if count == 0:
        raise LsalsaError(
            "Y: the batches yielded no signal this epoch; pass a re-iterable (a DataLoader or a list), "
            "not a one-shot generator"
        )
    return float(total) / count


@torch.no_grad()
def _evaluate(encoder: nn.Module, batches: Iterable, device: torch.device) -> float:
    """Eq. 15 on a data set, in evaluation mode."""
    encoder.eval()
    total, count = 0.0, 0
    for Y_b, X_b in batches:
        total = total + _loss_sum(encoder, Y_b.to(device), X_b.to(device))
        count += Y_b.shape[0]
    if count == 0:
        raise LsalsaError("val: the validation batches yielded no signal")
    return float(total) / count


def _check_diverged(encoder: nn.Module, epoch: int, train_loss: float, val_loss: float | None, lr: float) -> None:
    bad = [name for name, p in encoder.named_parameters() if not bool(torch.isfinite(p).all())]
    losses_ok = math.isfinite(train_loss) and (val_loss is None or math.isfinite(val_loss))
    if bad or not losses_ok:
        raise LsalsaError(
            f"training diverged in epoch {epoch}: train loss {train_loss}, validation loss {val_loss}, "
            f"non-finite parameters {bad}; lower the learning rate (lr={lr:g}). No checkpoint was written "
            f"for this epoch."
        )


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


# ---- checkpoints -------------------------------------------------------------------------------
def _save_checkpoint(path: Any, encoder: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig,
                     history: TrainHistory, best: dict[str, Any] | None) -> None:
    save_torch(
        {
            "format": CHECKPOINT_FORMAT,
            "version": FORMAT_VERSION,
            "encoder": encoder_record(encoder),
            "optimizer": optimizer.state_dict(),
            "train_config": dataclasses.asdict(config),
            "epoch": len(history.epoch),
            "history": dataclasses.asdict(history),
            "best": best,
            # The loop's only randomness is the shuffle, a pure function of (seed, epoch).
            "rng": {"seed": config.seed, "next_epoch": len(history.epoch)},
        },
        path,
    )


def _restore(path: Any, encoder: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig):
    """Load a checkpoint into ``encoder`` and ``optimizer``; returns ``(history, best)``."""
    ckpt = read_torch(path, CHECKPOINT_FORMAT)
    record = ckpt.get("encoder") or {}
    own_config = encoder.config() if hasattr(encoder, "config") else None
    if record.get("class") != type(encoder).__name__ or record.get("config") != own_config:
        raise LsalsaError(
            f"{path}: written for a {record.get('class')} with config {record.get('config')}, "
            f"cannot resume a {type(encoder).__name__} with config {own_config}"
        )
    saved = ckpt.get("train_config") or {}
    ours = dataclasses.asdict(config)
    changed = [k for k in ours if k not in _RESUMABLE_CHANGES and saved.get(k) != ours[k]]
    if changed:
        diffs = ", ".join(f"{k}={saved.get(k)!r} (now {ours[k]!r})" for k in changed)
        raise LsalsaError(f"{path}: the run was written with {diffs}; resume with the same TrainConfig or resume=False")
    try:
        encoder.load_state_dict(record["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        history = TrainHistory(**ckpt["history"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise LsalsaError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})") from exc
    return history, ckpt.get("best")
