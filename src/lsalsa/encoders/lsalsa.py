"""LSALSA: SALSA unrolled into a trainable network (Section 4.2, Algorithms 3 and 4)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._validation import check_positive
from ..errors import LsalsaError
from ..problem import LassoProblem
from ..solvers.iteration import filtered_input, unrolled_salsa
from ..solvers.salsa import DEFAULT_MU
from ..solvers.salsa import operators as salsa_operators_of
from ._base import UnrolledEncoder, check_problem

READOUTS = ("u", "x")


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
) -> torch.Tensor:
    """LSALSA's T layers and read-out as a function of its operators: SALSA's own iteration
    (:func:`lsalsa.solvers.iteration.unrolled_salsa`) from ``x_0 = W_e y``, ``d_0 = 0``.

    Y: (B, M); W_e: (N, M); S: (N, N) tied or (T, N, N); threshold: float or (N,); readout "u" or
    "x"; inplace: reused buffers, no autograd (:meth:`encode`). Returns the codes ``(B, N)``.
    """
    codes, _, _ = unrolled_salsa(filtered_input(Y, W_e), S, mu, threshold, n_layers, readout=readout, inplace=inplace)
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
    mu : the ADMM penalty (> 0), fixed (not learned); thresholds are ``alpha_i / mu``.
    alphas : one l1 weight per dictionary (or one for all).
    dict_sizes : the D dictionary sizes (default: one dictionary of N atoms).
    tied : True (the paper): one ``S: (N, N)`` shared by all layers. False: one per layer,
        ``S: (T, N, N)``; ``W_e`` stays shared, since ``W_e y`` is computed once and fed to every
        layer, so untying it would add T matrix products per forward for little freedom.
    learn_thresholds : None (the paper), "coordinate" or "dictionary"; see
        :class:`~lsalsa.encoders._base.UnrolledEncoder`. Learned thresholds are shared by layers.
    readout : "u" (default) returns ``soft(x_T + d_T)``, the ADMM's sparse variable; "x" returns
        ``soft(x_T)`` as Algorithms 3/4 print it. At the ADMM fixed point ``x = u`` is already the
        lasso solution, so ``soft(x_T)`` shrinks it a second time and truncated SALSA could never
        reach the optimal codes; only the "u" read-out makes the untrained network equal SALSA.
    dtype, device : of the parameters. Parameters start at zero: use :meth:`from_problem`.

    Shapes: ``forward(Y: (B, M)) -> (B, N)``; ``W_e: (N, M)``, ``S: (N, N)`` or ``(T, N, N)``.
    For inference, :meth:`~lsalsa.encoders._base.UnrolledEncoder.encode`: the same function
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
        dtype: torch.dtype | None = None,
        device: Any = None,
    ):
        mu = check_positive(mu, "mu")
        if readout not in READOUTS:
            raise LsalsaError(f"readout: expected one of {list(READOUTS)}, got {readout!r}")
        super().__init__(
            n_features, n_atoms, n_layers, alphas=alphas, dict_sizes=dict_sizes, scale=mu,
            n_splitting=n_layers, tied=tied, learn_thresholds=learn_thresholds, dtype=dtype, device=device,
        )
        self.mu = mu
        self.readout = readout

    @classmethod
    def from_problem(cls, problem: LassoProblem, n_layers: int, mu: float = DEFAULT_MU, **options: Any) -> "LSALSA":
        """The network that equals T iterations of SALSA on ``problem`` (Eq. 14).

        ``W_e = A^T``, ``S = (mu I + A^T A)^{-1}``, thresholds ``alpha_i / mu``; the module follows
        the problem's dtype and device. ``options`` are ``tied``, ``learn_thresholds``, ``readout``.
        """
        n_layers = check_problem(problem, n_layers)
        model = cls(
            problem.n_features, problem.n_atoms, n_layers, mu=mu, alphas=problem.alphas.tolist(),
            dict_sizes=problem.dict_sizes, dtype=problem.dtype, device=problem.device, **options,
        )
        W_e, S, _ = salsa_operators_of(problem, model.mu)  # mu checked by the constructor
        model._set_operators(W_e, S)
        return model

    def config(self) -> dict[str, Any]:
        return {**super().config(), "mu": self.mu, "readout": self.readout}

    _layers = staticmethod(lsalsa_layers)

    def _layer_options(self) -> dict[str, Any]:
        return {"n_layers": self.n_layers, "mu": self.mu, "readout": self.readout}
