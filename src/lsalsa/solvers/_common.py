"""What the iterative solvers share: argument checks, the stopping rule, the result."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .._validation import check_nonneg_int, check_positive, check_positive_int, check_signals
from ..errors import LsalsaConvergenceWarning, LsalsaError
from ..kkt import certify
from ..problem import LassoProblem

Callback = Callable[[int, torch.Tensor], Any]


@dataclass
class SolverResult:
    """Output of an iterative solver.

    Attributes
    ----------
    X : (B, N) tensor, the codes.
    n_iter : iterations run.
    converged : whether every row passes the lasso's KKT test at the run's ``tol``
        (:func:`lsalsa.kkt.certify`: each entry within ``max(sqrt(tol), sqrt(eps)) alpha_j`` plus
        the rounding of ``A^T y``), tested once at the end of a run to convergence; when not, a
        :class:`~lsalsa.errors.LsalsaConvergenceWarning` says how many rows failed and by how
        much. A truncated run (``n_iter=T``) is not tested and reports False, without a warning.
    change : the last relative change ``max_b ||x_k - x_{k-1}|| / ||x_k||`` over the batch (the
        stopping rule).
    settings : what the solver resolved and ran with (SALSA: ``mu``, ``relaxation``, ``polish``).
    kkt : the :func:`lsalsa.kkt.certify` verdict behind ``converged`` (None for a truncated run).
    """

    X: torch.Tensor
    n_iter: int
    converged: bool
    change: float
    settings: dict[str, Any] = field(default_factory=dict)
    kkt: dict[str, Any] | None = field(default=None, repr=False, compare=False)


def check_run_args(problem: Any, Y: Any, n_iter: Any, tol: Any, max_iter: Any) -> tuple[torch.Tensor, int, bool, float]:
    """Validate a solver call; returns ``(Y, iterations, truncated, tol)``."""
    if not isinstance(problem, LassoProblem):
        raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
    Y = check_signals(Y, problem.n_features, problem.A)
    tol = check_positive(tol, "tol")
    if n_iter is not None:
        return Y, check_nonneg_int(n_iter, "n_iter"), True, tol
    return Y, check_positive_int(max_iter, "max_iter"), False, tol


def converged(name: str, problem: LassoProblem, Y: torch.Tensor, X: torch.Tensor, tol: float, iters: int,
              truncated: bool) -> tuple[bool, dict[str, Any] | None]:
    """The verdict of a run (:class:`SolverResult`'s ``converged`` and ``kkt``): the KKT test of
    every row, warned about when it fails; ``(False, None)`` and no test for a truncated run.
    ``Y: (B, M)``, ``X: (B, N)``; ``name`` and ``iters`` (the ``max_iter`` allowed) word the warning."""
    if truncated:
        return False, None
    verdict = certify(problem.A, Y, X, problem.thresholds, tol)
    if bool(verdict["ok"].all()):
        return True, verdict
    warnings.warn(f"{name} (max_iter={iters}, tol={tol:g}): {convergence_message(problem, X.dtype, verdict)}",
                  LsalsaConvergenceWarning, stacklevel=3)
    return False, verdict


def row_certifier(problem: LassoProblem, Y: torch.Tensor, tol: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``certify(rows, X) -> (b,) bool``: :func:`lsalsa.kkt.certify` of the codes ``X: (b, N)`` of
    the signals ``Y[rows]`` (``Y: (B, M)``, a block of a run), the test a row passes to leave a
    run on a small change (:func:`lsalsa.solvers.loops.run_to_convergence`)."""
    thresholds = problem.thresholds
    return lambda rows, X: certify(problem.A, Y[rows], X, thresholds, tol)["ok"]


def convergence_message(problem: LassoProblem, dtype: torch.dtype, verdict: dict[str, Any]) -> str:
    """How many rows of a :func:`lsalsa.kkt.certify` verdict failed, how far, and what to do."""
    failed = ~verdict["ok"]
    alpha = float(problem.alphas.max())
    worst = float(verdict["violation"][failed].max())
    far = f"{worst / alpha:.3g} alpha" if alpha > 0 else f"{worst:.3g} (alpha = 0)"
    message = (f"{int(failed.sum())} of {failed.numel()} rows did not converge: KKT violation up to {far}, "
               f"allowed {verdict['rtol']:.2g} alpha plus rounding")
    n_unresolved = int(verdict["unresolved"].sum())
    if n_unresolved:
        return message + (f"; in {n_unresolved} rows the rounding of A^T y in {str(dtype).removeprefix('torch.')} "
                          f"exceeds alpha, so no code can be certified: use float64 or scale the signals down")
    return message + "; raise max_iter or lower tol"


DEFAULT_CHECK_EVERY = 10


def check_check_every(check_every: Any) -> int:
    """``check_every`` of the iterative solvers: None (the default spacing) or an int >= 1."""
    if check_every is None:
        return DEFAULT_CHECK_EVERY
    if not isinstance(check_every, int) or isinstance(check_every, bool) or check_every < 1:
        raise LsalsaError(f"check_every: expected an int >= 1 or None, got {check_every!r}")
    return check_every


def row_change(X: torch.Tensor, X_prev: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Each row's ``||x - x_prev|| / max(||x||, tiny)``, ``(B,)``: the stopping rule of Alg. 1/2.
    The difference goes to ``out`` (which may be ``X_prev`` itself) or a new tensor."""
    num = torch.linalg.vector_norm(torch.sub(X_prev, X, out=out), dim=1)
    return num / torch.linalg.vector_norm(X, dim=1).clamp_min(torch.finfo(X.dtype).tiny)


def check_prepared(operators: Any, kind: type, problem: LassoProblem) -> None:
    """Refuse prepared ``operators`` that are not a ``kind`` or were made from another dictionary
    than ``problem``'s: their ``dictionary`` (M, N), the copy of the one they were made from, is
    compared with ``problem.A`` exactly (an edit of ``problem.A`` in place is caught too), one
    pass over both (``benchmarks/bench_operators.py`` times it)."""
    if not isinstance(operators, kind):
        raise LsalsaError(f"operators: expected the {kind.__name__} of lsalsa.prepare_solver, got "
                          f"{type(operators).__name__}")
    A, B = operators.dictionary, problem.A
    if A.dtype != B.dtype or A.device != B.device:
        raise LsalsaError(f"operators: prepared in {A.dtype} on {A.device}, the problem is {B.dtype} on {B.device}; "
                          f"prepare them for this problem")
    if A.shape != B.shape:
        raise LsalsaError(f"operators: prepared for a {tuple(A.shape)} dictionary, the problem's is {tuple(B.shape)}; "
                          f"prepare them for this problem")
    if not torch.equal(A, B):
        raise LsalsaError("operators: prepared for another dictionary (or this one before an edit in place); "
                          "prepare them for this problem")


def prox_threshold(problem: LassoProblem, scale: float) -> torch.Tensor | float:
    """Per-coordinate thresholds ``alpha / scale``; a plain float when all alphas are equal, so
    the fused scalar soft-threshold can be used."""
    a = problem.uniform_alpha()
    return a / scale if a is not None else problem.thresholds / scale


# Rows of (B, N) iterates per block on a CPU: 2 MiB per buffer (the elementwise passes stay in
# the cache), at least 1024 rows (below that, at large N, the GEMM lost more than the passes won).
_BLOCK_BYTES = 2**21
_MIN_BLOCK_ROWS = 1024


def row_blocks(B: torch.Tensor) -> list[slice]:
    """Slices of the rows of ``B: (n, N)`` for loops whose rows are independent.

    On a CPU an iteration makes several passes over its ``(n, N)`` buffers besides the GEMM;
    in blocks that stay in the cache those passes are cheaper. On a GPU the whole batch is one
    block (more rows, better occupancy).
    """
    n, N = B.shape
    if B.device.type != "cpu" or n == 0:
        return [slice(None)]
    size = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // max(1, N * B.element_size()))
    return [slice(i, i + size) for i in range(0, n, size)]
