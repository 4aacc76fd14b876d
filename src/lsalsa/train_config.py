"""The settings of :func:`lsalsa.train_encoder`: the library's training recipe as a dataclass."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._validation import check_nonneg_float, check_nonneg_int, check_positive, check_positive_int
from .errors import LsalsaError
from .learning_rate import SCHEDULES

OPTIMIZERS = ("sgd", "adam")


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_encoder`; the defaults are the library's recipe
    (measured in ``benchmarks/bench_learned_gain.py``), with no rate to pick.

    Attributes
    ----------
    epochs : the most passes over the training data (>= 1).
    batch_size : signals per gradient step (>= 1; ignored when batches are given as an iterable);
        per rank in a distributed run, whose steps are those of one process at world size times it.
    lr : the base learning rate (> 0), or "auto": the range test of
        :func:`lsalsa.learning_rate.find_lr` picks it (``lr_test_steps`` steps at each of ten
        rates on copies of the encoder, then three times as many for the best three; the rate
        found is in ``TrainHistory.lr_found``). For Adam the rate is
        relative: each parameter tensor moves by about ``lr`` times its initial RMS per step.
    lr_scale : multiplies the base rate, given or found (> 0; a search's learning-rate factor
        on the range test's rate).
    optimizer : "adam" (relative rates, the default) or "sgd" (plain SGD at an absolute rate, as
        in the paper).
    schedule : "cosine" (decay to 0 over ``epochs``), "exponential" (``lr_decay**epoch``, the
        paper's) or "constant"; all after a linear warm-up of ``warmup`` steps.
    warmup : optimiser steps of linear warm-up (0: none).
    lr_decay : the per-epoch factor of the "exponential" schedule (0 < lr_decay <= 1).
    clip : clip the gradient's norm at ``clip`` times its running mean (an exponential average
        of the clipped norms), so that one spike cannot throw the parameters far; 0 disables.
    blowup : an epoch whose loss (validation loss when there is a validation set) exceeds
        ``blowup`` times the best seen so far, or is not finite, has diverged: the run rolls back
        to the parameters and optimiser state before it, divides the rate by 10 and repeats the
        epoch (recorded in ``TrainHistory.rollbacks``).
    max_rollbacks : rollbacks in a row after which training stops with an error.
    deep_supervision : weight of the intermediate layers' losses: the loss is Eq. 15 at the
        output plus ``deep_supervision`` times the mean of Eq. 15 at the read-outs after layers
        1..T-1 (for encoders with ``forward_layers``; 0 disables). The reported losses, and the
        validation loss that picks the best epoch, are Eq. 15 at the output.
    rel_tol : stop when the training loss changes by less than this, relatively, from one epoch
        to the next (the paper uses 1e-6; 0 disables the rule).
    seed : seeds the per-epoch shuffle of tensor data, ``(seed, epoch) -> permutation``.
    device : where to train (e.g. "cuda"); None trains where the encoder's parameters are.
    checkpoint_every : with a checkpoint path, write it every this many epochs (and at the end).
    lr_test_steps : steps per rate of the ``lr="auto"`` range test's first round.
    """

    epochs: int = 100
    batch_size: int = 100
    lr: float | str = "auto"
    lr_scale: float = 1.0
    optimizer: str = "adam"
    schedule: str = "cosine"
    warmup: int = 50
    lr_decay: float = 1.0
    clip: float = 5.0
    blowup: float = 4.0
    max_rollbacks: int = 6
    deep_supervision: float = 0.0
    rel_tol: float = 1e-6
    seed: int = 0
    device: str | None = None
    checkpoint_every: int = 1
    lr_test_steps: int = 20

    def __post_init__(self) -> None:
        self.epochs = check_positive_int(self.epochs, "epochs")
        self.batch_size = check_positive_int(self.batch_size, "batch_size")
        if self.lr != "auto":
            self.lr = check_positive(self.lr, "lr")
        self.lr_scale = check_positive(self.lr_scale, "lr_scale")
        self.lr_decay = check_positive(self.lr_decay, "lr_decay")
        if self.lr_decay > 1:
            raise LsalsaError(f"lr_decay: expected 0 < lr_decay <= 1, got {self.lr_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise LsalsaError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise LsalsaError(f"schedule: expected one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.lr_decay != 1 and self.schedule != "exponential":
            raise LsalsaError(f"lr_decay: {self.lr_decay} is the factor of schedule='exponential', "
                              f"not of schedule={self.schedule!r}")
        self.warmup = check_nonneg_int(self.warmup, "warmup")
        self.clip = check_nonneg_float(self.clip, "clip")
        self.blowup = check_positive(self.blowup, "blowup")
        if self.blowup <= 1:
            raise LsalsaError(f"blowup: expected a factor > 1, got {self.blowup}")
        self.max_rollbacks = check_nonneg_int(self.max_rollbacks, "max_rollbacks")
        self.deep_supervision = check_nonneg_float(self.deep_supervision, "deep_supervision")
        if self.rel_tol != 0:
            self.rel_tol = check_positive(self.rel_tol, "rel_tol")
        self.seed = check_nonneg_int(self.seed, "seed")
        self.device = None if self.device is None else str(torch.device(self.device))
        self.checkpoint_every = check_positive_int(self.checkpoint_every, "checkpoint_every")
        self.lr_test_steps = check_positive_int(self.lr_test_steps, "lr_test_steps")
