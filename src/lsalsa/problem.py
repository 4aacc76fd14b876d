"""The sparse-coding problem: one dictionary (Eq. 4) or several, for MCA (Eq. 6)."""
from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import torch

from ._validation import as_tensor, check_codes, check_dict_sizes, check_float_matrix, check_signals
from .errors import LsalsaError
from .kkt import kkt_residual
from .linalg import spectral_norm_sq


class LassoProblem:
    """``min_x 1/2 ||y - A x||^2 + sum_i alpha_i ||x_i||_1`` with ``A = [A_1 .. A_D]``.

    Parameters
    ----------
    A : (M, N) tensor or array, atoms as columns (the paper's convention; scikit-learn stores
        dictionaries as rows, i.e. ``A.T``). float32 or float64; no zero column.
    alphas : float or sequence of D floats >= 0, one l1 weight per dictionary.
    dict_sizes : sequence of D ints summing to N (default: one dictionary of N atoms).

    Codes ``X: (B, N)`` are the concatenation ``[x_1 .. x_D]`` (Eq. 7), signals ``Y: (B, M)`` are rows.
    The problem follows ``A``'s dtype and device; inputs to its methods must match them.
    """

    def __init__(self, A: Any, alphas: Any = 0.1, dict_sizes: Sequence[int] | None = None):
        A = check_float_matrix(A, "A", allow_empty_rows=False)
        M, N = A.shape
        if N == 0:
            raise LsalsaError("A: expected at least one atom (column), got shape (M, 0)")
        zero = torch.nonzero(~(A != 0).any(dim=0)).flatten()
        if zero.numel():
            raise LsalsaError(f"A: expected no zero column, but column(s) {zero[:10].tolist()} are all zero")
        tiny = torch.nonzero(torch.linalg.vector_norm(A, dim=0) == 0).flatten()  # squares underflow
        if tiny.numel():
            raise LsalsaError(f"A: column(s) {tiny[:10].tolist()} are so small that their norm underflows in "
                              f"{A.dtype}; rescale A (e.g. to unit-norm atoms)")
        sizes = check_dict_sizes(dict_sizes, N)
        self.A = A
        self.dict_sizes = sizes
        self.alphas = _check_alphas(alphas, len(sizes), A)

    @classmethod
    def from_dictionaries(cls, dictionaries: Sequence[Any], alphas: Any = 0.1) -> "LassoProblem":
        """Build the MCA problem from ``[A_1 .. A_D]``, each ``A_i: (M, N_i)``."""
        if isinstance(dictionaries, (torch.Tensor, np.ndarray)) or len(dictionaries) == 0:
            raise LsalsaError("dictionaries: expected a non-empty list of (M, N_i) matrices")
        mats = [check_float_matrix(D, f"dictionaries[{i}]") for i, D in enumerate(dictionaries)]
        M, dtype, device = mats[0].shape[0], mats[0].dtype, mats[0].device
        for i, D in enumerate(mats):
            if D.shape[0] != M:
                raise LsalsaError(f"dictionaries[{i}]: expected {M} rows like dictionaries[0], got {D.shape[0]}")
            if D.dtype != dtype or D.device != device:
                raise LsalsaError(
                    f"dictionaries[{i}]: dtype/device {D.dtype}/{D.device} differs from dictionaries[0]'s {dtype}/{device}"
                )
        return cls(torch.cat(mats, dim=1), alphas=alphas, dict_sizes=[D.shape[1] for D in mats])

    # ---- sizes, dtype, device -------------------------------------------------------------
    @property
    def n_features(self) -> int:
        """M, the signal length."""
        return self.A.shape[0]

    @property
    def n_atoms(self) -> int:
        """N, the total number of atoms (code length)."""
        return self.A.shape[1]

    @property
    def n_dicts(self) -> int:
        """D, the number of dictionaries."""
        return len(self.dict_sizes)

    @property
    def dtype(self) -> torch.dtype:
        return self.A.dtype

    @property
    def device(self) -> torch.device:
        return self.A.device

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "LassoProblem":
        """A copy of the problem on another device and/or dtype."""
        return LassoProblem(self.A.to(device=device, dtype=dtype), self.alphas.tolist(), self.dict_sizes)

    def with_alphas(self, alphas: Any) -> "LassoProblem":
        """The same dictionaries with other l1 weights."""
        return LassoProblem(self.A, alphas, self.dict_sizes)

    def dictionaries(self) -> list[torch.Tensor]:
        """``[A_1 .. A_D]``, views into ``A``, each ``(M, N_i)``."""
        return list(torch.split(self.A, self.dict_sizes, dim=1))

    # ---- quantities derived once ---------------------------------------------------------
    @cached_property
    def lipschitz(self) -> float:
        """``L = ||A||_2^2``, the Lipschitz constant of the smooth term's gradient."""
        return float(spectral_norm_sq(self.A))

    @cached_property
    def gram(self) -> torch.Tensor:
        """``A^T A: (N, N)``."""
        return self.A.T @ self.A

    @property
    def thresholds(self) -> torch.Tensor:
        """Per-coordinate l1 weights ``(N,)``: ``alpha_i`` repeated over dictionary i's atoms."""
        return torch.repeat_interleave(self.alphas, torch.tensor(self.dict_sizes, device=self.device))

    def uniform_alpha(self) -> float | None:
        """The common alpha when all dictionaries share one (enables the fused scalar prox)."""
        a = self.alphas
        return float(a[0]) if bool((a == a[0]).all()) else None

    # ---- evaluation --------------------------------------------------------------------
    def objective(self, X: Any, Y: Any) -> torch.Tensor:
        """Eq. 6 per signal: ``1/2 ||y - A x||^2 + sum_i alpha_i ||x_i||_1``.

        X: (B, N), Y: (B, M) -> (B,)
        """
        X, Y = self._check_pair(X, Y)
        R = Y - X @ self.A.T
        return 0.5 * (R * R).sum(dim=1) + X.abs() @ self.thresholds

    def split(self, X: Any) -> list[torch.Tensor]:
        """Per-dictionary codes ``[x_1 .. x_D]``, each ``(B, N_i)`` (views into X)."""
        X = check_codes(X, self.n_atoms, self.A)
        return list(torch.split(X, self.dict_sizes, dim=1))

    def reconstruct(self, X: Any) -> list[torch.Tensor]:
        """Per-source signals ``[A_1 x_1 .. A_D x_D]``, each ``(B, M)``; their sum is ``A x``."""
        return [x_i @ A_i.T for x_i, A_i in zip(self.split(X), self.dictionaries())]

    def alpha_max(self, Y: Any, per_dictionary: bool = False) -> torch.Tensor:
        """The smallest alpha for which ``x = 0`` is optimal: ``max_j |a_j^T y|``.

        Y: (B, M) -> (B,), or (B, D) with ``per_dictionary=True`` (one bound per dictionary,
        since each alpha_i only has to dominate its own atoms' correlations).
        """
        Y = check_signals(Y, self.n_features, self.A)
        C = (Y @ self.A).abs()
        if not per_dictionary:
            return C.amax(dim=1)
        return torch.stack([c.amax(dim=1) for c in torch.split(C, self.dict_sizes, dim=1)], dim=1)

    def kkt_violation(self, X: Any, Y: Any) -> torch.Tensor:
        """How far X is from satisfying the lasso optimality conditions, per signal.

        The largest :func:`lsalsa.kkt.kkt_residual` over atoms, ``(B,)``, in the units of
        ``alpha`` (so 0 at the optimum): x is optimal iff, with ``g = A^T (y - A x)``,
        ``g_j = alpha_j sign(x_j)`` where ``x_j != 0`` and ``|g_j| <= alpha_j`` elsewhere.
        """
        X, Y = self._check_pair(X, Y)
        return kkt_residual((Y - X @ self.A.T) @ self.A, X, self.thresholds).amax(dim=1)

    def _check_pair(self, X: Any, Y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        X = check_codes(X, self.n_atoms, self.A)
        Y = check_signals(Y, self.n_features, self.A)
        if X.shape[0] != Y.shape[0]:
            raise LsalsaError(f"X, Y: expected the same number of rows, got {X.shape[0]} and {Y.shape[0]}")
        return X, Y

    def __repr__(self) -> str:
        return (
            f"LassoProblem(M={self.n_features}, N={self.n_atoms}, dict_sizes={list(self.dict_sizes)}, "
            f"alphas={[round(a, 6) for a in self.alphas.tolist()]}, dtype={self.dtype}, device={self.device})"
        )


def _check_alphas(alphas: Any, n_dicts: int, like: torch.Tensor) -> torch.Tensor:
    a = as_tensor(alphas, "alphas").detach().to(dtype=torch.float64, device="cpu").flatten()
    if a.numel() == 1 and n_dicts > 1:
        a = a.expand(n_dicts)
    if a.numel() != n_dicts:
        raise LsalsaError(f"alphas: expected 1 or {n_dicts} values (one per dictionary), got {a.numel()}")
    if not bool(torch.isfinite(a).all()):
        raise LsalsaError(f"alphas: expected finite values, got {a.tolist()}")
    if bool((a < 0).any()):
        raise LsalsaError(f"alphas: expected values >= 0, got {a.tolist()}")
    return a.to(dtype=like.dtype, device=like.device).clone()
