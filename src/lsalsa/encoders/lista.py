"""LISTA: ISTA unrolled into a trainable network (Gregor & LeCun; the paper's Eq. 35)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._validation import check_positive
from ..errors import LsalsaError
from ..prox import soft_threshold
from ..problem import LassoProblem
from ..solvers.fused import soft_threshold_, use_fused
from ..solvers.ista import ista_operators, ista_step
from ..solvers.iteration import filtered_input
from ._base import UnrolledEncoder, check_flag, check_problem


def lista_layers(
    Y: torch.Tensor,
    W_e: torch.Tensor,
    S: torch.Tensor,
    threshold: torch.Tensor | float,
    *,
    n_layers: int,
    inplace: bool = False,
    all_layers: bool = False,
    step: torch.Tensor | None = None,
    fused: bool | None = False,
) -> torch.Tensor | list[torch.Tensor]:
    """LISTA's T layers as a function of its operators: ISTA's own step
    (:func:`lsalsa.solvers.ista_step`) from ``x_0 = 0``.

    Y: (B, M); W_e: (N, M); S: (N, N) tied or (T - 1, N, N); threshold: float, (N,) or (T, N)
    one row per layer; inplace: the products into one reused buffer, no autograd
    (:meth:`encode`); step: None or (T,) the steps ``gamma_t`` (``ista_step``'s ``step``);
    fused: in place, each layer's soft-threshold one in-place pass after the product and its bias
    (``addmm``), :mod:`lsalsa.solvers.fused` (None: where it pays; True: always, else an error).
    Returns the codes ``(B, N)``, or with ``all_layers`` the list of the T layers' outputs.
    """
    b = filtered_input(Y, W_e)
    per_layer = isinstance(threshold, torch.Tensor) and threshold.ndim == 2
    thresholds = list(threshold) if per_layer else [threshold] * n_layers
    steps = [None] * n_layers if step is None else list(step)
    plain_only = not inplace or all_layers or step is not None
    if fused is True and plain_only:
        raise LsalsaError("fused: needs the in-place layers (encode), without learn_step or all_layers")
    # by default only per-atom thresholds fuse: a scalar's soft-threshold is torch's one-pass
    # softshrink, faster than the compiled pass on the machine measured (benchmarks/README.md)
    vector = any(isinstance(t, torch.Tensor) for t in thresholds)
    if not plain_only and (vector or fused is True) and use_fused(fused, b, S):
        X, spare = soft_threshold_(b.clone(), thresholds[0]), torch.empty_like(b)
        for t in range(1, n_layers):
            Z = torch.addmm(b, X, (S if S.ndim == 2 else S[t - 1]).T, out=spare)
            spare, X = X, soft_threshold_(Z, thresholds[t])
        return X
    # layer 1, ista_step from x_0 = 0 without the product S 0 (lerp(0, b, gamma) = gamma b)
    X = soft_threshold(b if step is None else b * steps[0], thresholds[0])
    codes = [X] if all_layers else None
    buffer = torch.empty_like(b) if inplace else None
    for t in range(1, n_layers):
        X = ista_step(X, b, S if S.ndim == 2 else S[t - 1], thresholds[t], out=buffer, step=steps[t])
        if codes is not None:
            codes.append(X)
    return X if codes is None else codes


class LISTA(UnrolledEncoder):
    """Learned ISTA: T layers ``x_t = soft(W_e y + S x_{t-1}; alpha_i / L)`` from ``x_0 = 0``.

    Each layer is :func:`lsalsa.solvers.ista_step`, the function ISTA iterates, so
    ``LISTA.from_problem(problem, T)`` computes exactly ``ista(problem, Y, n_iter=T).X`` until it
    is trained (Eq. 15, :func:`lsalsa.train_encoder`). Since ``x_0 = 0``, the first layer is
    ``soft(W_e y)``: ``S x_0`` vanishes and is not computed, so S acts in layers 2..T only.

    Parameters
    ----------
    n_features, n_atoms : M and N.
    n_layers : T >= 1.
    lipschitz : ``L = ||A||_2^2`` (> 0); thresholds are ``alpha_i / L``.
    alphas, dict_sizes : as in :class:`~lsalsa.LassoProblem`. For MCA, LISTA runs on the
        concatenated dictionary, with one threshold per dictionary.
    tied : True (the paper): one ``S: (N, N)``. False: one per layer that uses it,
        ``S: (T - 1, N, N)``; ``W_e`` stays shared (``W_e y`` is computed once).
    learn_thresholds : None (default), "coordinate", "dictionary" (shared by the layers) or
        "layer" (one per layer and atom).
    learn_step : False (default) or True: a learnable step per layer, ``gamma_t: (T,)``
        starting at 1 and used as ``max(gamma_t, 0)``; layer t is then ISTA's step of
        ``gamma_t / L``, ``x_t = soft(gamma_t (W_e y + S x_{t-1}) + (1 - gamma_t) x_{t-1};
        gamma_t theta)`` (a ``lerp``, which at ``gamma_t = 1`` is ISTA's layer bit for bit),
        ``theta`` the fixed ``alpha_i / L`` or the learned thresholds alike.
    dtype, device : of the parameters. Parameters start at zero: use :meth:`from_problem`.

    Shapes: ``forward(Y: (B, M)) -> (B, N)``; ``W_e: (N, M)``, ``S: (N, N)`` or ``(T-1, N, N)``,
    ``gamma_t: (T,)``.
    For inference, :meth:`~lsalsa.encoders._base.UnrolledEncoder.encode`.
    """

    def __init__(
        self,
        n_features: int,
        n_atoms: int,
        n_layers: int,
        *,
        lipschitz: float = 1.0,
        alphas: Any = 0.1,
        dict_sizes: Sequence[int] | None = None,
        tied: bool = True,
        learn_thresholds: str | None = None,
        learn_step: bool = False,
        dtype: torch.dtype | None = None,
        device: Any = None,
    ):
        lipschitz = check_positive(lipschitz, "lipschitz")
        check_flag(learn_step, "learn_step")
        super().__init__(
            n_features, n_atoms, n_layers, alphas=alphas, dict_sizes=dict_sizes, scale=lipschitz,
            n_splitting=n_layers - 1 if isinstance(n_layers, int) else 0,
            tied=tied, learn_thresholds=learn_thresholds, dtype=dtype, device=device,
        )
        self.lipschitz = lipschitz
        self.learn_step = learn_step
        if learn_step:
            self.gamma_t = nn.Parameter(torch.ones(self.n_layers, dtype=dtype, device=device))

    @classmethod
    def from_problem(cls, problem: LassoProblem, n_layers: int, **options: Any) -> "LISTA":
        """The network that equals T iterations of ISTA on ``problem``: ``W_e = A^T / L``,
        ``S = I - A^T A / L``, thresholds ``alpha_i / L``. Follows the problem's dtype and device;
        ``options`` are ``tied``, ``learn_thresholds`` and ``learn_step``."""
        n_layers = check_problem(problem, n_layers)
        W_e, S, _ = ista_operators(problem)
        model = cls._construct(
            "options", problem.n_features, problem.n_atoms, n_layers, lipschitz=problem.lipschitz,
            alphas=problem.alphas.tolist(), dict_sizes=problem.dict_sizes,
            dtype=problem.dtype, device=problem.device, **options,
        )
        model._set_operators(W_e, S)
        return model

    def config(self) -> dict[str, Any]:
        return {**super().config(), "lipschitz": self.lipschitz, "learn_step": self.learn_step}

    _layers = staticmethod(lista_layers)

    def _layer_options(self) -> dict[str, Any]:
        return {"n_layers": self.n_layers, "step": self._step() if self.learn_step else None}

    def _per_layer_parameters(self) -> tuple[str, ...]:
        return super()._per_layer_parameters() + (("gamma_t",) if self.learn_step else ())

    def _step(self) -> torch.Tensor:
        """The steps in use, ``(T,)``."""
        return self.gamma_t.clamp_min(0)

    def _threshold(self) -> torch.Tensor | float:
        threshold = super()._threshold()
        if not self.learn_step:
            return threshold
        if isinstance(threshold, float):
            threshold = self._thresholds
        return self._step()[:, None] * threshold  # (T, N): gamma_t theta
