"""Dictionary learning (Eq. 5, and Remark 1 / Eq. 8 for MCA): SGD on ``A`` with FISTA codes.

Each step codes a mini-batch with FISTA for the current ``A``, takes a gradient step on the
batch's Eq. 5 with those codes held fixed, and renormalises the atoms (columns) to unit norm.
Holding the codes fixed is exact for the gradient of ``L(A) = mean_p min_x E_A(x; y_p)``: by the
envelope theorem the minimiser's dependence on ``A`` does not enter it.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from ._validation import check_float_matrix, check_nonneg_int, check_positive, check_positive_int
from .errors import LsalsaError
from .problem import LassoProblem
from .solvers import fista


def _check_patches(patches: Any) -> torch.Tensor:
    return check_float_matrix(patches, "patches", allow_empty_rows=False)


def _check_alpha(alpha: Any) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        a = float("nan")
    if not (a >= 0 and a < float("inf")):
        raise LsalsaError(f"alpha: expected a finite number >= 0, got {alpha!r}")
    return a


def _normalise_columns(A: torch.Tensor) -> torch.Tensor:
    return A / torch.linalg.vector_norm(A, dim=0, keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)


def init_dictionary(patches: Any, n_atoms: int, init: str = "data", seed: int | None = 0) -> torch.Tensor:
    """A starting dictionary ``(M, n_atoms)`` with unit-norm columns.

    ``init="data"``: distinct random patches (those with non-zero norm) as atoms, the usual
    choice; ``init="random"``: Gaussian atoms.
    """
    Y = _check_patches(patches)
    n_atoms = check_positive_int(n_atoms, "n_atoms")
    g = torch.Generator().manual_seed(0 if seed is None else int(seed))
    if init == "random":
        A = torch.randn(Y.shape[1], n_atoms, generator=g, dtype=Y.dtype).to(Y.device)
    elif init == "data":
        nonzero = torch.nonzero(torch.linalg.vector_norm(Y, dim=1) > 0).flatten().cpu()
        if len(nonzero) < n_atoms:
            raise LsalsaError(
                f"n_atoms: init='data' needs {n_atoms} non-zero patches, got {len(nonzero)}; use init='random'"
            )
        pick = nonzero[torch.randperm(len(nonzero), generator=g)[:n_atoms]]
        A = Y[pick.to(Y.device)].T.clone()
    else:
        raise LsalsaError(f"init: expected 'data' or 'random', got {init!r}")
    return _normalise_columns(A)


def learn_dictionary(
    patches: Any,
    n_atoms: int,
    alpha: float,
    *,
    n_epochs: int = 10,
    batch_size: int = 256,
    lr: float = 3.0,
    lr_decay: float = 0.85,
    seed: int | None = 0,
    init: str | Any = "data",
    fista_iters: int | None = 100,
    fista_tol: float = 1e-4,
    progress: bool = False,
    return_history: bool = False,
):
    """Learn a dictionary with unit-norm atoms by minimising Eq. 5 with mini-batch SGD.

    ``L(A) = 1/P sum_p E_A(x*_p; y_p)``, ``E_A(x; y) = 1/2 ||y - A x||^2 + alpha ||x||_1`` (Eq. 4),
    with codes ``x*_p`` from FISTA for the current ``A``. A step on a batch ``Y: (B, M)`` with
    codes ``X: (B, N)`` is ``A <- A + lr / B (Y - X A^T)^T X``, then every column is scaled to
    unit norm (Section 3). For MCA, learn one dictionary per source on that source alone
    (Remark 1, Eq. 8): :func:`learn_dictionaries`.

    Parameters
    ----------
    patches : (P, M) float32/float64 array or tensor, one training signal per row. The
        dictionary follows its dtype and device.
    n_atoms : N, the number of atoms.
    alpha : the l1 weight of Eq. 4 (same scaling as scikit-learn's dictionary learning: per
        sample ``1/2 ||y - x D||^2 + alpha ||x||_1``).
    n_epochs : passes over the data (0 returns the initial dictionary).
    batch_size : signals per SGD step.
    lr : step size; ``lr_decay`` multiplies it after every epoch. The defaults (3.0, 0.85) suit
        signals with pixel values in [0, 1] (MNIST and natural-photo patches, 10x10 to 32x32);
        check ``history`` when the data are scaled differently.
    seed : seeds the initial atoms and the batch order (a private ``torch.Generator``).
    init : "data" (random patches as atoms), "random" (Gaussian), or an (M, N) starting matrix.
    fista_iters : FISTA iterations per batch (truncated codes, cheap); None runs FISTA to the
        relative-change tolerance ``fista_tol`` (at most 1000 iterations).
    progress : show a tqdm bar over the batches.
    return_history : also return per-epoch rows ``{epoch, objective, lr, time_s}`` where
        ``objective`` is the mean of Eq. 5 over the epoch's batches, each with the codes of the
        dictionary before its step (an upper bound on Eq. 5 when codes are truncated).

    Returns
    -------
    A : (M, N) with unit-norm columns, of the kind of ``patches``: a tensor for a tensor, a
        numpy array for a numpy array or other array-like; ``(A, history)`` with
        ``return_history=True``.
    """
    tensor_in = isinstance(patches, torch.Tensor)
    Y = _check_patches(patches)
    alpha = _check_alpha(alpha)
    n_epochs = check_nonneg_int(n_epochs, "n_epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr, lr_decay = check_positive(lr, "lr"), check_positive(lr_decay, "lr_decay")
    fista_kw = {"n_iter": check_positive_int(fista_iters, "fista_iters")} if fista_iters is not None \
        else {"tol": check_positive(fista_tol, "fista_tol"), "max_iter": 1000}
    if isinstance(init, str):
        A = init_dictionary(Y, n_atoms, init, seed)
    else:
        A = _normalise_columns(check_float_matrix(init, "init").to(dtype=Y.dtype, device=Y.device).clone())
        if A.shape != (Y.shape[1], n_atoms):
            raise LsalsaError(f"init: expected shape ({Y.shape[1]}, {n_atoms}), got {tuple(A.shape)}")

    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed((0 if seed is None else int(seed)) + 1)
    P = Y.shape[0]
    n_batches = -(-P // batch_size)
    history = []
    t0 = time.perf_counter()
    bar = tqdm(total=n_epochs * n_batches, desc="dictionary", disable=not progress)
    for epoch in range(1, n_epochs + 1):
        order = torch.randperm(P, generator=g).to(Y.device)
        total = torch.zeros((), dtype=Y.dtype, device=Y.device)  # summed on the device: no sync per batch
        for b in range(n_batches):
            Yb = Y[order[b * batch_size:(b + 1) * batch_size]]
            problem = LassoProblem(A, alpha)
            X = fista(problem, Yb, **fista_kw).X
            R = Yb - X @ A.T  # (B, M) residuals
            total += 0.5 * (R * R).sum() + alpha * X.abs().sum()
            A = _normalise_columns(A + (lr / Yb.shape[0]) * (R.T @ X))  # -grad = R^T X / B
            bar.update(1)
        objective = float(total) / P
        history.append({"epoch": epoch, "objective": objective, "lr": lr, "time_s": time.perf_counter() - t0})
        bar.set_postfix(objective=f"{objective:.4f}")
        lr *= lr_decay
    bar.close()
    A = A if tensor_in else A.cpu().numpy()
    return (A, history) if return_history else A


def learn_dictionaries(
    sources: Sequence[Any], n_atoms: int | Sequence[int], alphas: float | Sequence[float], **kwargs: Any
) -> list[torch.Tensor]:
    """One dictionary per MCA source, each learned on that source alone (Remark 1, Eq. 8).

    ``sources``: D arrays ``(P_i, M)`` (the ground-truth components, not the mixtures);
    ``n_atoms`` and ``alphas``: one value, or one per source; other keywords go to
    :func:`learn_dictionary`. Returns ``[A_1 .. A_D]`` for ``LassoProblem.from_dictionaries``,
    each of its source's kind (tensor or numpy array).
    """
    if isinstance(sources, torch.Tensor) or not isinstance(sources, Sequence) or not sources:
        raise LsalsaError("sources: expected a non-empty list of (P_i, M) arrays, one per source")
    D = len(sources)
    sizes = [n_atoms] * D if isinstance(n_atoms, int) else list(n_atoms)
    weights = [alphas] * D if isinstance(alphas, (int, float)) else list(alphas)
    if len(sizes) != D or len(weights) != D:
        raise LsalsaError(f"n_atoms, alphas: expected one value or {D} values (one per source)")
    return [learn_dictionary(s, n, a, **kwargs) for s, n, a in zip(sources, sizes, weights)]


def dictionary_objective(
    A: Any, patches: Any, alpha: float, *, tol: float = 1e-6, max_iter: int = 5000, batch_size: int = 4096
) -> float:
    """Eq. 5 of a dictionary on ``patches (P, M)``: the mean lasso objective at the optimal codes
    (FISTA to relative change ``tol``), computed in batches."""
    Y = _check_patches(patches)
    problem = LassoProblem(torch.as_tensor(A).to(dtype=Y.dtype, device=Y.device), _check_alpha(alpha))
    batch_size = check_positive_int(batch_size, "batch_size")
    total = 0.0
    for i in range(0, Y.shape[0], batch_size):
        Yb = Y[i:i + batch_size]
        X = fista(problem, Yb, tol=tol, max_iter=max_iter).X
        total += float(problem.objective(X, Yb).sum())
    return total / Y.shape[0]
