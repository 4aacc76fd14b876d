"""LISTA: ISTA unrolled into a trainable network (Gregor & LeCun; the paper's Eq. 35)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._validation import check_positive
from ..prox import soft_threshold
from ..problem import LassoProblem
from ..solvers.ista import ista_operators, ista_step
from ..solvers.iteration import filtered_input
from ._base import UnrolledEncoder, check_problem


def lista_layers(
    Y: torch.Tensor,
    W_e: torch.Tensor,
    S: torch.Tensor,
    threshold: torch.Tensor | float,
    *,
    n_layers: int,
    inplace: bool = False,
) -> torch.Tensor:
    """LISTA's T layers as a function of its operators: ISTA's own step
    (:func:`lsalsa.solvers.ista_step`) from ``x_0 = 0``.

    Y: (B, M); W_e: (N, M); S: (N, N) tied or (T - 1, N, N); threshold: float or (N,);
    inplace: the products into one reused buffer, no autograd (:meth:`encode`).
    Returns the codes ``(B, N)``.
    """
    b = filtered_input(Y, W_e)
    X = soft_threshold(b, threshold)  # layer 1, ista_step from x_0 = 0 without the product S 0
    buffer = torch.empty_like(b) if inplace else None
    for t in range(1, n_layers):
        X = ista_step(X, b, S if S.ndim == 2 else S[t - 1], threshold, out=buffer)
    return X


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
    learn_thresholds : None (default), "coordinate" or "dictionary"; shared by layers.
    dtype, device : of the parameters. Parameters start at zero: use :meth:`from_problem`.

    Shapes: ``forward(Y: (B, M)) -> (B, N)``; ``W_e: (N, M)``, ``S: (N, N)`` or ``(T-1, N, N)``.
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
        dtype: torch.dtype | None = None,
        device: Any = None,
    ):
        lipschitz = check_positive(lipschitz, "lipschitz")
        super().__init__(
            n_features, n_atoms, n_layers, alphas=alphas, dict_sizes=dict_sizes, scale=lipschitz,
            n_splitting=n_layers - 1 if isinstance(n_layers, int) else 0,
            tied=tied, learn_thresholds=learn_thresholds, dtype=dtype, device=device,
        )
        self.lipschitz = lipschitz

    @classmethod
    def from_problem(cls, problem: LassoProblem, n_layers: int, **options: Any) -> "LISTA":
        """The network that equals T iterations of ISTA on ``problem``: ``W_e = A^T / L``,
        ``S = I - A^T A / L``, thresholds ``alpha_i / L``. Follows the problem's dtype and device;
        ``options`` are ``tied`` and ``learn_thresholds``."""
        n_layers = check_problem(problem, n_layers)
        W_e, S, _ = ista_operators(problem)
        model = cls(
            problem.n_features, problem.n_atoms, n_layers, lipschitz=problem.lipschitz,
            alphas=problem.alphas.tolist(), dict_sizes=problem.dict_sizes,
            dtype=problem.dtype, device=problem.device, **options,
        )
        model._set_operators(W_e, S)
        return model

    def config(self) -> dict[str, Any]:
        return {**super().config(), "lipschitz": self.lipschitz}

    _layers = staticmethod(lista_layers)

    def _layer_options(self) -> dict[str, Any]:
        return {"n_layers": self.n_layers}
