"""Linear algebra the solvers need once per problem: spectral norm and the splitting operator."""
from __future__ import annotations

import torch

from ._validation import check_float_matrix, check_positive
from .errors import LsalsaError


def spectral_norm_sq(A: torch.Tensor) -> torch.Tensor:
    """``||A||_2^2``, the Lipschitz constant of the gradient of ``1/2 ||y - A x||^2``.

    Computed as the largest eigenvalue of the smaller Gram matrix (``A A^T`` or ``A^T A``), which
    is cheaper than an SVD of ``A: (M, N)``. Returns a 0-d tensor of ``A``'s dtype.
    """
    M, N = A.shape
    G = A @ A.T if M <= N else A.T @ A
    return torch.linalg.eigvalsh(G)[-1]


def splitting_operator(A: torch.Tensor, mu: float, method: str = "auto") -> torch.Tensor:
    """The splitting operator ``S = (mu I + A^T A)^{-1}`` of SALSA's x-update (Eq. 13).

    Parameters
    ----------
    A : (M, N) tensor, atoms as columns.
    mu : float > 0, the ADMM penalty.
    method : "auto", "direct" or "woodbury".
        "direct" factors the (N, N) system ``mu I + A^T A`` by Cholesky; "woodbury" factors the
        (M, M) system ``mu I + A A^T`` and uses the matrix inversion lemma
        ``S = (I - A^T (mu I + A A^T)^{-1} A) / mu``; "auto" picks the smaller system (Woodbury when
        M < N). No explicit matrix inverse is ever formed from a general matrix.

    Returns
    -------
    S : (N, N) tensor, symmetric positive definite.
    """
    return factor_splitting_operator(check_float_matrix(A, "A"), check_positive(mu, "mu"), method)


def factor_splitting_operator(A: torch.Tensor, mu: float, method: str = "auto") -> torch.Tensor:
    """:func:`splitting_operator` of a checked ``A`` and ``mu`` (the solvers' own call)."""
    M, N = A.shape
    if method == "auto":
        method = "woodbury" if M < N else "direct"
    if method == "direct":
        K = A.T @ A
        K.diagonal().add_(mu)
        L = torch.linalg.cholesky(K)
        return torch.cholesky_inverse(L)
    if method == "woodbury":
        K = A @ A.T
        K.diagonal().add_(mu)
        L = torch.linalg.cholesky(K)
        Z = torch.cholesky_solve(A, L)  # (M, N) = K^{-1} A
        S = -(A.T @ Z)
        S.diagonal().add_(1.0)
        return S.div_(mu)
    raise LsalsaError(f"method: expected 'auto', 'direct' or 'woodbury', got {method!r}")
