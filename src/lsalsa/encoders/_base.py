"""What LISTA and LSALSA share: the parameters ``W_e`` and ``S``, thresholds, config, input checks,
the read-outs of every layer, and :func:`grow` (an encoder one or more layers deeper)."""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .._validation import as_tensor, check_dict_sizes, check_finite, check_nonneg_float, check_positive_int
from ..errors import LsalsaError
from ..problem import LassoProblem

LEARN_THRESHOLDS = (None, "coordinate", "dictionary", "layer")


class UnrolledEncoder(nn.Module):
    """Base of the unrolled encoders: ``W_e: (N, M)``, splitting matrices ``S``, thresholds.

    Subclasses give their layers once, as a function of the operators
    ``_layers(Y, W_e, S, threshold, inplace=False, all_layers=False, **options)`` built from a
    solver's step function: fresh tensors for the trainable ``forward``, reused buffers without
    autograd for :meth:`encode`, the list of every layer's read-out for :meth:`forward_layers`;
    ``_layer_options`` returns the options, ``_per_layer_parameters`` the names of the
    parameters with one entry per layer along their first axis (for :func:`grow`). They add
    their own hyper-parameters to :meth:`config`. ``W_e`` and ``S`` are created as zeros;
    ``from_problem`` (in the subclasses) or ``load_state_dict`` gives them values.

    Parameters
    ----------
    n_features, n_atoms : M and N.
    n_layers : T >= 1.
    alphas : one l1 weight (>= 0) per dictionary.
    dict_sizes : sizes of the D dictionaries, summing to N (default: one dictionary).
    scale : the thresholds are ``alpha_i / scale`` (``mu`` for LSALSA, ``L`` for LISTA).
    n_splitting : how many S matrices an untied model holds (the tied model holds one).
    tied : one S shared by all layers (the paper's model) or one per layer.
    learn_thresholds : None (fixed ``alpha_i / scale``, the paper), "coordinate" (a learnable
        threshold per atom, shared by the layers), "dictionary" (one per dictionary) or "layer"
        (one per layer and atom, ``theta: (T, N)``). A learned threshold ``theta``
        is used as ``max(theta, 0)``, so the threshold in use stays >= 0 whatever SGD does.
    dtype, device : of the parameters (default: torch's default dtype, CPU).
    """

    def __init__(
        self,
        n_features: int,
        n_atoms: int,
        n_layers: int,
        *,
        alphas: Any,
        dict_sizes: Sequence[int] | None,
        scale: float,
        n_splitting: int,
        tied: bool,
        learn_thresholds: str | None,
        dtype: torch.dtype | None,
        device: Any,
    ):
        super().__init__()
        self.n_features = check_positive_int(n_features, "n_features")
        self.n_atoms = check_positive_int(n_atoms, "n_atoms")
        self.n_layers = check_positive_int(n_layers, "n_layers")
        self.dict_sizes = check_dict_sizes(dict_sizes, self.n_atoms, total="n_atoms")
        self.alphas = _check_alphas(alphas, len(self.dict_sizes))
        check_flag(tied, "tied")
        if learn_thresholds not in LEARN_THRESHOLDS:
            raise LsalsaError(f"learn_thresholds: expected one of {list(LEARN_THRESHOLDS)}, got {learn_thresholds!r}")
        self.tied = tied
        self.learn_thresholds = learn_thresholds

        factory = {"dtype": dtype, "device": device}
        N = self.n_atoms
        self.W_e = nn.Parameter(torch.zeros(N, self.n_features, **factory))
        self.S = nn.Parameter(torch.zeros((N, N) if tied else (n_splitting, N, N), **factory))

        self._init_thresholds(scale, factory)

    def _init_thresholds(self, scale: float, factory: dict[str, Any]) -> None:
        """Fixed thresholds ``alpha_i / scale`` as a buffer, or learnable ones as ``theta``."""
        device = factory["device"]
        # Same arithmetic as LassoProblem.thresholds / scale, so that at initialisation the
        # encoder thresholds exactly as its solver does.
        alphas_t = torch.tensor(self.alphas, **factory)
        # alpha_i per atom, (N,): LSALSA's learned penalties divide it by mu_t
        self.register_buffer(
            "_alphas", torch.repeat_interleave(alphas_t, torch.tensor(self.dict_sizes, device=device)), persistent=False
        )
        per_coordinate = self._alphas / scale
        # A python float (all alphas equal, thresholds fixed) takes soft_threshold's fused path.
        self._scalar_threshold: float | None = None
        if self.learn_thresholds is None:
            self.register_buffer("_thresholds", per_coordinate, persistent=False)
            if len(set(self.alphas)) == 1:
                self._scalar_threshold = self.alphas[0] / scale
        elif self.learn_thresholds == "coordinate":
            self.theta = nn.Parameter(per_coordinate)
        elif self.learn_thresholds == "layer":  # (T, N): one threshold per layer and atom
            self.theta = nn.Parameter(per_coordinate.expand(self.n_layers, -1).clone())
        else:
            self.theta = nn.Parameter(alphas_t / scale)
            # which dictionary each atom belongs to: an index, so that expanding the (D,)
            # thresholds to (N,) is a gather (differentiable, and of static size for compile)
            index = torch.repeat_interleave(torch.arange(len(self.dict_sizes)), torch.tensor(self.dict_sizes))
            self.register_buffer("_dict_index", index.to(device), persistent=False)

    # ---- construction ------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments, JSON-able: ``type(self).from_config(c)`` rebuilds
        the module (with zero parameters; load a state dict for the values)."""
        return {
            "n_features": self.n_features,
            "n_atoms": self.n_atoms,
            "n_layers": self.n_layers,
            "alphas": list(self.alphas),
            "dict_sizes": list(self.dict_sizes),
            "tied": self.tied,
            "learn_thresholds": self.learn_thresholds,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], *, dtype: torch.dtype | None = None, device: Any = None):
        """Rebuild a module from :meth:`config` (parameters are zeros until a state dict is loaded)."""
        if not isinstance(config, dict):
            raise LsalsaError(f"config: expected a dict, got {type(config).__name__}")
        return cls._construct("config", **config, dtype=dtype, device=device)

    @classmethod
    def _construct(cls, what: str, *args: Any, **kwargs: Any):
        """``cls(*args, **kwargs)``, an unknown keyword (a typo in ``what``) raising LsalsaError."""
        try:
            return cls(*args, **kwargs)
        except TypeError as exc:
            raise LsalsaError(f"{what}: not a valid {cls.__name__} configuration ({exc})") from exc

    def _set_operators(self, W_e: torch.Tensor, S: torch.Tensor) -> None:
        """Copy a solver's matrices into the parameters (every layer's S when untied)."""
        with torch.no_grad():
            self.W_e.copy_(W_e)
            self.S.copy_(S.expand_as(self.S))

    # ---- forward and inference -----------------------------------------------------------
    _layers: Callable[..., torch.Tensor]

    def _layer_options(self) -> dict[str, Any]:
        raise NotImplementedError

    def _per_layer_parameters(self) -> tuple[str, ...]:
        """Names of the parameters indexed by layer along their first axis (untied ``S``)."""
        return (() if self.tied else ("S",)) + (("theta",) if self.learn_thresholds == "layer" else ())

    def forward(self, Y: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, N)`` for signals ``Y: (B, M)``, a tensor of the encoder's dtype and device;
        differentiable in the parameters (for training). For inference see :meth:`encode`.

        In evaluation mode ``Y`` must be finite (a NaN or Inf raises :class:`LsalsaError`); in
        training mode that check, a pass over ``Y`` and a device sync per batch, is skipped:
        :func:`lsalsa.train_encoder` checks its data once, before the first epoch."""
        self._check_input(Y, finite=not self.training)
        return self._layers(Y, self.W_e, self.S, self._threshold(), **self._layer_options())

    def forward_layers(self, Y: torch.Tensor) -> list[torch.Tensor]:
        """The codes read out after every layer, for deep supervision: a list of T ``(B, N)``
        tensors for ``Y: (B, M)``, element t what an encoder of the first t + 1 layers (these
        parameters) outputs, so the last is ``forward(Y)``, bit for bit. Differentiable; the
        same layers as :meth:`forward`, run once; ``Y`` checked as there."""
        self._check_input(Y, finite=not self.training)
        return self._layers(Y, self.W_e, self.S, self._threshold(), all_layers=True, **self._layer_options())

    def encode(self, Y: torch.Tensor, *, dtype: torch.dtype | None = None, compile: bool | str = False,
               fused: bool | None = None) -> torch.Tensor:
        """Codes for inference: :meth:`forward`'s values, faster, without autograd.

        Runs the layers' function of :meth:`forward` under ``torch.inference_mode`` with
        ``inplace=True``: buffers allocated once per call and updated in place, the same
        arithmetic, so it equals ``forward(Y)``.

        Parameters
        ----------
        Y : (B, M) signals of the encoder's dtype and device, finite: a tensor, or a numpy array
            (or any array-like) of the encoder's dtype on a CPU encoder.
        dtype : run the matrix products in this floating dtype (e.g. ``torch.bfloat16`` on a GPU
            with bf16 tensor cores): ``W_e`` and ``S`` are cast for this call and the products'
            inputs rounded to it, while the iterates, thresholds and codes keep ``Y``'s dtype.
            bfloat16 keeps 8 significant bits, and ``x = S (b + mu w)`` loses about cond(S)
            times that (measured code errors: ``benchmarks/README.md``). On CPUs without native
            bf16 arithmetic the products are much slower than in float32.
        compile : run the trainable layers compiled by ``torch.compile``: True for its default
            mode, or a mode name. On a GPU, ``"reduce-overhead"`` replays the layers as one CUDA
            graph, which removes the per-operation launch cost of small layers (its output
            memory is reused by the next replay, so the codes are copied out). The first call
            for a new shape, dtype or T compiles (seconds to a minute); the compiled code is
            shared by all encoders of the class and subject to torch's recompile limit (8
            variants by default). Not combined with ``dtype``: compile a converted copy
            (``copy.deepcopy(enc).to(dtype)``).
        fused : each layer's element-wise passes as one compiled pass on a CPU
            (:mod:`lsalsa.solvers.fused`; the same arithmetic): None (default) where it runs and
            the batch has at least ``MIN_ELEMENTS`` entries, True always (an error where it
            cannot run: a GPU, mixed precision), False the plain torch passes.

        Returns
        -------
        (B, N) codes of ``Y``'s dtype: an inference tensor (it cannot enter autograd later) for a
        tensor ``Y``, a numpy array for any other ``Y``.
        """
        tensor_in = isinstance(Y, torch.Tensor)
        Y = self._check_input(Y if tensor_in else as_tensor(Y, "Y"), finite=True)
        X = self._encode(Y, dtype, compile, fused)
        return X if tensor_in else X.cpu().numpy()

    def _encode(self, Y: torch.Tensor, dtype: torch.dtype | None, compile: bool | str,
                fused: bool | None = None) -> torch.Tensor:
        """:meth:`encode` of a checked tensor ``Y: (B, M)``."""
        if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
            raise LsalsaError(f"dtype: expected None or a floating torch.dtype, got {dtype!r}")
        if not isinstance(compile, (bool, str)):
            raise LsalsaError(f"compile: expected True, False or a torch.compile mode name, got {compile!r}")
        if fused not in (None, True, False):
            raise LsalsaError(f"fused: expected None, True or False, got {fused!r}")
        if compile is not False and fused is True:
            raise LsalsaError("fused: not combined with compile (torch.compile fuses the passes itself)")
        if compile is not False and dtype not in (None, Y.dtype):
            raise LsalsaError("compile: not supported with dtype; compile a converted copy, copy.deepcopy(enc).to(dtype)")
        with torch.inference_mode():
            W_e, S, threshold = self.W_e, self.S, self._threshold()
            if compile is not False:
                mode = "default" if compile is True else compile
                try:
                    layers = _compiled(self._layers, mode)
                except RuntimeError as exc:  # torch's message lists the modes
                    raise LsalsaError(f"compile: {exc}") from exc
                X = layers(Y, W_e, S, threshold, **self._layer_options())
                return X if mode == "default" else X.clone()
            if dtype is not None:
                W_e, S = W_e.to(dtype), S.to(dtype)
            return self._layers(Y, W_e, S, threshold, inplace=True, fused=fused, **self._layer_options())

    def _threshold(self) -> torch.Tensor | float:
        if self.learn_thresholds is None:
            return self._thresholds if self._scalar_threshold is None else self._scalar_threshold
        theta = self.theta.clamp_min(0)
        return theta[self._dict_index] if self.learn_thresholds == "dictionary" else theta

    @property
    def thresholds(self) -> torch.Tensor:
        """The per-coordinate thresholds in use (a detached copy): ``(N,)`` shared by the layers,
        or ``(T, N)``, row t layer t's, where they differ per layer (LSALSA's ``learn_mu`` with
        fixed thresholds, LISTA's ``learn_step``)."""
        t = self._threshold()
        if isinstance(t, float):
            t = self._thresholds
        return t.detach().clone()

    def _check_input(self, Y: Any, *, finite: bool) -> torch.Tensor:
        """``Y: (B, M)`` of the encoder's dtype and device, and finite if asked (a pass over ``Y``
        and a device sync)."""
        if not isinstance(Y, torch.Tensor):
            raise LsalsaError(f"Y: expected a torch tensor of shape (B, {self.n_features}), got {type(Y).__name__}")
        if Y.ndim != 2 or Y.shape[1] != self.n_features:
            raise LsalsaError(f"Y: expected shape (B, {self.n_features}), got {tuple(Y.shape)}")
        if Y.dtype != self.W_e.dtype:
            raise LsalsaError(
                f"Y: dtype {Y.dtype} does not match the encoder's {self.W_e.dtype}; "
                f"convert one of them (e.g. encoder.to({Y.dtype}))"
            )
        if Y.device != self.W_e.device:
            raise LsalsaError(f"Y: device {Y.device} does not match the encoder's {self.W_e.device}")
        if finite:
            check_finite(Y.detach(), "Y")
        return Y

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())


