"""The lasso's exact solution once an iterative solver has found its support and signs."""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import LsalsaError
from ..kkt import kkt_residual, kkt_tolerance


def solve_on_support(
    G: torch.Tensor, C: torch.Tensor, thresholds: torch.Tensor, U: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each code of ``U`` by the exact lasso optimum with the same support and signs,
    where that optimum passes the lasso's optimality conditions (KKT).

    If the optimum x of ``1/2 ||y - A x||^2 + sum_j alpha_j |x_j|`` has support S and signs s,
    its KKT equality on S is linear: ``G_SS x_S = c_S - alpha_S s`` with ``G = A^T A`` and
    ``c = A^T y``. Solving it (Cholesky of the |S| x |S| block) gives a candidate; the candidate
    *is* the optimum, to rounding, when its signs on S are s and ``|c_j - g_j^T x| <= alpha_j``
    off S. The check is a full certificate, so a wrong support or a singular block (more atoms
    than the signal has dimensions) only means "not yet": the caller keeps iterating.

    First-order solvers often find the support long before they converge, and then crawl
    towards the optimum; this finish jumps there (how often the support is found, and when:
    ``benchmarks/bench_polish.py``). It is the subspace step of active-set methods
    (feature-sign search, Lee et al. 2007; FPC_AS, Wen et al. 2010) used as a final polish.

    Parameters
    ----------
    G : (N, N) the Gram matrix ``A^T A``.
    C : (B, N) ``A^T y`` for each signal, ``Y @ A``.
    thresholds : (N,) the per-coordinate alphas.
    U : (B, N) current codes; their nonzeros name the support and signs to try.

    Returns
    -------
    X : (B, N) the exact optimum where ``ok``, ``U`` elsewhere.
    ok : (B,) bool, the rows that passed the KKT check.

    On a CPU, rows with at most 64 atoms are solved by one compiled loop over the rows (numba,
    ``_support_kernel``), the rest by batched LAPACK; elsewhere all by batched LAPACK.
    """
    kernel = _cpu_kernel(U)
    if kernel is None:
        return _solve_batched(G, C, thresholds, U)
    X, status = kernel.solve_small(G, C, thresholds, U)
    ok = status == kernel.OK
    large = torch.nonzero(status == kernel.LARGE).flatten()
    if large.numel():
        X[large], ok[large] = _solve_batched(G, C[large], thresholds, U[large])
    return X, ok


def row_certifier(
    G: torch.Tensor, C: torch.Tensor, thresholds: torch.Tensor, t: torch.Tensor | float, steps: int = 0
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """:func:`solve_on_support` fused for SALSA's running rows on a CPU (needs numba):
    ``certify(V, rows, out, last) -> ok`` takes the iterates ``V: (b, N)`` whose codes are
    ``soft(V; t)``, of the rows ``rows: (b,)`` of ``C: (B, N)`` (``A^T y``), writes each certified
    optimum to its row of ``out: (B, N)`` and returns ``ok: (b,)`` bool. ``last: (b,)`` int64
    holds a hash of each row's sign pattern at its last try (0 at first): a pattern that failed
    is not solved again (retrying the same signs never passed). Where the KKT test fails, up to
    ``steps`` active-set corrections follow: atoms whose sign flipped in the solve leave the
    support, else the atom violating the test most enters it with the sign of its correlation,
    and the system is solved again; the certificate is the same KKT test, so a correction can
    only turn a failure into an optimum. Supports above 64 atoms are not tried (not ok). No
    readout, gathers or scatters in torch around it: a check costs the solve alone.
    """
    kernel = _cpu_kernel(C)
    if kernel is None:
        raise LsalsaError("row_certifier needs numba and CPU tensors of float32 or float64")
    t = torch.as_tensor(t, dtype=C.dtype).expand(C.shape[1])
    fixed = kernel.fixed_rows(G, C, thresholds, t, steps)

    def certify(V: torch.Tensor, rows: torch.Tensor, out: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        status = torch.empty(V.shape[0], dtype=torch.uint8)
        kernel.set_threads()
        kernel.certify_rows(fixed, V.numpy(), rows.numpy(), out.numpy(), last.numpy(), status.numpy())
        return status == kernel.OK

    return certify


def cpu_kernel_available() -> bool:
    """Whether :func:`solve_on_support` has its compiled CPU loop (numba importable)."""
    return _cpu_kernel(torch.empty(0)) is not None


def _cpu_kernel(U: torch.Tensor):
    """The compiled row loop, imported on first use (numba's import takes a while), or None
    where it does not apply: not a CPU, a dtype numpy lacks, or numba missing."""
    if U.device.type != "cpu" or U.dtype not in (torch.float32, torch.float64):
        return None
    try:
        from . import _support_kernel
    except ImportError:  # numba is a dependency; without it, LAPACK for every row
        return None
    return _support_kernel


def _solve_batched(
    G: torch.Tensor, C: torch.Tensor, thresholds: torch.Tensor, U: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`solve_on_support` by batched LAPACK (torch's Cholesky), for any device and size."""
    mask = U != 0
    sizes = mask.sum(dim=1)
    X = torch.zeros_like(U)
    failed = torch.zeros(U.shape[0], dtype=torch.bool, device=U.device)
    # Rows are solved in groups of similar support size, each padded to a common size with an
    # identity block: batched Cholesky of a few padded sizes instead of one per row, and no row
    # pays for the largest support of the batch.
    padded = _padded_size(sizes)
    if U.shape[0] <= _ONE_GROUP_ROWS:  # few rows: one group, each group's calls cost more than padding
        padded = torch.where(sizes > 0, padded.max(), 0)
    for p in torch.unique(padded).tolist():
        if p == 0:
            continue  # empty support: x = 0, only the off-support check below
        rows = torch.nonzero(padded == p).flatten()
        Xr, bad = _solve_group(G, C.index_select(0, rows), thresholds, U.index_select(0, rows), mask.index_select(0, rows), p)
        X.index_copy_(0, rows, Xr)
        failed.index_copy_(0, rows, bad)
    per_atom, per_row = kkt_tolerance(thresholds, C)
    violation = kkt_residual(C - X @ G, X, thresholds)  # C - X G = A^T (y - A x)
    ok = ~failed & (violation <= per_atom + per_row[:, None]).all(dim=1)  # NaN from a failed solve: not ok
    return torch.where(ok[:, None], X, U), ok


_ONE_GROUP_ROWS = 256


def _padded_size(sizes: torch.Tensor) -> torch.Tensor:
    """Support sizes rounded up to multiples of 4 (to 16), 8 (to 64), then 32."""
    step = torch.where(sizes <= 16, 4, torch.where(sizes <= 64, 8, 32))
    return (sizes + step - 1) // step * step


def _solve_group(
    G: torch.Tensor, C: torch.Tensor, thresholds: torch.Tensor, U: torch.Tensor, mask: torch.Tensor, p: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The support systems of rows whose supports have at most p atoms; returns (X, failed)."""
    b, N = U.shape
    # the support's indices in its first columns; the rest point at atom 0 and are masked out
    pos = torch.where(mask, mask.cumsum(dim=1) - 1, p)
    order = torch.zeros(b, p + 1, dtype=torch.long, device=U.device)
    order.scatter_(1, pos, torch.arange(N, device=U.device).expand(b, N))
    order = order[:, :p]
    m = torch.arange(p, device=U.device) < mask.sum(dim=1, keepdim=True)  # (b, p) real entries
    mf = m.to(G.dtype)
    s = torch.sign(torch.gather(U, 1, order))
    flat = (order[:, :, None] * N + order[:, None, :]).view(-1)
    Gs = G.reshape(-1).index_select(0, flat).view(b, p, p)
    Gs.mul_(mf[:, :, None] * mf[:, None, :])
    Gs.diagonal(dim1=1, dim2=2).add_(1 - mf)  # padding: identity rows, zero right-hand side
    rhs = (torch.gather(C, 1, order) - thresholds[order] * s).mul_(mf)
    L, info = torch.linalg.cholesky_ex(Gs)
    z = torch.linalg.solve_triangular(L, rhs[..., None], upper=False)
    xs = torch.linalg.solve_triangular(L.mT, z, upper=True)[..., 0].mul_(mf)
    failed = (info != 0) | ((xs * s <= 0) & m).any(dim=1)
    # scatter_add_: the padding's zeros land on atom 0 without overwriting a support entry
    return torch.zeros_like(U).scatter_add_(1, order, xs), failed

