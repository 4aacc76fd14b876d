"""The library's recipe for a learned encoder, written once: optimal codes, then training (Eq. 15).

Given a dictionary (a :class:`LassoProblem`) and training signals, :func:`fit_encoder` builds the
method's encoder from the problem (untrained, it is the truncated solver; for LSALSA, SALSA at
its best penalty for T iterations unless ``mu`` is given), computes the optimal codes ``X*`` of
the signals unless they are given, and trains the encoder to predict them with
:class:`~lsalsa.TrainConfig`'s recipe (no learning rate to pick: ``lr="auto"``), optionally
layer by layer. The experiment runner (which caches its codes and searches hyper-parameters
around this call), the CLI and the scikit-learn estimators all call it.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._validation import check_positive_int
from .codes import optimal_codes
from .encoders import grow
from .errors import LsalsaError
from .methods import get_method
from .metrics import code_rmse
from .problem import LassoProblem
from .solvers import salsa
from .solvers.salsa import DEFAULT_MU
from .train import TrainConfig, TrainHistory, train_encoder

DEFAULT_OPTIONS = {"tied": False}
"""The encoder options :func:`fit_encoder` uses unless told otherwise: one ``S`` per layer, which
measured best (``benchmarks/README.md``, "Learned gain"); ``tied=True`` is the paper's network."""

MU_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
"""SALSA's penalties ``mu="auto"`` chooses from (the benchmarks' grid for the best-tuned SALSA)."""


def best_mu(problem: LassoProblem, Y: torch.Tensor, X_star: torch.Tensor, n_iter: int,
            grid: Sequence[float] = MU_GRID) -> float:
    """The ``mu`` of ``grid`` whose ``n_iter`` SALSA iterations give the lowest code RMSE to
    ``X_star: (P, N)`` on ``Y: (P, M)``: the best-tuned SALSA an LSALSA encoder starts from.

    Where no mu does better than the all-zero code (e.g. one iteration on the demo's mixtures:
    code RMSE 8 to 11 for every mu of the grid, zeros 0.27), the grid says nothing about a good
    start and :data:`~lsalsa.solvers.salsa.DEFAULT_MU` is returned (LSALSA T=1 trained from the
    "best" mu 0.1 there ended at 0.30, from mu 1 at 0.23)."""
    errors = [code_rmse(salsa(problem, Y, mu=mu, n_iter=n_iter).X, X_star) for mu in grid]
    best = min(range(len(grid)), key=errors.__getitem__)
    if errors[best] >= code_rmse(torch.zeros_like(X_star), X_star):
        return DEFAULT_MU
    return float(grid[best])


