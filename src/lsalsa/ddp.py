"""Training on torch.distributed: the process group, each rank's shard of an epoch, and the
decisions every rank takes together.

:func:`lsalsa.train_encoder` runs the same loop on every rank of a process group (started by
``torchrun``; gloo on CPU, NCCL on CUDA). Every rank holds the full data and the same
parameters; what differs is the signals it reads:

- **Shards.** An epoch's permutation (a function of ``(seed, epoch)``, the same on every rank)
  is split as ``torch.utils.data.DistributedSampler(drop_last=True)`` splits its indices: rank
  ``r`` of ``K`` takes ``order[r : K * (P // K) : K]``. Its j-th batch of ``b`` signals and those
  of the other ranks make up the j-th batch of ``K b`` of one process over the same permutation,
  and the gradients are averaged over the ranks by :class:`DistributedDataParallel`, so K ranks
  at batch ``b`` take the steps of one process at batch ``K b``. When K does not divide P, the
  last ``P mod K`` signals of each epoch's permutation are left out of that epoch (a different
  few each epoch), as the sampler does: every rank must take the same number of steps.
- **Decisions.** Losses are sums all-reduced over the ranks, so every rank sees the same epoch
  loss and validation loss, and takes the same stop (``rel_tol``), best-epoch and divergence
  decisions; a callback that asks to stop, or a rank that sees a non-finite parameter, stops
  or rolls back all of them (:func:`any_rank`). What only one rank should compute (the
  ``lr="auto"`` range test, reading a checkpoint) runs on rank 0 and is broadcast
  (:func:`from_rank0`), its error raised on every rank, so that no rank waits for a partner
  that has failed.
- **Checkpoints.** Only rank 0 writes them (atomically); a checkpoint records its world size and
  resumes on that many ranks only. When a rank dies, torchrun (``--max-restarts``) stops the
  others and starts them all again; they resume from rank 0's last checkpoint and end with the
  parameters of an uninterrupted run, the loop being a function of the checkpoint and
  ``(seed, epoch)`` alone.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
from torch import nn

from .errors import LsalsaError

T = TypeVar("T")

GROUP_TIMEOUT = timedelta(hours=6)
"""How long a collective waits for the other ranks in the process group :func:`join` creates:
rank 0 alone computes the data, dictionary and codes steps of ``lsalsa run`` while the others
wait at a barrier (torch's default, 30 minutes on gloo, is shorter than a large codes step).
A rank that dies is noticed by torchrun at once, whatever this timeout."""

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group: ``rank`` of ``size``, and the ``device`` its
    collectives' tensors live on (the training device: NCCL reduces CUDA tensors only)."""

    rank: int
    size: int
    device: torch.device


def launched() -> bool:
    """Whether this process was started by torchrun (its variables ``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT`` are set) or already belongs to a process group."""
    dist = _dist()
    return (dist is not None and dist.is_initialized()) or all(v in os.environ for v in _TORCHRUN_VARIABLES)


def join(device: torch.device | str | None = None) -> Ranks:
    """The process group of this process: the one already initialised, else the one torchrun
    describes in the environment (``init_process_group`` with gloo for CPU tensors and, where
    CUDA is available, NCCL for CUDA ones, each rank on GPU ``LOCAL_RANK``).

    Raises :class:`LsalsaError` when there is none (the process was not started by torchrun)."""
    dist = _dist()
    if dist is None:
        raise LsalsaError("distributed=True: this torch build has no torch.distributed")
    if not dist.is_initialized():
        missing = [v for v in _TORCHRUN_VARIABLES if v not in os.environ]
        if missing:
            raise LsalsaError(
                f"distributed=True: no torch.distributed process group ({', '.join(missing)} not set); start the "
                f"script with torchrun (e.g. `torchrun --nproc-per-node 2 script.py`) or call "
                f"torch.distributed.init_process_group() first"
            )
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=GROUP_TIMEOUT, **_attempt_store(dist))
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return Ranks(dist.get_rank(), dist.get_world_size(), device)


