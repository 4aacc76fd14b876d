"""Iterative lasso solvers: ISTA, FISTA, SALSA. Each is a one-iteration ``*_step`` plus a driver."""
from __future__ import annotations

from typing import Any

from ..errors import LsalsaError
from ._common import SolverResult, row_blocks
from .fista import fista
from .ista import ista, ista_operators, ista_step
from .iteration import salsa_readout, salsa_step
from .penalty import auto_mu
from .salsa import DEFAULT_MU, salsa, salsa_operators
from .support import solve_on_support

SOLVERS = {"ista": ista, "fista": fista, "salsa": salsa}


def solve(problem: Any, Y: Any, method: str = "fista", **kwargs: Any) -> SolverResult:
    """Run the solver named ``method`` ("ista", "fista", "salsa") with its keywords."""
    if method not in SOLVERS:
        raise LsalsaError(f"method: expected one of {sorted(SOLVERS)}, got {method!r}")
    return SOLVERS[method](problem, Y, **kwargs)


__all__ = [
    "SOLVERS", "SolverResult", "solve", "ista", "fista", "salsa",
    "ista_step", "ista_operators", "salsa_step", "salsa_operators", "salsa_readout",
    "auto_mu", "DEFAULT_MU", "solve_on_support", "row_blocks",
]
