"""The learning rate of :func:`lsalsa.train_encoder`: optimiser, schedule and the range test.

Three pieces, so that no rate has to be picked by hand:

- **Relative rates for Adam** (:func:`make_optimizer`). Adam's step is about ``lr`` per entry
  whatever the gradient's size, so one absolute rate is too large for a matrix of small entries
  (an encoder's ``S: (N, N)`` at N = 512 has entries of about 1e-2; a step of 1e-3 on every
  entry moves ``S`` by about ``1e-3 N`` in spectral norm) and too small for a threshold of about
  1. Each parameter tensor gets its own group whose rate is ``lr`` times the root mean square
  of its initial entries, so ``lr`` is a *relative* change per step. SGD keeps the paper's
  absolute rate.
- **The schedule** (:func:`schedule_factor`): a linear warm-up over the first ``warmup`` steps
  (Adam's first steps are its largest), then a cosine decay over the epochs (or the paper's
  ``lr_decay**epoch``, or a constant rate). It is a function of the epoch and the step count
  only, so a resumed run recomputes it exactly.
- **The range test** (:func:`find_lr`, ``lr="auto"``): copies of the encoder take a few steps
  at each of a grid of rates, from the same initial parameters; the best few rates run again
  for longer, and the rate whose copy ends with the lowest loss on the same fixed batches is
  used. The encoder itself is not touched.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .errors import LsalsaError

# The rates the range test tries: relative ones for Adam (a step of 1e-5 to 0.3 of each tensor's
# RMS), absolute ones for SGD, whose gradients have no natural scale.
LR_CANDIDATES = {"adam": [10.0 ** (k / 2) for k in range(-10, 0)], "sgd": [10.0**k for k in range(-8, 1)]}
SCHEDULES = ("cosine", "exponential", "constant")


def make_optimizer(name: str, encoder: nn.Module, lr: float) -> torch.optim.Optimizer:
    """SGD at the absolute rate ``lr``, or Adam with one group per parameter tensor whose rate
    is ``lr`` times the tensor's initial RMS (``group["scale"]``, saved with the optimiser's
    state, so a resumed run keeps its scales)."""
    params = [p for p in encoder.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD([{"params": params, "scale": 1.0}], lr=lr)
    groups = []
    for p in params:
        rms = float(p.detach().pow(2).mean().sqrt())
        scale = rms if math.isfinite(rms) and rms > 0 else 1.0  # a tensor of zeros: absolute
        groups.append({"params": [p], "scale": scale, "lr": lr * scale})
    return torch.optim.Adam(groups, lr=lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every group the rate ``lr`` times its scale."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("scale", 1.0)


def schedule_factor(schedule: str, epoch: int, epochs: int, step: int, warmup: int, lr_decay: float) -> float:
    """The factor on the base rate for a step: ``epoch`` (0-based) of ``epochs``, ``step`` the
    number of optimiser steps taken before it in the whole run."""
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    elif schedule == "exponential":
        decay = lr_decay**epoch
    else:
        decay = 1.0
    return warm * decay


def find_lr(
    encoder: nn.Module,
    optimizer_name: str,
    batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]],
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    n_steps: int = 20,
    candidates: Sequence[float] | None = None,
    n_eval: int = 4,
    keep: int = 3,
    longer: int = 3,
) -> dict[str, Any]:
    """The learning-rate range test: which rate lowers the loss most in a short run.

    From the encoder's initial parameters, a copy takes ``n_steps`` steps at each candidate
    rate, warmed up linearly over them as the run itself is (step k at ``(k + 1) / n`` of the
    rate: Adam's first steps are its largest); the loss is then measured on the same ``n_eval``
    fixed batches for all. The ``keep`` best rates are then run again from the start for
    ``longer`` times as many steps, and the lowest of those wins (successive halving, as in
    Hyperband): after 20 steps the largest useful rates can still be in their noisy first
    steps, most where the start is far above the optimum (measured: LSALSA at T = 1 on a
    2048-atom MCA problem starts 1e5 times above its final loss; its 20-step losses did not
    order the rates as full runs did, its 60-step ones did).

    Unrolled encoders start at the solver, already near a good solution, so the usual single
    sweep from small to large rates (Smith 2017) mostly measures batch-to-batch noise there;
    runs from the same start, scored on the same batches, compare the rates themselves.

    Parameters
    ----------
    encoder : the module to be trained (left as it is: copies take the steps).
    optimizer_name : "adam" (relative rates) or "sgd".
    batches : returns a fresh iterator of ``(Y_b, X_b)`` batches (called again when one runs out).
    loss_fn : ``loss_fn(module, Y_b, X_b) -> scalar`` mean loss of a batch.
    n_steps : steps per candidate in the first round.
    candidates : the rates tried; default :data:`LR_CANDIDATES` of the optimiser.
    n_eval : batches (the first ones of ``batches()``) that score every candidate.
    keep, longer : how many rates the second round runs, for ``longer * n_steps`` steps
        (``keep=0``: one round).

    Returns
    -------
    ``{"lr": the chosen rate, "lrs": [...], "losses": [...], "initial": loss before any step,
    "second": {rate: loss after the second round}, "improved": whether the rate chosen beat
    the initial loss}``: ``losses`` are the first round's (a rate whose loss is not finite scores
    infinity). When no rate of the last round beats the initial loss, the smallest candidate is
    returned.
    """
    candidates = list(candidates or LR_CANDIDATES[optimizer_name])
    scoring = [batch for _, batch in zip(range(n_eval), _cycle(batches))]

    @torch.no_grad()
    def score(module: nn.Module) -> float:
        value = sum(float(loss_fn(module, Y_b, X_b)) for Y_b, X_b in scoring) / len(scoring)
        return value if math.isfinite(value) else math.inf

    def trial(lr: float, n: int) -> float:
        probe = copy.deepcopy(encoder)
        probe.train()
        optimizer = make_optimizer(optimizer_name, probe, lr)
        for k, (Y_b, X_b) in zip(range(n), _cycle(batches)):
            set_lr(optimizer, lr * (k + 1) / n)
            loss = loss_fn(probe, Y_b, X_b)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        probe.eval()
        return score(probe)

    initial = score(encoder)
    losses = [trial(lr, n_steps) for lr in candidates]
    final = dict(zip(candidates, losses))
    second = {}
    if keep > 0:
        best = sorted(range(len(candidates)), key=losses.__getitem__)[:keep]
        second = {candidates[i]: trial(candidates[i], longer * n_steps) for i in sorted(best) if math.isfinite(losses[i])}
        final = second or final
    lr = min(final, key=final.__getitem__)
    improved = final[lr] < initial
    return {"lr": lr if improved else candidates[0], "lrs": candidates, "losses": losses, "initial": initial,
            "second": second, "improved": improved}


def _cycle(batches: Callable[[], Iterator]) -> Iterator:
    """The batches of ``batches()`` over and over (a fresh iterator each time round)."""
    while True:
        empty = True
        for batch in batches():
            empty = False
            yield batch
        if empty:
            raise LsalsaError(
                "Y: the batches yielded no signal for the learning-rate range test; pass a "
                "re-iterable (a DataLoader or a list), not a one-shot generator"
            )


def grad_norm(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """The gradients' total 2-norm, a 0-d tensor on their device (no host sync)."""
    return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