@functools.cache
def _compiled(layers: Callable[..., torch.Tensor], mode: str) -> Callable[..., torch.Tensor]:
    """``torch.compile`` of a layers function, made once per process and mode (compiling is
    lazy: the first call of each shape compiles). The plain layers are compiled, not the
    in-place ones: inductor fuses and plans buffers itself, and needs no ``out=`` arguments."""
    return torch.compile(layers, fullgraph=True, mode=mode)


def grow(trained: UnrolledEncoder, initial: UnrolledEncoder) -> UnrolledEncoder:
    """An encoder of ``initial``'s T layers that starts as ``trained``'s T0 < T (greedy,
    layer-wise training: train T0 layers, grow, train the deeper one).

    Parameters
    ----------
    trained : an encoder of T0 layers (e.g. trained).
    initial : an encoder of the same class and options (its :meth:`~UnrolledEncoder.config`
        but ``n_layers``) with T > T0 layers, e.g. ``LSALSA.from_problem(problem, T0 + 1, mu)``.

    Returns
    -------
    A new encoder (``initial``'s class, config, dtype and device; neither input is changed nor
    shares memory with it) with ``trained``'s parameters for what the layers share (``W_e``, a
    tied ``S``, learned thresholds ``theta``) and for layers ``< T0`` (the rows of an untied
    ``S``, LSALSA's ``mu_t``, LISTA's ``gamma_t``), ``initial``'s for layers ``>= T0``. Its first
    T0 layers compute what ``trained`` does (:meth:`~UnrolledEncoder.forward_layers`).
    """
    for name, enc in (("trained", trained), ("initial", initial)):
        if not isinstance(enc, UnrolledEncoder):
            raise LsalsaError(f"grow: {name}: expected a LISTA or LSALSA encoder, got {type(enc).__name__}")
    if type(trained) is not type(initial):
        names = f"{type(trained).__name__} and {type(initial).__name__}"
        raise LsalsaError(f"grow: expected two encoders of one class, got {names}")
    old, new = trained.config(), initial.config()
    T0, T = old.pop("n_layers"), new.pop("n_layers")
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if differ:
        raise LsalsaError(f"grow: the encoders' options differ ({', '.join(differ)}); only n_layers may")
    if T <= T0:
        raise LsalsaError(f"grow: initial must have more layers than trained, got {T} <= {T0}")
    grown = type(initial).from_config(initial.config(), dtype=initial.W_e.dtype, device=initial.W_e.device)
    grown.load_state_dict(initial.state_dict())
    per_layer = grown._per_layer_parameters()
    with torch.no_grad():
        for name, p in grown.named_parameters():
            source = getattr(trained, name)
            (p[: source.shape[0]] if name in per_layer else p).copy_(source)
    return grown.train(initial.training)


def check_flag(value: Any, name: str) -> bool:
    """A constructor's on/off option: True or False only."""
    if not isinstance(value, bool):
        raise LsalsaError(f"{name}: expected True or False, got {value!r}")
    return value


def check_problem(problem: Any, n_layers: Any) -> int:
    """Validate ``from_problem``'s common arguments; returns ``n_layers``."""
    if not isinstance(problem, LassoProblem):
        raise LsalsaError(f"problem: expected a LassoProblem, got {type(problem).__name__}")
    return check_positive_int(n_layers, "n_layers")


def _check_alphas(alphas: Any, n_dicts: int) -> tuple[float, ...]:
    if isinstance(alphas, torch.Tensor):
        alphas = alphas.tolist()
    values = [alphas] if isinstance(alphas, (int, float)) else list(alphas)
    values = [check_nonneg_float(a, "alphas") for a in values]
    if len(values) == 1 and n_dicts > 1:
        values = values * n_dicts
    if len(values) != n_dicts:
        raise LsalsaError(f"alphas: expected 1 or {n_dicts} values (one per dictionary), got {len(values)}")
    return tuple(values)
