"""A tiny real-data run (MNIST 6x6 patches, FISTA at T=1, no training) shared by the tests of
faults and of the command line: built once per module, copied for each test that breaks it."""
import shutil
from pathlib import Path

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
