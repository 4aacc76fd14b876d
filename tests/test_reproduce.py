"""``lsalsa reproduce``: the paper's numbers as data, the verdicts, and a tiny end-to-end run."""
import json
import re
from pathlib import Path

import pytest

from lsalsa.cli import main
from lsalsa.errors import LsalsaError
from lsalsa.experiments import paper, reproduce

PAPER_FILE = Path(__file__).resolve().parents[2] / "shared" / "paper" / "lsalsa-paper.md"


def _paper_tables(text: str) -> dict[str, dict[str, dict[int, float]]]:
    """Every "Classification Error" table of the paper's text: ``{"Table k": {method: {T: %}}}``."""
    out = {}
    for block, name in re.findall(r"Iter\tFISTA\tLISTA\tSALSA\tLSALSA\n((?:\d+\t[^\n]+\n)+)\s*(Table \d+)", text):
        cols = {m: {} for m in paper.METHODS}
        for line in block.strip().splitlines():
            T, *values = line.split("\t")
            for m, v in zip(paper.METHODS, values):
                cols[m][int(T)] = float(v)
        out[name] = cols
    return out


@pytest.mark.skipif(not PAPER_FILE.exists(), reason="the paper's text is not beside this checkout")
def test_transcribed_tables_equal_the_papers():
    found = _paper_tables(PAPER_FILE.read_text())
    ours = {name: table for exp in paper.PAPER.values() for name, table in exp["tables"].values()}
    assert sorted(ours) == [f"Table {k}" for k in range(1, 9)] and sorted(found) == sorted(ours)
    for name, table in ours.items():
        assert table == found[name], name


def test_paper_values_are_complete():
    assert paper.EXPERIMENTS == ("fashion_sc", "asirra_sc", "mnist_sc", "cifar_sc", "mnist_asirra_mca", "mnist_cifar_mca")
    for name, exp in paper.PAPER.items():
        assert set(exp) >= {"title", "iterations", "tables"} and name in reproduce.DATASETS
        for relation, k, source in exp["iterations"].values():
            assert relation in (">", "=") and k > 0 and source
    assert paper.best_method(paper.PAPER["mnist_cifar_mca"]["tables"][2][1], 1) == ["salsa"]  # Table 8, T = 1
    assert paper.best_method(paper.PAPER["mnist_asirra_mca"]["tables"][1][1], 50) == ["lsalsa", "salsa"]  # a tie


@pytest.mark.parametrize("relation,k,ours,verdict", [
    (">", 15, {"iterations": 16}, "reproduced"), (">", 15, {"iterations": 15}, "not reproduced"),
    ("=", 15, {"iterations": 15}, "reproduced"), ("=", 15, {"iterations": 9}, "not reproduced"),
    (">", 50, {"iterations": None, "note": "not reached in 1000 iterations"}, "reproduced"),
    (">", 5, None, "not comparable (no LSALSA at T = 1)"),
])
def test_iteration_verdicts(relation, k, ours, verdict):
    assert reproduce._iteration_verdict(relation, k, ours)[1] == verdict


def test_unknown_experiment_is_one_line(capsys):
    with pytest.raises(LsalsaError, match="unknown experiment"):
        reproduce.check_names(["mnist"])
    assert main(["reproduce", "--only", "mnist", "--out", "x"]) == 2
    assert "unknown experiment" in capsys.readouterr().err
    assert main(["reproduce", "--scale", "-1"]) == 2


TINY = ["data.scale=0.005", "data.n_test=60000", "dictionary.n_atoms=[24]", "dictionary.epochs=1",
        "methods.T=[1,2]", "methods.repeats=1", "train.epochs=1", "train.lr_lista=0.001", "train.lr_lsalsa=0.001",
        "search.mu=[1.0]", "search.epochs=1", "search.alpha_factors=[1.0]", "search.lr_factors=[1.0]",
        "search.lr_decays=[0.0]",
        "codes.solver=\"salsa\"", "codes.mu=1.0", "codes.tol=1e-5"]


