"""Iterative lasso solvers: ISTA, FISTA, SALSA. Each is a one-iteration ``*_step`` plus a driver."""
from __future__ import annotations

from typing import Any

from ..errors import LsalsaError
from ._common import SolverResult, row_blocks
from .fista import fista
from .ista import IstaOperators, ista, ista_operators, ista_step
from .iteration import salsa_readout, salsa_step
from .penalty import auto_mu
from .salsa import DEFAULT_MU, SalsaOperators, salsa, salsa_operators
from .support import solve_on_support

SOLVERS = {"ista": ista, "fista": fista, "salsa": salsa}


def solve(problem: Any, Y: Any, method: str = "fista", **kwargs: Any) -> SolverResult:
    """Run the solver named ``method`` ("ista", "fista", "salsa") with its keywords."""
    if method not in SOLVERS:
        raise LsalsaError(f"method: expected one of {sorted(SOLVERS)}, got {method!r}")
    return SOLVERS[method](problem, Y, **kwargs)


def prepare_solver(problem: Any, method: str = "fista", mu: Any = None) -> SalsaOperators | IstaOperators:
    """The operators of the solver ``method`` for ``problem``'s dictionary, formed once, to pass
    as ``operators=`` to every call of that solver on this dictionary (any alpha):
    :class:`SalsaOperators` (``S``, for ``mu``, a number > 0) for "salsa", :class:`IstaOperators`
    (``A^T / L``, ``I - A^T A / L``) for "ista" and "fista" (no ``mu``). A call whose problem's
    dictionary, dtype, device or mu differ refuses them (:class:`LsalsaError`)."""
    if method not in SOLVERS:
        raise LsalsaError(f"method: expected one of {sorted(SOLVERS)}, got {method!r}")
    if method == "salsa":
        if mu is None or isinstance(mu, str):
            raise LsalsaError(f"mu: SALSA's operators need a number > 0, got {mu!r} (resolve 'auto' first: "
                              f"lsalsa.solvers.auto_mu)")
        return SalsaOperators.of(problem, mu)
    if mu is not None:
        raise LsalsaError(f"mu: {method} has no penalty mu, got {mu!r}")
    return IstaOperators.of(problem)


__all__ = [
    "SOLVERS", "SolverResult", "solve", "ista", "fista", "salsa",
    "ista_step", "ista_operators", "salsa_step", "salsa_operators", "salsa_readout",
    "auto_mu", "DEFAULT_MU", "solve_on_support", "row_blocks",
    "prepare_solver", "SalsaOperators", "IstaOperators",
]
