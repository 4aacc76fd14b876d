"""A tiny real-data run (MNIST 6x6 patches, FISTA at T=1, no training) shared by the tests of
faults and of the command line: built once per module, copied for each test that breaks it."""
import shutil
from pathlib import Path

import pytest

from lsalsa.experiments import load_config, run_experiment

TINY = """
name = "tiny"
[data]
patch_size = 6
n_train = 200
n_test = 40
n_dict = 200
[dictionary]
n_atoms = [16]
alphas = [0.15]
epochs = 1
[codes]
solver = "salsa"
mu = 1.0
tol = 1e-4
[methods]
names = ["fista"]
T = [1]
repeats = 1
classify = false
"""


def build(root: Path) -> tuple[Path, Path]:
    """``(config file, run directory)`` of the tiny run, run to its report."""
    cfg = root / "tiny.toml"
    cfg.write_text(TINY)
    run_experiment(load_config(cfg), root / "run")
    return cfg, root / "run"


def copy(run: Path, to: Path) -> Path:
    return Path(shutil.copytree(run, to))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(config file, run directory)`` of the tiny run, built once per module."""
    return build(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def run(tiny, tmp_path):
    """A copy of the tiny run to break, and its config."""
    return tiny[0], copy(tiny[1], tmp_path / "run")


def one_line_error(capsys) -> str:
    """The CLI's stderr, asserted to be one ``lsalsa: error: ...`` line and no traceback."""
    err = capsys.readouterr().err
    assert err.startswith("lsalsa: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err