def fit_encoder(
    problem: LassoProblem,
    Y: Any,
    X_star: Any = None,
    *,
    n_layers: int,
    method: str = "lsalsa",
    val: tuple[Any, Any] | None = None,
    seed: int = 0,
    config: TrainConfig | None = None,
    train: bool = True,
    mu: float | str | Sequence[float] | None = "auto",
    layerwise: bool = False,
    codes: Mapping[str, Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
    return_history: bool = False,
    **options: Any,
) -> nn.Module | tuple[nn.Module, TrainHistory | None]:
    """The encoder of ``method`` ("lsalsa" or "lista") with ``n_layers`` layers, trained on ``Y``.

    Parameters
    ----------
    problem : the dictionaries and alphas the encoder approximates the lasso codes of.
    Y : (P, M) training signals (tensor or array) of the problem's dtype.
    X_star : (P, N) optimal codes of ``Y``; None computes them with :func:`lsalsa.optimal_codes`
        and the keywords ``codes`` (solver, tol, max_iter, mu, ...).
    n_layers : T, the encoder's layers.
    method : a learned method of :data:`lsalsa.methods.METHODS`.
    val : ``(Y_val, X_star_val)``; the encoder ends with the epoch of lowest validation loss (the
        initial encoder, the truncated solver, counts as epoch 0), and ``mu="auto"`` is chosen on it.
    seed : of the training's shuffle (used when ``config`` is None).
    config : the training settings; None: ``TrainConfig(seed=seed)``, the library's recipe.
    train : False returns the untrained encoder (the truncated solver) and computes no codes.
    mu : SALSA's penalty of an LSALSA encoder (ignored by LISTA): a number; "auto" for the
        :data:`MU_GRID` value whose ``n_layers`` SALSA iterations code ``val`` (else ``Y``) best,
        so that training starts from the best-tuned SALSA; a list of numbers for the best of
        those. None: :data:`lsalsa.solvers.salsa.DEFAULT_MU`.
    layerwise : train greedily: LSALSA(1), then LSALSA(t) started from the trained LSALSA(t-1)
        plus one solver layer (:func:`lsalsa.encoders.grow`), up to T; each stage before the
        last trains ``max(1, epochs // T)`` epochs, the last ``config.epochs``.
    checkpoint : a file the (last stage's) run is written to and resumed from.
    progress : progress bars for the codes and the training.
    return_history : also return the :class:`~lsalsa.TrainHistory` of the (last) training.
    options : the encoder's own options (``tied``, ``learn_thresholds``, ``learn_mu``, ...), on
        top of :data:`DEFAULT_OPTIONS` (untied layers; ``tied=True`` for the paper's LSALSA).

    Returns
    -------
    The encoder, a ``torch.nn.Module`` mapping ``(B, M) -> (B, N)``, in evaluation mode; with
    ``return_history``, ``(encoder, history)`` (history None when not trained).
    """
    m = get_method(method)
    if not m.learned:
        raise LsalsaError(f"method: expected a learned method ('lista' or 'lsalsa'), got {method!r}")
    n_layers = check_positive_int(n_layers, "n_layers")
    config = TrainConfig(seed=seed) if config is None else config
    if not isinstance(config, TrainConfig):
        raise LsalsaError(f"config: expected a TrainConfig, got {type(config).__name__}")
    Y = _tensor(Y, problem, "Y")
    if train and X_star is None:
        X_star = optimal_codes(problem, Y, **(codes or {}), progress=progress)
    X_star = None if X_star is None else _tensor(X_star, problem, "X_star")
    val = None if val is None else (_tensor(val[0], problem, "val[0]"), _tensor(val[1], problem, "val[1]"))
    if m.takes_mu and (mu == "auto" or isinstance(mu, (list, tuple))):
        mu = _auto_mu(problem, Y, X_star, val, n_layers, MU_GRID if mu == "auto" else mu)
    elif not m.takes_mu:
        mu = None

    options = {**DEFAULT_OPTIONS, **options}

    def build(T: int) -> nn.Module:
        return m.build(problem, T, mu=mu, **options)

    if not train:
        return _returned(build(n_layers).eval(), None, return_history)
    encoder, history = None, None
    stages = range(1, n_layers + 1) if layerwise else [n_layers]
    for T in stages:
        encoder = build(T) if encoder is None else grow(encoder, build(T))
        last = T == n_layers
        stage = config if last else dataclasses.replace(config, epochs=max(1, config.epochs // n_layers))
        history = train_encoder(encoder, Y, X_star, stage, val=val, checkpoint=checkpoint if last else None,
                                resume=last and checkpoint is not None, progress=progress)
    return _returned(encoder.eval(), history, return_history)


def _auto_mu(problem: LassoProblem, Y: torch.Tensor, X_star: torch.Tensor | None,
             val: tuple[torch.Tensor, torch.Tensor] | None, n_layers: int, grid: Sequence[float]) -> float:
    """The best of ``grid`` on the validation set, else on (at most 1000 of) the training
    signals; with no optimal codes at hand, the default penalty (one of a single-value grid)."""
    if val is not None:
        return best_mu(problem, val[0], val[1], n_layers, grid)
    if X_star is not None:
        return best_mu(problem, Y[:1000], X_star[:1000], n_layers, grid)
    return float(grid[0]) if len(grid) == 1 else DEFAULT_MU


def _tensor(a: Any, problem: LassoProblem, name: str) -> torch.Tensor:
    """``a`` as a tensor of the problem's dtype and device (numpy arrays converted; a tensor of
    another dtype is refused by the training's own checks with its name)."""
    if isinstance(a, torch.Tensor):
        return a if a.device == problem.device else a.to(problem.device)
    try:
        return torch.as_tensor(a, dtype=problem.dtype, device=problem.device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise LsalsaError(f"{name}: expected an array of shape (P, n), got {type(a).__name__} ({exc})") from exc


def _returned(encoder: nn.Module, history: TrainHistory | None, return_history: bool):
    return (encoder, history) if return_history else encoder
