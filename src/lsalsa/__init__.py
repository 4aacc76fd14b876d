"""lsalsa: fast sparse coding and source separation with learned, unrolled solvers."""
from .errors import LsalsaError
from .problem import LassoProblem
from .prox import soft_threshold
from .solvers import SOLVERS, SolverResult, fista, ista, salsa, solve

__version__ = "0.1.0"

__all__ = [
    "LsalsaError", "LassoProblem", "soft_threshold",
    "SOLVERS", "SolverResult", "solve", "ista", "fista", "salsa",
]
