"""SALSA's polish: when the exact support solve is tried on the running rows, and how.

Two strategies sit behind one small interface, :class:`Polisher`, so that the loop
(:func:`lsalsa.solvers.loops.run_to_convergence`) only iterates, checks and lets rows leave:

* :class:`EagerCertifier`: on a CPU with few atoms, every running row at every check, by the
  compiled row loop (:func:`lsalsa.solvers.support.row_certifier`) with active-set corrections;
  the support solve is cheap there (a few microseconds a row).
* :class:`StableSignFinish`: elsewhere, only rows whose signs held since the last check, once per
  sign pattern, by batched LAPACK (:func:`lsalsa.solvers.support.solve_on_support`).

The rule for ``polish=None`` (:func:`resolve_polish`) and the constants come from
``benchmarks/bench_polish.py`` and ``bench_solvers.py`` (figures in ``benchmarks/README.md``):
on a CPU up to 256 atoms the eager polish halved the time to convergence; from 512 atoms the
LAPACK finish saved more than it cost, below it cost more.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch

from ..errors import LsalsaError
from ..problem import LassoProblem
from .iteration import salsa_readout
from .support import cpu_kernel_available, row_certifier, solve_on_support

MIN_ATOMS = 512  # polish=None polishes from this many atoms on, anywhere
EAGER_MAX_ATOMS = 256  # on a CPU with more atoms, supports mostly exceed the kernel's 64
CORRECTIONS = 16  # active-set corrections after a failed test: 4 and 8 left rows running, 16 none


class Polisher(Protocol):
    """What the convergence loop asks of a polish strategy."""

    def check(self, V: torch.Tensor, rows: torch.Tensor, out: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """At a check: try the running rows ``rows: (b,)`` (iterates ``V: (b, N)``, codes
        ``soft(V)``; ``done: (b,)`` those stopping anyway); write each certified optimum to
        ``out[rows[i]]`` and return which were certified, ``(b,)`` bool."""
        ...

    def keep(self, keep: torch.Tensor) -> None:
        """Only the running rows ``keep`` (indices into the current ones) go on."""
        ...


def eager_polish(device: torch.device, n_atoms: int) -> bool:
    """Whether the support solve is cheap enough to try every running row at every check."""
    return device.type == "cpu" and n_atoms <= EAGER_MAX_ATOMS and cpu_kernel_available()


def resolve_polish(polish: Any, truncated: bool, n_atoms: int, device: torch.device) -> bool:
    """``polish`` of :func:`lsalsa.salsa` resolved: None means True when converging, on a CPU
    with at most 256 atoms (see :func:`eager_polish`) or anywhere with at least 512."""
    if polish is None:
        return not truncated and (eager_polish(device, n_atoms) or n_atoms >= MIN_ATOMS)
    if not isinstance(polish, bool):
        raise LsalsaError(f"polish: expected True, False or None, got {polish!r}")
    if polish and truncated:
        raise LsalsaError("polish: True needs a run to convergence; with n_iter the run is truncated SALSA")
    return polish


def make_polisher(problem: LassoProblem, AtY: torch.Tensor, threshold: torch.Tensor | float) -> Polisher:
    """The strategy for ``problem`` on ``AtY``'s device: ``AtY: (B, N)`` is ``A^T y`` of the rows
    to be coded, ``threshold`` SALSA's ``alpha_i / mu``."""
    if eager_polish(AtY.device, problem.n_atoms):
        return EagerCertifier(problem, AtY, threshold)
    return StableSignFinish(problem, AtY, threshold)


class EagerCertifier:
    """Every running row at every check, by the compiled loop, a failed sign pattern not twice."""

    def __init__(self, problem: LassoProblem, AtY: torch.Tensor, threshold: torch.Tensor | float):
        self.certify = row_certifier(problem.gram, AtY, problem.thresholds, threshold, CORRECTIONS)
        self.last = torch.zeros(AtY.shape[0], dtype=torch.int64)  # each row's last tried pattern

    def check(self, V: torch.Tensor, rows: torch.Tensor, out: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        return self.certify(V, rows, out, self.last)

    def keep(self, keep: torch.Tensor) -> None:
        self.last = self.last[keep]


class StableSignFinish:
    """Rows whose signs (support included) are those of the previous check, each pattern once
    while it lasts (a change re-arms it), by batched LAPACK."""

    def __init__(self, problem: LassoProblem, AtY: torch.Tensor, threshold: torch.Tensor | float):
        self.gram, self.alphas, self.AtY, self.threshold = problem.gram, problem.thresholds, AtY, threshold
        self.signs: torch.Tensor | None = None
        self.tried = torch.zeros(AtY.shape[0], dtype=torch.bool, device=AtY.device)

    def check(self, V: torch.Tensor, rows: torch.Tensor, out: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        U = salsa_readout(V, self.threshold)
        signs = torch.sign(U).to(torch.int8)
        stable = torch.zeros_like(done) if self.signs is None else (signs == self.signs).all(dim=1)
        trial = torch.nonzero(stable & ~self.tried & ~done).flatten()
        self.tried, self.signs = stable, signs
        polished = torch.zeros_like(done)
        if trial.numel():
            X, ok = solve_on_support(self.gram, self.AtY[rows[trial]], self.alphas, U[trial])
            hit = trial[ok]
            out[rows[hit]] = X[ok]
            polished[hit] = True
        return polished

    def keep(self, keep: torch.Tensor) -> None:
        self.tried = self.tried[keep]
        if self.signs is not None:
            self.signs = self.signs[keep]
