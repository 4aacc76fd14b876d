"""A separation model in one file: what ``lsalsa separate`` needs to split a picture.

A :class:`SeparationModel` holds the dictionaries and alphas (the :class:`LassoProblem`), the
method that computes codes (a trained LISTA / LSALSA encoder, or a solver run for a fixed number
of iterations), the patch size, and the normalisation of pixels used in training, so that a
model file can be handed to a colleague and applied to their images as it was trained.

Files are written atomically and read with ``torch.load(weights_only=True)``
(:mod:`lsalsa.files`): loading a model never runs code from it.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._validation import check_positive_int
from .encoders.io import build_encoder, encoder_record
from .errors import LsalsaError
from .files import FORMAT_VERSION, read_torch, save_torch
from .methods import METHODS
from .problem import LassoProblem
from .solvers import prepare_solver

MODEL_FORMAT = "lsalsa-model"


@dataclass
class SeparationModel:
    """Dictionaries, a coding method and the pixel conventions of its training data.

    Attributes
    ----------
    problem : the lasso problem: ``A = [A_1 .. A_D]: (M, N)`` with ``M = patch_size**2`` and one
        alpha per dictionary (source).
    method : "lsalsa" or "lista" (then ``encoder`` is the trained network), or a solver name
        ("ista", "fista", "salsa") run for ``n_iter`` iterations (None: to convergence).
    patch_size : side p of the square patches the dictionaries were learned on.
    input_scale : a picture in [0, 1] (uint8 / 255) is fed to the model as
        ``pixel * input_scale``: the units of the training signals. The demo's
        mixtures add a digit in [0, 1] to a photo in [0, 1], so a mixture saved as an 8-bit
        picture holds half their sum and ``input_scale`` is 2.
    names : one name per source, e.g. ("digit", "photo").
    encoder : the trained encoder for learned methods, else None.
    n_iter : iterations of a solver method (None: until the relative change is below 1e-6).
    mu : SALSA's penalty, for ``method="salsa"``.
    """

    problem: LassoProblem
    method: str
    patch_size: int
    input_scale: float = 1.0
    names: tuple[str, ...] = ()
    encoder: nn.Module | None = None
    n_iter: int | None = None
    mu: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_model(self, "model")

    @property
    def n_sources(self) -> int:
        return len(self.problem.dict_sizes)

    def encode(self, Y: torch.Tensor) -> torch.Tensor:
        """Codes ``X: (B, N)`` of signals ``Y: (B, M)`` in model units, by the model's method."""
        return self.coder()(Y)

    def coder(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """:meth:`encode` for many batches: ``Y: (B, M) -> X: (B, N)`` with a solver's operators
        prepared once (:func:`lsalsa.prepare_solver`; not for SALSA without a ``mu``, whose
        ``"auto"`` is chosen per batch)."""
        if self.encoder is not None:
            return self.encoder.encode
        method = METHODS[self.method]
        kw: dict[str, Any] = {"tol": 1e-6, "max_iter": 10_000} if self.n_iter is None else {}
        if self.mu is not None or not method.takes_mu:
            kw["operators"] = prepare_solver(self.problem, self.method, **method.mu_keywords(self.mu))
        return lambda Y: method.solve(self.problem, Y, n_iter=self.n_iter, mu=self.mu, **kw).X

    def to(self, device: Any) -> "SeparationModel":
        """The same model with its tensors on ``device``."""
        enc = self.encoder.to(device) if self.encoder is not None else None
        return SeparationModel(self.problem.to(device), self.method, self.patch_size, self.input_scale,
                               self.names, enc, self.n_iter, self.mu, dict(self.info))


def _check_model(m: SeparationModel, where: str) -> None:
    if not isinstance(m.problem, LassoProblem):
        raise LsalsaError(f"{where}: problem must be a LassoProblem, got {type(m.problem).__name__}")
    if m.method not in METHODS:
        raise LsalsaError(f"{where}: method must be one of {list(METHODS)}, got {m.method!r}")
    m.patch_size = check_positive_int(m.patch_size, "patch_size")
    if m.patch_size ** 2 != m.problem.n_features:
        raise LsalsaError(f"{where}: patch_size {m.patch_size} gives {m.patch_size ** 2} pixels, but the "
                          f"dictionaries have {m.problem.n_features} rows")
    v = m.input_scale
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise LsalsaError(f"{where}: input_scale must be a finite number > 0, got {v!r}")
    D = len(m.problem.dict_sizes)
    m.names = tuple(str(n) for n in m.names) or tuple(f"source {i + 1}" for i in range(D))
    if len(m.names) != D:
        raise LsalsaError(f"{where}: {len(m.names)} source names for {D} dictionaries")
    method = METHODS[m.method]
    if method.learned:
        enc = m.encoder
        if enc is None or type(enc) is not method.encoder:
            raise LsalsaError(f"{where}: method {m.method!r} needs a trained {method.encoder.__name__} encoder, "
                              f"got {type(enc).__name__}")
        if enc.n_features != m.problem.n_features or tuple(enc.dict_sizes) != tuple(m.problem.dict_sizes):
            raise LsalsaError(f"{where}: the encoder codes {enc.n_features}-pixel signals with dictionaries of sizes "
                              f"{list(enc.dict_sizes)}, but the model's dictionaries are {m.problem.n_features} x "
                              f"{list(m.problem.dict_sizes)}")
    elif m.encoder is not None:
        raise LsalsaError(f"{where}: method {m.method!r} is a solver and takes no encoder")
    if m.n_iter is not None:
        m.n_iter = check_positive_int(m.n_iter, "n_iter")
    _check_consistent(m, where)


def _check_consistent(m: SeparationModel, where: str) -> None:
    """What would only fail, or silently mislead, while separating: alphas, penalties or
    weights that are not finite numbers, an encoder of another dtype than the dictionaries, an
    encoder whose number of layers is not the T recorded with it (``info["T"]``)."""
    problem, enc = m.problem, m.encoder
    if not all(math.isfinite(a) and a >= 0 for a in problem.alphas.tolist()):
        raise LsalsaError(f"{where}: alphas must be finite and >= 0, got {problem.alphas.tolist()}")
    mus = [("mu", m.mu)] + ([("encoder mu", getattr(enc, "mu", None))] if enc is not None else [])
    for name, mu in mus:
        if mu is not None and (isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu)
                               or mu <= 0):
            raise LsalsaError(f"{where}: {name} must be a finite number > 0, got {mu!r}")
    if not isinstance(m.info, dict):
        raise LsalsaError(f"{where}: info must be a table, got {m.info!r}")
    if enc is None:
        return
    for name, t in enc.state_dict().items():
        if t.is_floating_point() and t.dtype != problem.dtype:
            raise LsalsaError(f"{where}: the encoder's {name} is {t.dtype}, the dictionaries are {problem.dtype}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise LsalsaError(f"{where}: the encoder's {name} holds NaN or Inf")
    T = m.info.get("T")
    if T is not None and T != enc.n_layers:
        raise LsalsaError(f"{where}: the encoder has {enc.n_layers} layers, the model was written for T={T}")


def save_model(model: SeparationModel, path: str | os.PathLike) -> None:
    """Write ``model`` to one file, atomically (format ``lsalsa-model``)."""
    if not isinstance(model, SeparationModel):
        raise LsalsaError(f"model: expected a SeparationModel, got {type(model).__name__}")
    p = model.problem
    save_torch({
        "format": MODEL_FORMAT, "version": FORMAT_VERSION,
        "method": model.method, "patch_size": model.patch_size,
        "input_scale": float(model.input_scale),
        "names": list(model.names), "n_iter": model.n_iter, "mu": model.mu, "info": dict(model.info),
        "dictionaries": [A.detach().cpu().contiguous() for A in p.dictionaries()],
        "alphas": [float(a) for a in p.alphas],
        "encoder": None if model.encoder is None else encoder_record(model.encoder),
    }, path)


def load_model(path: str | os.PathLike, *, device: Any = None) -> SeparationModel:
    """Read a model written by :func:`save_model` (on ``device``, default CPU).

    Raises :class:`LsalsaError` naming the file and what is wrong: missing, truncated or
    foreign file, missing fields or fields of the wrong type, dictionaries that do not match
    the patch size or the encoder, and every check of :class:`SeparationModel` (an encoder of
    another dtype, weights or a penalty that are not finite, layers that are not the recorded T).
    """
    obj = read_torch(path, MODEL_FORMAT)
    try:
        dicts = obj["dictionaries"]
        if not isinstance(dicts, Sequence) or not dicts or not all(isinstance(A, torch.Tensor) for A in dicts):
            raise LsalsaError("no dictionaries")
        problem = LassoProblem.from_dictionaries(list(dicts), alphas=obj["alphas"])
        encoder = None if obj.get("encoder") is None else build_encoder(obj["encoder"], path)
        model = SeparationModel(problem, obj["method"], obj["patch_size"], obj["input_scale"],
                                tuple(obj.get("names") or ()), encoder, obj.get("n_iter"), obj.get("mu"),
                                _copy(obj.get("info")))
    except KeyError as exc:
        raise LsalsaError(f"{path}: not a complete lsalsa model (missing {exc})") from None
    except LsalsaError as exc:
        msg = str(exc).removeprefix("model: ")
        raise LsalsaError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except (TypeError, ValueError, AttributeError, RuntimeError) as exc:  # a field of the wrong type, deep inside
        raise LsalsaError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None
    return model if device is None else model.to(device)


def _copy(info: Any) -> Any:
    """A copy of a stored ``info`` table (None: an empty one); anything else is passed on for
    :class:`SeparationModel` to refuse."""
    return {} if info is None else dict(info) if isinstance(info, dict) else info