def test_tiny_reproduction_end_to_end(tmp_path, capsys):
    """mnist_sc at a tiny size: the runs, then reproduction.md with Table 5 beside ours and a
    verdict per claim; re-writing it from the cached runs gives the same claims."""
    args = ["reproduce", "--only", "mnist_sc", "--out", str(tmp_path)] + [a for s in TINY for a in ("--set", s)]
    assert main(args) == 0
    md = (tmp_path / "reproduction.md").read_text()
    assert "## Claims" in md and "| T (Table 5, source 1: paper / ours) | FISTA | LISTA | SALSA | LSALSA |" in md
    assert "| 1 | 40.87 / " in md  # the paper's FISTA at T = 1 beside ours
    claims = json.loads((tmp_path / "reproduction.json").read_text())["mnist_sc"]["claims"]
    assert [c[0] for c in claims] == ["FISTA needs 15 iterations to match LSALSA T = 1",
                                      "Table 5: best classifier of source 1 at T = 1"]
    assert all(c[3] in ("reproduced", "not reproduced") for c in claims)
    acc = json.loads((tmp_path / "mnist_sc" / "results" / "acceleration.json").read_text())
    assert claims[0][2] == str(acc["fista"]["iterations"])
    assert (tmp_path / "figures" / "mnist_sc_error_vs_T.png").exists()
    for fig in ("error_vs_time", "sparsity_vs_error", "class_error_vs_time"):  # Fig. 5, 6/20, 12-19
        assert (tmp_path / "figures" / f"mnist_sc_{fig}.png").exists() and f"figures/mnist_sc_{fig}.png" in md
    # how the run differs from the shipped config, and what the solvers take to reach LSALSA T = 1
    changed = json.loads((tmp_path / "reproduction.json").read_text())["mnist_sc"]["changed"]
    assert "data.scale = 0.005" in changed and "methods.T = [1, 2]" in changed and "search.epochs = 1" in changed
    assert "Settings changed from the shipped config: " in md and "data.scale = 0.005" in md
    k = acc["fista"]["iterations"]
    assert f"FISTA needs {k} iteration{'s' if k != 1 else ''}:" in md and "paired per round" in md
    assert "<table>" in (tmp_path / "reproduction.html").read_text()
    reproduce.write_reproduction(tmp_path, ["mnist_sc"], 0.005)
    assert json.loads((tmp_path / "reproduction.json").read_text())["mnist_sc"]["claims"] == claims


def test_an_override_can_name_its_experiment(tmp_path, capsys):
    names = ["mnist_sc", "mnist_cifar_mca"]
    sets = ["methods.T=[1,3]", "mnist_cifar_mca:train.epochs=5", "mnist_sc:data.scale=0.5"]
    assert reproduce.experiment_overrides("mnist_cifar_mca", sets, names) == ["methods.T=[1,3]", "train.epochs=5"]
    assert reproduce.experiment_overrides("mnist_sc", sets, names) == ["methods.T=[1,3]", "data.scale=0.5"]
    with pytest.raises(LsalsaError, match="'cifar_sc' is not an experiment of this run"):
        reproduce.experiment_overrides("mnist_sc", ["cifar_sc:train.epochs=1"], names)
    assert main(["reproduce", "--only", "mnist_sc", "--out", str(tmp_path), "--set", "mnist_sc:train.bogus=1"]) == 2
    assert "train.bogus" in capsys.readouterr().err
    assert not list(tmp_path.rglob("data.npz"))


def test_too_few_mixtures_for_the_dictionaries_fail_at_once(tmp_path, capsys):
    """A mixture's dictionaries learn from its first training mixtures: at scale 0.25 with 4000
    mixtures (1000 after scaling) 1024 atoms cannot be seeded, said before any data is built."""
    args = ["reproduce", "--scale", "0.25", "--only", "mnist_cifar_mca", "--out", str(tmp_path),
            "--set", "mnist_cifar_mca:data.n_train=4000"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.n_train must be at least dictionary.n_atoms = 1024 mixtures" in err
    assert not list(tmp_path.rglob("data.npz"))


def test_probe_errors_are_read_from_the_run(tmp_path):
    (tmp_path / "probes.json").write_text(json.dumps({"probes": [
        {"key": "class_error_1", "optimal_error": 0.0}, {"key": "class_error_2", "optimal_error": 0.8}], "skipped": []}))
    assert reproduce._probe_errors(tmp_path) == {"class_error_1": 0.0, "class_error_2": 0.8}
    assert reproduce._probe_errors(tmp_path / "none") == {}


def test_missing_data_fails_before_any_long_step(tmp_path, monkeypatch, capsys):
    """Every experiment's data step runs first: a data directory without MNIST stops the command
    before any dictionary is learned."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LSALSA_DATA", str(empty))
    assert main(["reproduce", "--only", "fashion_sc", "mnist_sc", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(empty) in err
    assert not list((tmp_path / "out").rglob("dictionary.npz"))


def test_a_scale_too_small_for_the_dictionaries_fails_at_once(tmp_path, capsys):
    """The six configs are loaded before anything runs: at scale 0.02 the MCA experiments have 100
    signals for 1024 atoms, said in one line before any data is built."""
    assert main(["reproduce", "--scale", "0.02", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.n_dict must be at least dictionary.n_atoms = 1024" in err
    assert not list(tmp_path.rglob("data.npz"))
