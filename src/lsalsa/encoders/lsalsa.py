"""LSALSA: SALSA unrolled into a trainable network (Section 4.2, Algorithms 3 and 4)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._validation import check_positive
from ..errors import LsalsaError
from ..problem import LassoProblem
from ..solvers.iteration import filtered_input, unrolled_salsa
from ..solvers.salsa import DEFAULT_MU
from ..solvers.salsa import operators as salsa_operators_of
from ._base import UnrolledEncoder, check_flag, check_problem

READOUTS = ("u", "x")
MU_FLOOR = 1e-6
"""Learned penalties are used as ``max(mu_t, MU_FLOOR * mu)``: positive whatever SGD does."""


def lsalsa_layers(
    Y: torch.Tensor,
    W_e: torch.Tensor,
    S: torch.Tensor,
    threshold: torch.Tensor | float,
    *,
    n_layers: int,
    mu: float,
    readout: str,
    inplace: bool = False,
    all_layers: bool = False,
    layer_mu: torch.Tensor | None = None,
    fused: bool | None = False,
) -> torch.Tensor | list[torch.Tensor]:
    """LSALSA's T layers and read-out as a function of its operators: SALSA's own iteration
    (:func:`lsalsa.solvers.iteration.unrolled_salsa`) from ``x_0 = W_e y``, ``d_0 = 0``.

    Y: (B, M); W_e: (N, M); S: (N, N) tied or (T, N, N); threshold: float, (N,) or (T, N) one
    row per layer; readout "u" or "x"; inplace: reused buffers, no autograd (:meth:`encode`);
    layer_mu: None (the penalty ``mu``) or (T,) one per layer, ``mu`` then their reference (see
    ``unrolled_salsa``); fused: in place, ``unrolled_salsa``'s fused passes (None: where they
    pay, :mod:`lsalsa.solvers.fused`). Returns the codes ``(B, N)``, or with ``all_layers`` the list of the T
    read-outs after each layer (the iteration's callback), the last one the codes.
    """
    b = filtered_input(Y, W_e)
    if not all_layers:
        return unrolled_salsa(b, S, mu, threshold, n_layers, readout=readout, inplace=inplace, layer_mu=layer_mu,
                              fused=fused if inplace else False)[0]
    codes: list[torch.Tensor] = []
    unrolled_salsa(b, S, mu, threshold, n_layers, readout=readout, inplace=inplace, layer_mu=layer_mu,
                   callback=lambda k, U: codes.append(U))
    return codes


class LSALSA(UnrolledEncoder):
    """Learned SALSA (Alg. 3/4): T layers of SALSA with learnable ``W_e`` and ``S``.

    For ``y: (M,)`` (a row of ``Y: (B, M)``)::

        x_0 = W_e y,  d_0 = 0
        for t = 1..T:  u_t = soft(x_{t-1} + d_{t-1}; alpha_i / mu)
                       x_t = S (W_e y + mu (u_t - d_{t-1}))
                       d_t = d_{t-1} - u_t + x_t
        output         soft(x_T + d_T; alpha_i / mu)

    Each layer is :func:`lsalsa.solvers.salsa_step`, the same function SALSA iterates (in its
    ``(w, v)`` form, :mod:`lsalsa.solvers.iteration`), so ``LSALSA.from_problem(problem, T, mu)``
    computes exactly ``salsa(problem, Y, mu, n_iter=T).X``, bit for bit, until it is trained
    (Eq. 15, :func:`lsalsa.train_encoder`).

    Parameters
    ----------
    n_features, n_atoms : M and N = N_1 + .. + N_D.
    n_layers : T >= 1.
    mu : the ADMM penalty (> 0); thresholds are ``alpha_i / mu``. Fixed, unless ``learn_mu``.
    alphas : one l1 weight per dictionary (or one for all).
    dict_sizes : the D dictionary sizes (default: one dictionary of N atoms).
    tied : True (the paper): one ``S: (N, N)`` shared by all layers. False: one per layer,
        ``S: (T, N, N)``; ``W_e`` stays shared, since ``W_e y`` is computed once and fed to every
        layer, so untying it would add T matrix products per forward for little freedom.
    learn_thresholds : None (the paper), "coordinate", "dictionary" (shared by the layers) or
        "layer" (one per layer and atom); see :class:`~lsalsa.encoders._base.UnrolledEncoder`.
    learn_mu : False (the paper) or True: a learnable penalty per layer, ``mu_t: (T,)`` starting
        at ``mu``, used as ``max(mu_t, MU_FLOOR mu)``: layer t thresholds at ``alpha_i / mu_t``
        and updates ``x_t = S_t (W_e y + mu_t (u_t - d_{t-1}))``; the read-out after layer t
        thresholds at layer t's ``alpha_i / mu_t``. ``S`` is not refactored: it stays a learned
        matrix (starting at ``(mu I + A^T A)^{-1}``). With learned thresholds, ``theta`` replaces
        ``alpha_i / mu_t`` (shared by the layers, as without ``learn_mu``) and ``mu_t`` scales
        the x-update only. At initialisation it computes SALSA bit for bit, as the fixed ``mu``
        does (the update is written ``b + mu (w (mu_t / mu))``, which at ``mu_t = mu`` is the
        fixed path's fused ``b + mu w``).
    readout : "u" (default) returns ``soft(x_T + d_T)``, the ADMM's sparse variable; "x" returns
        ``soft(x_T)`` as Algorithms 3/4 print it. At the ADMM fixed point ``x = u`` is already the
        lasso solution, so ``soft(x_T)`` shrinks it a second time and truncated SALSA could never
        reach the optimal codes; only the "u" read-out makes the untrained network equal SALSA.
    dtype, device : of the parameters. Parameters start at zero: use :meth:`from_problem`.

    Shapes: ``forward(Y: (B, M)) -> (B, N)``; ``W_e: (N, M)``, ``S: (N, N)`` or ``(T, N, N)``,
    ``mu_t: (T,)``. For inference, :meth:`~lsalsa.encoders._base.UnrolledEncoder.encode`: the same function
    and codes, in reused buffers.
    """

    def __init__(
        self,
        n_features: int,
        n_atoms: int,
        n_layers: int,
        *,
        mu: float = DEFAULT_MU,
        alphas: Any = 0.1,
        dict_sizes: Sequence[int] | None = None,
        tied: bool = True,
        learn_thresholds: str | None = None,
        readout: str = "u",
        learn_mu: bool = False,
        dtype: torch.dtype | None = None,
        device: Any = None,
    ):
        mu = check_positive(mu, "mu")
        if readout not in READOUTS:
            raise LsalsaError(f"readout: expected one of {list(READOUTS)}, got {readout!r}")
        check_flag(learn_mu, "learn_mu")
        super().__init__(
            n_features, n_atoms, n_layers, alphas=alphas, dict_sizes=dict_sizes, scale=mu,
            n_splitting=n_layers, tied=tied, learn_thresholds=learn_thresholds, dtype=dtype, device=device,
        )
        self.mu = mu
        self.readout = readout
        self.learn_mu = learn_mu
        if learn_mu:
            self.mu_t = nn.Parameter(torch.full((self.n_layers,), mu, dtype=dtype, device=device))

    @classmethod
    def from_problem(cls, problem: LassoProblem, n_layers: int, mu: float = DEFAULT_MU, **options: Any) -> "LSALSA":
        """The network that equals T iterations of SALSA on ``problem`` (Eq. 14).

        ``W_e = A^T``, ``S = (mu I + A^T A)^{-1}``, thresholds ``alpha_i / mu``; the module follows
        the problem's dtype and device. ``options`` are ``tied``, ``learn_thresholds``, ``readout``,
        ``learn_mu``.
        """
        n_layers = check_problem(problem, n_layers)
        model = cls._construct(
            "options", problem.n_features, problem.n_atoms, n_layers, mu=mu, alphas=problem.alphas.tolist(),
            dict_sizes=problem.dict_sizes, dtype=problem.dtype, device=problem.device, **options,
        )
        W_e, S, _ = salsa_operators_of(problem, model.mu)  # mu checked by the constructor
        model._set_operators(W_e, S)
        return model

    def config(self) -> dict[str, Any]:
        return {**super().config(), "mu": self.mu, "readout": self.readout, "learn_mu": self.learn_mu}

    _layers = staticmethod(lsalsa_layers)

    def _layer_options(self) -> dict[str, Any]:
        layer_mu = self._layer_mu() if self.learn_mu else None
        return {"n_layers": self.n_layers, "mu": self.mu, "readout": self.readout, "layer_mu": layer_mu}

    def _per_layer_parameters(self) -> tuple[str, ...]:
        return super()._per_layer_parameters() + (("mu_t",) if self.learn_mu else ())

    def _layer_mu(self) -> torch.Tensor:
        """The penalties in use, ``(T,)``."""
        return self.mu_t.clamp_min(MU_FLOOR * self.mu)

    def _threshold(self) -> torch.Tensor | float:
        if self.learn_mu and self.learn_thresholds is None:
            return self._alphas / self._layer_mu()[:, None]  # (T, N): alpha_i / mu_t
        return super()._threshold()
