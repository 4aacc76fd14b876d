"""The coding methods in one registry: what each is, how it is built and how it encodes.

A method computes codes ``X: (B, N)`` of signals ``Y: (B, M)`` at a fixed cost T: a solver run
for T iterations (ISTA, FISTA, SALSA) or an unrolled encoder of T layers (LISTA, LSALSA, trained
or not). Whatever dispatches on a method's name (the experiment runner and its report, model
files for ``lsalsa separate``, the scikit-learn estimators through :func:`lsalsa.pipeline.fit_encoder`)
asks :data:`METHODS`. The registry is made from the solvers' and the encoders' own tables
(:data:`lsalsa.SOLVERS`, :data:`lsalsa.ENCODERS`), so a new solver or encoder registered there
is a method everywhere. Only the SALSA family takes SALSA's penalty ``mu``; :class:`Method`
passes it to them and to no one else.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .encoders import ENCODERS
from .errors import LsalsaError
from .problem import LassoProblem
from .solvers import SOLVERS, SolverResult

Encode = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """One coding method: a solver or an encoder class (exactly one of the two).

    Attributes
    ----------
    name : the registry key, as written in configs, result rows and model files.
    solver : ``solver(problem, Y, **keywords) -> SolverResult`` for solver methods.
    encoder : the :class:`~lsalsa.encoders._base.UnrolledEncoder` subclass for learned methods.
    takes_mu : whether the method has SALSA's penalty ``mu`` (SALSA and LSALSA).
    """

    name: str
    solver: Callable[..., SolverResult] | None = None
    encoder: type[nn.Module] | None = None
    takes_mu: bool = False

    @property
    def label(self) -> str:
        """The name as tables and figures print it ("LSALSA")."""
        return self.name.upper()

    @property
    def learned(self) -> bool:
        """Whether the method is a trainable encoder (else a solver)."""
        return self.encoder is not None

    def mu_keywords(self, mu: float | None) -> dict[str, float]:
        """``{"mu": mu}`` for the SALSA family when a mu is given, else nothing (the method's default)."""
        return {"mu": mu} if self.takes_mu and mu is not None else {}

    def build(self, problem: LassoProblem, n_layers: int, *, mu: float | None = None, **options: Any) -> nn.Module:
        """The untrained encoder of ``n_layers`` layers, initialised from ``problem`` so that it
        computes the truncated solver (``options``: the encoder's own, e.g. ``tied``)."""
        if self.encoder is None:
            raise LsalsaError(f"method {self.name!r} is a solver; it has no encoder to build")
        return self.encoder.from_problem(problem, n_layers, **self.mu_keywords(mu), **options)

    def solve(self, problem: LassoProblem, Y: torch.Tensor, *, mu: float | None = None, **keywords: Any) -> SolverResult:
        """Run the solver on ``Y: (B, M)`` with its ``keywords`` (``n_iter``, ``tol``, ``callback``, ...)."""
        if self.solver is None:
            raise LsalsaError(f"method {self.name!r} is an encoder; train one with lsalsa.pipeline.fit_encoder")
        return self.solver(problem, Y, **self.mu_keywords(mu), **keywords)

    def encode_fn(self, problem: LassoProblem, n_iter: int, *, mu: float | None = None,
                  model: nn.Module | None = None) -> Encode:
        """``Y -> X`` at cost ``n_iter``: the inference path (``encode``) of the trained ``model``
        of a learned method, or ``n_iter`` iterations of the solver."""
        if self.learned:
            if model is None:
                raise LsalsaError(f"method {self.name!r}: encoding needs its trained encoder (model=...)")
            return model.encode
        return lambda Y: self.solve(problem, Y, n_iter=n_iter, mu=mu).X


def _takes_mu(build: Callable[..., Any]) -> bool:
    """Whether a solver (or an encoder's ``from_problem``) has SALSA's penalty ``mu``."""
    return "mu" in inspect.signature(build).parameters


METHODS: dict[str, Method] = {
    **{name: Method(name, solver=fn, takes_mu=_takes_mu(fn)) for name, fn in SOLVERS.items()},
    **{name: Method(name, encoder=cls, takes_mu=_takes_mu(cls.from_problem)) for name, cls in ENCODERS.items()},
}
"""Every method by name: "ista", "fista", "salsa" (solvers), "lista", "lsalsa" (encoders)."""


def get_method(name: Any, where: str = "method") -> Method:
    """The registered method called ``name``; :class:`LsalsaError` naming ``where`` otherwise."""
    method = METHODS.get(name) if isinstance(name, str) else None
    if method is None:
        raise LsalsaError(f"{where}: expected one of {list(METHODS)}, got {name!r}")
    return method
