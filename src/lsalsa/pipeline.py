"""The library's recipe for a learned encoder, written once: optimal codes, then training (Eq. 15).

Given a dictionary (a :class:`LassoProblem`) and training signals, :func:`fit_encoder` builds the
method's encoder from the problem (untrained, it is the truncated solver), computes the optimal
codes ``X*`` of the signals unless they are given, and trains the encoder to predict them. The
experiment runner (which caches its codes and searches hyper-parameters around this call) and the
scikit-learn estimators (which learn the dictionary first) both call it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .codes import optimal_codes
from .methods import get_method
from .problem import LassoProblem
from .train import TrainConfig, TrainHistory, train_encoder


def fit_encoder(
    method: str,
    problem: LassoProblem,
    n_layers: int,
    Y: torch.Tensor,
    config: TrainConfig | None,
    *,
    X_star: Any = None,
    codes: Mapping[str, Any] | None = None,
    mu: float | None = None,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
    **options: Any,
) -> tuple[nn.Module, TrainHistory | None]:
    """The encoder of ``method`` ("lista", "lsalsa") with ``n_layers`` layers, trained on ``Y``.

    Parameters
    ----------
    method : a learned method of :data:`lsalsa.methods.METHODS`.
    problem : the dictionaries and alphas the encoder approximates the lasso codes of.
    n_layers : T, the encoder's layers.
    Y : (P, M) training signals of the problem's dtype.
    config : the training settings; None returns the untrained encoder (the truncated solver)
        and computes no codes.
    X_star : (P, N) optimal codes of ``Y`` (array or tensor); None computes them with
        :func:`lsalsa.optimal_codes` and the keywords ``codes`` (solver, tol, max_iter, mu, ...).
    mu : SALSA's penalty of an LSALSA encoder (ignored by LISTA).
    val : ``(Y_val, X_star_val)``; the encoder ends with the epoch of lowest validation loss.
    checkpoint : a file the run is written to and resumed from (:func:`lsalsa.train_encoder`).
    progress : progress bars for the codes and the training.
    options : the encoder's own options (``tied``, ``learn_thresholds``, ...).

    Returns
    -------
    ``(encoder, history)``: the encoder in evaluation mode, and the training's
    :class:`~lsalsa.TrainHistory` (None when ``config`` is None).
    """
    encoder = get_method(method).build(problem, n_layers, mu=mu, **options)
    history = None
    if config is not None:
        if X_star is None:
            X_star = optimal_codes(problem, Y, **(codes or {}), progress=progress)
        history = train_encoder(encoder, Y, X_star, config, val=val, checkpoint=checkpoint,
                                resume=checkpoint is not None, progress=progress)
    encoder.eval()
    return encoder, history