def _attempt_store(dist) -> dict[str, Any]:
    """``init_process_group``'s store for this attempt of a torchrun job ({} for its default).

    torchrun (with its c10d rendezvous, the default of ``--standalone``) shares its TCPStore
    with the workers and keeps it across ``--max-restarts`` restarts, so restarted workers find
    the keys of the failed attempt's process group there and connect to addresses that are gone
    (measured here: gloo's "connectFullMesh failed ... Connection refused" on the first
    restart; pytorch/pytorch#135712). Each attempt meets under its own prefix instead."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    shared = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                           timeout=GROUP_TIMEOUT)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return {"store": dist.PrefixStore(f"lsalsa/attempt_{attempt}", shared), "rank": int(os.environ["RANK"]),
            "world_size": int(os.environ["WORLD_SIZE"])}


def current() -> Ranks | None:
    """The process group this process belongs to, None outside one (its collectives on the CPU
    where the group has gloo, else on the current CUDA device)."""
    dist = _dist()
    if dist is None or not dist.is_initialized():
        return None
    device = torch.device("cpu") if "gloo" in str(dist.get_backend()) else torch.device("cuda", torch.cuda.current_device())
    return Ranks(dist.get_rank(), dist.get_world_size(), device)


def is_rank0() -> bool:
    """Whether this process writes (rank 0 of its group, or not part of one)."""
    dist = _dist()
    return dist is None or not dist.is_initialized() or dist.get_rank() == 0


def shard(order: torch.Tensor, ranks: Ranks | None, drop: bool = True) -> torch.Tensor:
    """This rank's part of ``order: (P,)``: ``order[rank : K * (P // K) : K]`` (as
    ``DistributedSampler(drop_last=True)``; with ``drop=False``, ``order[rank::K]``, for
    evaluation, whose sums need no equal parts). ``order`` itself without ``ranks``."""
    if ranks is None:
        return order
    end = ranks.size * (len(order) // ranks.size) if drop else len(order)
    return order[ranks.rank:end:ranks.size]


def mean_over_ranks(total: torch.Tensor | float, count: int, ranks: Ranks | None) -> tuple[float, int]:
    """``(sum of total / sum of count, sum of count)`` over the ranks: a loss summed over each
    rank's signals, as one mean over all of them (one all-reduce of two numbers)."""
    if ranks is None:
        return (float(total) / count if count else float("nan")), count
    both = torch.stack([torch.as_tensor(total, dtype=torch.float64, device=ranks.device).reshape(()),
                        torch.tensor(float(count), dtype=torch.float64, device=ranks.device)])
    _dist().all_reduce(both)
    total, count = float(both[0]), int(both[1])
    return (total / count if count else float("nan")), count


def any_rank(flag: bool, ranks: Ranks | None) -> bool:
    """Whether ``flag`` is true on any rank (the same answer on all of them)."""
    if ranks is None:
        return bool(flag)
    t = torch.tensor(int(bool(flag)), device=ranks.device)
    _dist().all_reduce(t, op=_dist().ReduceOp.MAX)
    return bool(t)


def from_rank0(fn: Callable[[], T], ranks: Ranks | None) -> T:
    """``fn()`` computed on rank 0 and broadcast to every rank (pickled); the others wait.

    An exception in ``fn`` is raised on rank 0 as it is and on the others as
    :class:`LsalsaError` with its message, so that no rank is left waiting for rank 0."""
    if ranks is None:
        return fn()
    box: list[Any] = [None]
    failure = None
    if ranks.rank == 0:
        try:
            box[0] = ("ok", fn())
        except Exception as exc:  # sent to the other ranks, then raised here as it is
            failure = exc
            box[0] = ("error", f"rank 0: {exc}")
    _dist().broadcast_object_list(box, src=0, device=ranks.device if ranks.device.type == "cuda" else None)
    if failure is not None:
        raise failure
    kind, value = box[0]
    if kind == "error":
        raise LsalsaError(value)
    return value


@contextmanager
def rank0_first(ranks: Ranks | None) -> Iterator[None]:
    """Rank 0 runs the block first, the others after it (a barrier between): rank 0 computes and
    caches what the others then read. A failure on rank 0 leaves the others at the barrier,
    which torchrun ends when rank 0's process exits."""
    if ranks is not None and ranks.rank > 0:
        _dist().barrier()
    yield
    if ranks is not None and ranks.rank == 0:
        _dist().barrier()


class _Loss(nn.Module):
    """``loss_fn(encoder, Y, X_star)`` as a module, for DistributedDataParallel to wrap: its
    forward is then the whole loss, deep supervision's ``forward_layers`` included."""

    def __init__(self, encoder: nn.Module, loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.encoder = encoder
        self.loss_fn = loss_fn

    def forward(self, Y: torch.Tensor, X_star: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.encoder, Y, X_star)


def loss_step(encoder: nn.Module, loss_fn: Callable, ranks: Ranks | None
              ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(Y_b, X_b) -> mean loss`` whose backward leaves in every parameter's ``.grad`` the
    mean of the ranks' gradients (DistributedDataParallel: bucketed all-reduces overlapping the
    backward pass); ``loss_fn(encoder, ., .)`` itself without ``ranks``.

    Every trainable parameter must take part in the loss (DDP checks this on the second step).
    Buffers are synchronised once, not at every step: an encoder's buffers (fixed thresholds) do
    not change in training."""
    if ranks is None:
        return lambda Y, X: loss_fn(encoder, Y, X)
    from torch.nn.parallel import DistributedDataParallel

    ids = [ranks.device] if ranks.device.type == "cuda" else None
    return DistributedDataParallel(_Loss(encoder, loss_fn), device_ids=ids, forward_sync_buffers=False)


def _dist():
    """``torch.distributed``, or None in a build without it."""
    import torch.distributed as dist

    return dist if dist.is_available() else None
