"""Experiment configuration: TOML files (shipped or the user's) into validated dataclasses.

Unknown keys and wrong types are errors (``LsalsaError`` naming the key), so a typo never
silently falls back to a default. ``overrides`` are ``"section.key=value"`` strings, the value
parsed as a TOML value (``--set train.epochs=5 --set methods.T=[1,2]``).
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import torch

from ..codes import SOLVERS as CODE_SOLVERS
from ..data.sources import SOURCES
from ..errors import LsalsaError
from ..methods import METHODS
from ..learning_rate import SCHEDULES
from ..train_config import OPTIMIZERS

DTYPES = ("float32", "float64")


@dataclass
class DataConfig:
    """Where the signals come from. ``kind="patches"``: patches of one source (single dictionary);
    ``kind="mixture"``: sums of one signal of each of D >= 2 sources (MCA, one dictionary per
    source, in the order of ``sources``). Keys a kind does not use are rejected (:data:`UNUSED`)."""
    kind: str = "patches"
    source: str = "mnist"      # patches: the source (a name of lsalsa.data.SOURCES or an image folder)
    sources: list[str] = field(default_factory=lambda: ["mnist", "natural"])  # mixture: its D sources
    stand_in: str = ""         # read in place of a named source whose files are not in the data
                               # directory (e.g. "natural" for ASIRRA, CIFAR-10); "": such a source is an error
    patch_size: int = 10
    stride: int = 0            # 0: non-overlapping (= patch_size)
    pad_to: int = 0            # patches: 0 no padding (MNIST: 32, as in the paper); mixtures pad
                               # images smaller than patch_size to it
    min_std: float = 0.0       # patches: keep only training patches with std >= min_std
    n_train: int = 10_000      # training signals (before `scale`)
    n_test: int = 2_000        # test signals (before `scale`)
    n_dict: int = 10_000       # signals used to learn the dictionary (before `scale`)
    scale: float = 1.0         # one knob for the experiment's size: multiplies n_train, n_test, n_dict
    data_dir: str = ""         # "" = $LSALSA_DATA or the default data directory
    dtype: str = "float32"     # precision of the signals, dictionaries, codes and encoders


@dataclass
class DictionaryConfig:
    """One dictionary per source (Eq. 5; Remark 1 for MCA), learned or loaded."""
    n_atoms: list[int] = field(default_factory=lambda: [100])
    alphas: list[float] = field(default_factory=lambda: [0.15])   # alpha* of the optimal codes
    epochs: int = 10
    batch_size: int = 256
    path: str = ""             # load dictionaries from this .npz (keys A0, A1, ..) instead of learning


@dataclass
class CodesConfig:
    """How the optimal codes X* are computed (Section 6: FISTA for SC, SALSA for MCA)."""
    solver: str = "fista"
    mu: float = 10.0           # SALSA's penalty here: how fast X* is reached, not what it is
    tol: float = 1e-6
    max_iter: int = 5_000
    allow_unconverged: bool = False  # true: go on when some optimal codes did not converge


@dataclass
class MethodsConfig:
    """The methods compared (names of :data:`lsalsa.methods.METHODS`) at each cost T."""
    names: list[str] = field(default_factory=lambda: ["fista", "salsa", "lista", "lsalsa"])
    T: list[int] = field(default_factory=lambda: [1, 3, 5, 10])
    mu: float = 10.0           # SALSA's penalty in the report's acceleration when SALSA is not
                               # compared (else SALSA's searched mu at that T)
    repeats: int = 5           # timing repeats (median)
    classify: bool = True      # classification error of each method's codes


@dataclass
class TrainConfigSection:
    """Final training of LISTA / LSALSA (Eq. 15) with the best searched settings."""
    epochs: int = 20
    batch_size: int = 100
    optimizer: str = "adam"
    lr_lista: float = 0.0      # 0: found by the range test (TrainConfig lr="auto")
    lr_lsalsa: float = 0.0
    schedule: str = "cosine"   # or "exponential" (lr_decay per epoch) or "constant"
    lr_decay: float = 1.0      # of the "exponential" schedule
    warmup: int = 50           # optimiser steps of linear warm-up
    tied: bool = False         # one S shared by the layers (the paper) or one per layer
    learn_thresholds: str = "" # "" (fixed alpha/mu, the paper), "coordinate", "dictionary", "layer"
    layerwise: bool = False    # greedy: LSALSA(t) from a trained LSALSA(t-1) plus one layer
    deep_supervision: float = 0.0
    rel_tol: float = 1e-6
    lr_test_steps: int = 20    # steps per rate of the range test (TrainConfig.lr_test_steps)


@dataclass
class SearchConfig:
    """Hyper-parameter grids per method and T (Supplement E); one-element grids = no search."""
    alpha_factors: list[float] = field(default_factory=lambda: [1.0])  # inference alpha = factor * alpha*
    mu: list[float] = field(default_factory=lambda: [10.0])            # SALSA / LSALSA penalties
    lr_factors: list[float] = field(default_factory=lambda: [1.0])     # times train.lr_<method> (or the range test's)
    lr_decays: list[float] = field(default_factory=lambda: [0.0])      # exponential per-epoch factors; 0: train's schedule
    learned: str = "staged"    # learned methods: "staged" (one setting at a time) or "grid" (every combination)
    learned_mu: bool = False   # LSALSA's mu also searched by training (each of mu, besides SALSA's best at T)
    epochs: int = 3                                                    # training epochs per trial
    val_fraction: float = 0.2                                          # of the training signals


@dataclass
class SeparationConfig:
    """Whole-picture separation at the end of a mixture experiment: MNIST test digits over a
    crop of a held-out photo, separated by every method with :func:`lsalsa.separate_image`."""
    photo: str = "camera"      # one of the natural pool's test photos (never seen in training)
    size: int = 128            # side of the square picture, in pixels
    stride: int = 0            # patch step; 0: patch_size // 4


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    description: str = ""
    seed: int = 0
    device: str = "cpu"        # where the run computes: "cpu", "cuda", "cuda:1", ... or "auto"
    data: DataConfig = field(default_factory=DataConfig)
    dictionary: DictionaryConfig = field(default_factory=DictionaryConfig)
    codes: CodesConfig = field(default_factory=CodesConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)
    train: TrainConfigSection = field(default_factory=TrainConfigSection)
    search: SearchConfig = field(default_factory=SearchConfig)
    separation: SeparationConfig = field(default_factory=SeparationConfig)

    def scaled(self, n: int) -> int:
        return max(1, int(round(n * self.data.scale)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """:meth:`to_dict` without the keys that say how a run goes, not what it computes
        (:data:`NOT_IDENTITY`): a run may resume on another device, or accept its unconverged
        codes after it stopped on them."""
        d = self.to_dict()
        for key in NOT_IDENTITY:
            *parents, last = key.split(".")
            node = d
            for p in parents:
                node = node[p]
            node.pop(last)
        return d


NOT_IDENTITY = ("device", "codes.allow_unconverged")

# Keys (or whole sections) that a kind of experiment does not use: naming one in a config file or
# an override is an error, not silently ignored. key -> (is it unused by this config?, why).
UNUSED: dict[str, tuple[Any, str]] = {
    "data.source": (lambda c: c.data.kind == "mixture", "a mixture names its sources in data.sources"),
    "data.sources": (lambda c: c.data.kind == "patches", "a patches experiment has one source, data.source"),
    "data.pad_to": (lambda c: c.data.kind == "mixture",
                    "a mixture pads the images smaller than data.patch_size to it"),
    "data.min_std": (lambda c: c.data.kind == "mixture", "a mixture keeps every patch"),
    "separation": (lambda c: c.data.kind == "patches", "only a mixture experiment separates a picture"),
}
SEED_LIMIT = 2**32  # numpy's and torch's generators both take seeds in [0, 2**32)


def shipped_configs() -> list[str]:
    """Names of the experiment configurations shipped with lsalsa."""
    root = resources.files(__package__) / "configs"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_config(name_or_path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a shipped config by name (``"demo"``) or a user's TOML file, then apply overrides."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise LsalsaError(f"config: file {str(path)!r} does not exist")
        text = path.read_text()
    else:
        if str(name_or_path) not in shipped_configs():
            raise LsalsaError(f"config: {str(name_or_path)!r} is neither a file nor a shipped config {shipped_configs()}")
        text = (resources.files(__package__) / "configs" / f"{name_or_path}.toml").read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LsalsaError(f"config {str(name_or_path)!r}: invalid TOML: {exc}") from None
    for item in overrides:
        _apply_override(raw, item)
    config = _build(ExperimentConfig, raw, "")
    _check(config)
    _reject_unused(raw, config)
    return config


def _reject_unused(raw: dict, c: ExperimentConfig) -> None:
    """One line naming the first key of ``raw`` (the file with its overrides) that ``c``'s kind
    of experiment does not use (:data:`UNUSED`)."""
    for key, (unused, why) in UNUSED.items():
        *parents, last = key.split(".")
        node = raw
        for p in parents:
            node = node.get(p, {})
        if last in node and unused(c):
            raise LsalsaError(f"config: {key} is not used by this experiment ({why}); remove it")


def _apply_override(raw: dict, item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise LsalsaError(f"--set: expected key=value, got {item!r}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()  # a bare word is a string
    *parents, last = key.strip().split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise LsalsaError(f"--set: {key!r}: {p!r} is not a section")
    node[last] = parsed


def _build(cls, raw: Any, prefix: str):
    if not isinstance(raw, dict):
        raise LsalsaError(f"config: {prefix.rstrip('.') or 'top level'} must be a table, got {raw!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise LsalsaError(f"config: unknown key(s) {[prefix + k for k in unknown]}; expected {sorted(prefix + k for k in known)}")
    kwargs = {}
    for name, value in raw.items():
        f = known[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, default, prefix + name)
    return cls(**kwargs)


def _coerce(value: Any, default: Any, key: str) -> Any:
    def bad(expected: str):
        return LsalsaError(f"config: {key} must be {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, list):
        if not isinstance(value, list) or not value:
            raise bad("a non-empty list")
        return [_coerce(v, default[0], f"{key}[{i}]") for i, v in enumerate(value)]
    raise bad(type(default).__name__)  # pragma: no cover


def _check(c: ExperimentConfig) -> None:
    def need(ok: bool, key: str, expected: str, value: Any) -> None:
        if not ok:
            raise LsalsaError(f"config: {key} must be {expected}, got {value!r}")

    need(0 <= c.seed < SEED_LIMIT, "seed", "an integer in [0, 2**32)", c.seed)
    need(_device_name(c.device), "device", "'cpu', 'cuda', 'cuda:<index>', 'mps' or 'auto'", c.device)
    d = c.data
    need(d.kind in ("patches", "mixture"), "data.kind", "'patches' or 'mixture'", d.kind)
    need(d.patch_size >= 1, "data.patch_size", ">= 1", d.patch_size)
    need(0 <= d.stride <= d.patch_size, "data.stride", "0 (= patch_size) or in 1..patch_size", d.stride)
    need(d.scale > 0, "data.scale", "> 0", d.scale)
    need(d.dtype in DTYPES, "data.dtype", " or ".join(map(repr, DTYPES)), d.dtype)
    for k in ("n_train", "n_test", "n_dict"):
        need(getattr(d, k) >= 1, f"data.{k}", ">= 1", getattr(d, k))
        need(c.scaled(getattr(d, k)) < 2**31, f"data.{k}", "at most 2**31 signals after data.scale",
             getattr(d, k) * d.scale)
    for key, names in (("data.source", [d.source]), ("data.sources", d.sources),
                       ("data.stand_in", [d.stand_in] if d.stand_in else [])):
        bad = [n for n in names if n not in SOURCES and "/" not in n]
        need(not bad, key, f"names from {sorted(SOURCES)} (or an image folder's path)", bad)
    need(d.kind == "patches" or len(d.sources) >= 2, "data.sources", "a list of at least 2 sources", d.sources)
    n_dicts = len(d.sources) if d.kind == "mixture" else 1
    need(len(c.dictionary.n_atoms) == n_dicts, "dictionary.n_atoms", f"a list of {n_dicts} sizes", c.dictionary.n_atoms)
    need(len(c.dictionary.alphas) == n_dicts, "dictionary.alphas", f"a list of {n_dicts} values", c.dictionary.alphas)
    need(all(a > 0 for a in c.dictionary.alphas), "dictionary.alphas", "> 0", c.dictionary.alphas)
    need(all(n >= 1 for n in c.dictionary.n_atoms), "dictionary.n_atoms", ">= 1", c.dictionary.n_atoms)
    if not c.dictionary.path:  # learned from data: its atoms start as n_atoms of the n_dict signals
        need(c.scaled(d.n_dict) >= max(c.dictionary.n_atoms), "data.n_dict",
             f"at least dictionary.n_atoms = {max(c.dictionary.n_atoms)} signals after data.scale = {d.scale:g} "
             "(raise data.scale or data.n_dict, or lower dictionary.n_atoms)", c.scaled(d.n_dict))
        # a mixture's dictionaries learn from the components of its first training mixtures
        need(d.kind == "patches" or c.scaled(d.n_train) >= max(c.dictionary.n_atoms), "data.n_train",
             f"at least dictionary.n_atoms = {max(c.dictionary.n_atoms)} mixtures after data.scale = {d.scale:g}: "
             "the dictionaries learn from the first training mixtures' components (raise data.scale or "
             "data.n_train, or lower dictionary.n_atoms)", c.scaled(d.n_train))
    need(c.dictionary.epochs >= 1 and c.dictionary.batch_size >= 1, "dictionary.epochs/batch_size", ">= 1",
         (c.dictionary.epochs, c.dictionary.batch_size))
    need(d.pad_to >= 0 and d.min_std >= 0, "data.pad_to/min_std", ">= 0", (d.pad_to, d.min_std))
    need(c.codes.solver in CODE_SOLVERS, "codes.solver", " or ".join(map(repr, CODE_SOLVERS)), c.codes.solver)
    need(c.codes.mu > 0 and c.codes.tol > 0, "codes.mu/tol", "> 0", (c.codes.mu, c.codes.tol))
    need(c.codes.max_iter >= 1, "codes.max_iter", "an integer >= 1", c.codes.max_iter)
    need(all(m in METHODS for m in c.methods.names), "methods.names", f"a list from {list(METHODS)}", c.methods.names)
    need(len(set(c.methods.names)) == len(c.methods.names), "methods.names", "a list without repeats", c.methods.names)
    need(all(t >= 1 for t in c.methods.T), "methods.T", "a list of integers >= 1", c.methods.T)
    need(len(set(c.methods.T)) == len(c.methods.T), "methods.T", "a list without repeats", c.methods.T)
    need(c.methods.mu > 0, "methods.mu", "> 0", c.methods.mu)
    need(c.methods.repeats >= 1, "methods.repeats", ">= 1", c.methods.repeats)
    t = c.train
    need(t.optimizer in OPTIMIZERS, "train.optimizer", " or ".join(map(repr, OPTIMIZERS)), t.optimizer)
    need(t.epochs >= 1 and t.batch_size >= 1, "train.epochs/batch_size", ">= 1", (t.epochs, t.batch_size))
    need(t.lr_lista >= 0 and t.lr_lsalsa >= 0, "train.lr_*", ">= 0 (0: found by the range test)",
         (t.lr_lista, t.lr_lsalsa))
    need(t.learn_thresholds in ("", "coordinate", "dictionary", "layer"), "train.learn_thresholds",
         "'', 'coordinate', 'dictionary' or 'layer'", t.learn_thresholds)
    need(t.schedule in SCHEDULES, "train.schedule", " or ".join(map(repr, SCHEDULES)), t.schedule)
    need(0 < t.lr_decay <= 1, "train.lr_decay", "in (0, 1]", t.lr_decay)
    need(t.lr_decay == 1 or t.schedule == "exponential", "train.lr_decay",
         "1 unless train.schedule is 'exponential'", t.lr_decay)
    need(t.warmup >= 0 and t.deep_supervision >= 0, "train.warmup/deep_supervision", ">= 0",
         (t.warmup, t.deep_supervision))
    s = c.search
    need(all(a > 0 for a in s.alpha_factors), "search.alpha_factors", "> 0", s.alpha_factors)
    need(all(m > 0 for m in s.mu), "search.mu", "> 0", s.mu)
    need(all(f > 0 for f in s.lr_factors), "search.lr_factors", "> 0", s.lr_factors)
    need(s.learned in ("staged", "grid"), "search.learned", "'staged' or 'grid'", s.learned)
    need(t.lr_test_steps >= 1, "train.lr_test_steps", ">= 1", t.lr_test_steps)
    need(all(0 <= f <= 1 for f in s.lr_decays), "search.lr_decays", "in [0, 1] (0: train.schedule)", s.lr_decays)
    need(s.epochs >= 1, "search.epochs", ">= 1", s.epochs)
    need(0 < s.val_fraction < 1, "search.val_fraction", "in (0, 1)", s.val_fraction)
    from ..data.natural import TEST_IMAGES

    sep = c.separation
    need(sep.photo in TEST_IMAGES, "separation.photo", f"a held-out photo from {list(TEST_IMAGES)}", sep.photo)
    need(sep.size >= d.patch_size, "separation.size", f">= data.patch_size ({d.patch_size})", sep.size)
    need(0 <= sep.stride <= d.patch_size, "separation.stride", "0 (= patch_size // 4) or in 1..patch_size", sep.stride)


def _device_name(name: str) -> bool:
    """Whether ``name`` is a device name a run takes (its availability is checked when the run
    starts, not here: a config may be written on a machine without the device)."""
    if name == "auto":
        return True
    try:
        return torch.device(name).type in ("cpu", "cuda", "mps")
    except (RuntimeError, ValueError):
        return False


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """Rebuild a validated config from ``ExperimentConfig.to_dict()`` output (a run's config.json)."""
    config = _build(ExperimentConfig, raw, "")
    _check(config)
    return config
