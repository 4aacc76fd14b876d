"""The experiment runner and the CLI on tiny real-data configs (issue: evaluation and CLI)."""
import csv
import json

import numpy as np
import pytest
import torch

import lsalsa
from lsalsa.bundle import load_model
from lsalsa.cli import main
from lsalsa.evaluation import time_encode
from lsalsa.errors import LsalsaError
from lsalsa.experiments import load_config, run_experiment, shipped_configs

TINY_SC = """
name = "tiny_sc"
seed = 0
[data]
kind = "patches"
source = "mnist"
patch_size = 8
pad_to = 32
min_std = 0.1
n_train = 600
n_test = 320
n_dict = 600
[dictionary]
n_atoms = [48]
alphas = [0.15]
epochs = 1
[codes]
solver = "salsa"
mu = 1.0
tol = 1e-5
[methods]
names = ["fista", "salsa", "lista", "lsalsa"]
T = [1, 2]
mu = 1.0
repeats = 2
[train]
epochs = 2
schedule = "exponential"
[search]
mu = [1.0, 3.0]
lr_decays = [0.5, 0.9]
epochs = 1
"""

TINY_MCA = """
name = "tiny_mca"
[data]
kind = "mixture"
patch_size = 32
n_train = 120
n_test = 12
n_dict = 120
[dictionary]
n_atoms = [24, 24]
alphas = [0.125, 0.2]
epochs = 1
[codes]
solver = "salsa"
mu = 1.0
tol = 1e-4
[methods]
names = ["salsa", "lsalsa"]
T = [1]
mu = 1.0
repeats = 1
[train]
epochs = 1
"""

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sc_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sc")
    cfg = root / "tiny_sc.toml"
    cfg.write_text(TINY_SC)
    assert main(["run", str(cfg), "--out", str(root / "run")]) == 0
    return root / "run"


def _report_table(md: str, title: str) -> dict[tuple[str, int], float]:
    lines = md.split(f"## {title}")[1].split("\n## ")[0].splitlines()
    table = [l for l in lines if l.startswith("|") and not l.startswith("|---")]
    header = [h.strip() for h in table[0].strip("|").split("|")]
    out = {}
    for line in table[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name, cell in zip(header[1:], cells[1:]):
            out[(name, int(cells[0]))] = float(cell)
    return out


def test_run_writes_every_output(sc_run):
    for name in ("config.json", "data.npz", "dictionary.npz", "results.csv", "report.md", "report.html"):
        assert (sc_run / name).is_file(), name
    figures = sorted((sc_run / "figures").glob("*.png"))
    assert {f.name for f in figures} >= {"error_vs_T.png", "error_vs_time.png", "class_error_vs_time.png",
                                         "sparsity_vs_error.png", "atoms_1.png"}
    for f in figures:
        assert f.read_bytes()[:8] == PNG_MAGIC and f.stat().st_size > 5000
    html = (sc_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figures)  # self-contained
    rows = list(csv.DictReader(open(sc_run / "results.csv")))
    assert {(r["method"], int(r["T"])) for r in rows} == {(m, T) for m in ("fista", "salsa", "lista", "lsalsa") for T in (1, 2)}
    # the search picked a mu from the grid for the SALSA family
    assert all(float(r["mu"]) in (1.0, 3.0) for r in rows if r["method"] in ("salsa", "lsalsa"))
    assert all(float(r["lr_decay"]) in (0.5, 0.9) for r in rows if r["method"] in ("lista", "lsalsa"))


def test_report_tables_match_result_rows(sc_run):
    md = (sc_run / "report.md").read_text()
    rows = list(csv.DictReader(open(sc_run / "results.csv")))
    labels = {"fista": "FISTA", "salsa": "SALSA", "lista": "LISTA", "lsalsa": "LSALSA"}
    rmse = _report_table(md, "Code error")
    errors = _report_table(md, "Classification error")
    assert "labelled test images)" in md.split("## Classification error")[1].split("\n## ")[0]
    for r in rows:
        key = (labels[r["method"]], int(r["T"]))
        assert rmse[key] == pytest.approx(float(r["rmse"]), rel=1e-3)
        assert errors[key] == pytest.approx(float(r["class_error"]), abs=0.006)
    setup = _report_table(md, "Set-up time [s] of the solvers")  # the solvers' set-up, apart from time_s
    assert {k[0] for k in setup} == {"FISTA", "SALSA"}
    for r in rows:
        if r["method"] in ("fista", "salsa"):
            assert setup[(labels[r["method"]], int(r["T"]))] == pytest.approx(float(r["setup_s"]), rel=1e-2)
    assert "## Acceleration" in md and "LSALSA at T = 1" in md


def test_trained_lsalsa_beats_truncated_salsa(sc_run):
    rows = {(r["method"], int(r["T"])): float(r["rmse"]) for r in csv.DictReader(open(sc_run / "results.csv"))}
    assert rows[("lsalsa", 1)] < rows[("salsa", 1)]
    assert rows[("lista", 1)] < rows[("fista", 1)]


def test_resume_recomputes_only_what_is_missing(sc_run, monkeypatch):
    for name in ("lsalsa_T2.json", "lsalsa_T2.search.json", "lista_T2.json"):
        (sc_run / "results" / name).unlink()
    before = json.loads((sc_run / "results" / "fista_T1.json").read_text())
    calls = []
    import lsalsa.experiments.evaluate as runner
    real = runner._search
    monkeypatch.setattr(runner, "_search", lambda c, m, *a: calls.append(m) or real(c, m, *a))
    assert main(["report", str(sc_run)]) == 0  # the report step runs every earlier step first
    assert calls == ["lsalsa"]  # LISTA's choice was cached: only re-scored
    assert (sc_run / "results" / "lsalsa_T2.json").exists() and (sc_run / "results" / "lista_T2.json").exists()
    after = json.loads((sc_run / "results" / "fista_T1.json").read_text())
    timing = {"time_s", "time_min", "time_max", "time_ratio", "ratio_min", "ratio_max", "load"}  # all timed again
    assert {k: v for k, v in after.items() if k not in timing} == {k: v for k, v in before.items() if k not in timing}


def test_interrupted_run_resumes(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY_SC.replace('names = ["fista", "salsa", "lista", "lsalsa"]', 'names = ["fista", "lsalsa"]'))
    import lsalsa.experiments.evaluate as runner
    real = runner.evaluate_codes
    n = {"calls": 0}

    def flaky(*a, **k):
        n["calls"] += 1
        if n["calls"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(runner, "evaluate_codes", flaky)
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    def rows():
        return sorted(p.name for p in (tmp_path / "run" / "results").glob("*_T?.json"))

    assert rows() == ["fista_T1.json", "lsalsa_T1.json"]
    monkeypatch.setattr(runner, "evaluate_codes", real)
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    assert rows() == ["fista_T1.json", "fista_T2.json", "lsalsa_T1.json", "lsalsa_T2.json"]
    assert len(list((tmp_path / "run" / "results").glob("*.search.json"))) == 4


def test_mixture_run_reports_psnr_and_separation_figure(tmp_path):
    cfg = tmp_path / "tiny_mca.toml"
    cfg.write_text(TINY_MCA)
    rows = run_experiment(load_config(cfg), tmp_path / "run")
    assert {r["method"] for r in rows} == {"salsa", "lsalsa"}
    assert all(np.isfinite(r["psnr_1"]) and np.isfinite(r["psnr_2"]) for r in rows)
    assert (tmp_path / "run" / "figures" / "separation_T1.png").read_bytes()[:8] == PNG_MAGIC
    md = (tmp_path / "run" / "report.md").read_text()
    # the PSNR tables name their sources; SALSA's first iterate overshoots (negative PSNR), explained
    assert "| T (source 1: mnist) |" in md and "| T (source 2: natural) |" in md
    assert (min(r["psnr_1"] for r in rows) < 0) == ("a negative PSNR is an error larger than the source" in md)
    # the whole-picture step: every method separates digits laid over a held-out photo
    sep = json.loads((tmp_path / "run" / "results" / "separation.json").read_text())
    assert [(r["method"], r["T"]) for r in sep] == [("salsa", 1), ("lsalsa", 1)]
    assert all(np.isfinite(r["psnr_digits"]) and np.isfinite(r["psnr_photo"]) for r in sep)
    assert (tmp_path / "run" / "separation" / "lsalsa_T1" / "separation.png").read_bytes()[:8] == PNG_MAGIC
    assert "Whole-picture separation" in (tmp_path / "run" / "report.md").read_text()
    model = load_model(tmp_path / "run" / "models" / "lsalsa_T1.model")
    assert model.patch_size == 32 and model.input_scale == 2.0 and model.names == ("digits", "photo")
    # the sparsity/accuracy clouds of each source's codes apart (Fig. 6: ASIRRA's, Fig. 20: MNIST's)
    z = np.load(tmp_path / "run" / "results" / "lsalsa_T1.npz")
    assert z["sparsity_1"].shape == z["sparsity_2"].shape == z["sparsity"].shape
    assert np.allclose((z["sparsity_1"] + z["sparsity_2"]) / 2, z["sparsity"])  # equal blocks: the mean
    assert np.allclose((z["rmse_1"] ** 2 + z["rmse_2"] ** 2) / 2, z["rmse"] ** 2, rtol=1e-5)
    for i, name in ((1, "mnist"), (2, "natural")):
        assert (tmp_path / "run" / "figures" / f"sparsity_vs_error_{i}.png").read_bytes()[:8] == PNG_MAGIC
        assert f"Per-sample sparsity vs code error of source {i} ({name}) codes" in md


def test_timing_excludes_metrics(sc_run, tmp_path, monkeypatch):
    # a metric that takes 0.3 s must not show in the measured inference time
    import time as _time

    import lsalsa.experiments.evaluate as runner
    real = runner.evaluate_codes
    monkeypatch.setattr(runner, "evaluate_codes", lambda *a, **k: (_time.sleep(0.3), real(*a, **k))[1])
    cfg = tmp_path / "t.toml"
    cfg.write_text(TINY_SC.replace('names = ["fista", "salsa", "lista", "lsalsa"]', 'names = ["fista"]')
                   .replace("T = [1, 2]", "T = [1]"))
    rows = run_experiment(load_config(cfg), tmp_path / "run", until="methods")
    assert rows[0]["time_s"] < 0.1
    X, t = time_encode(lambda Y: (_time.sleep(0.05), Y)[1], torch.zeros(3, 2), repeats=3)
    assert 0.04 < t < 0.2


@pytest.mark.parametrize(
    "toml, sets, message",
    [
        ("[data]\nbogus = 1\n", [], "unknown key(s) ['data.bogus']"),
        ("[data]\nn_train = 'many'\n", [], "data.n_train must be an integer"),
        ("[dictionary]\nalphas = [-0.1]\n", [], "dictionary.alphas must be > 0"),
        ("[methods]\nnames = ['lars']\n", [], "methods.names must be a list from"),
        ("[data\n", [], "invalid TOML"),
        ("", ["train.epochs"], "--set: expected key=value"),
        ("", ["train.optimizer=rmsprop"], "train.optimizer must be 'sgd' or 'adam'"),
        ("", ["methods.T=[0]"], "methods.T must be a list of integers >= 1"),
    ],
)
def test_bad_configs_give_one_line_and_exit_2(tmp_path, capsys, toml, sets, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    argv = ["run", str(cfg), "--out", str(tmp_path / "run")] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lsalsa: error: config") or err.startswith("lsalsa: error: --set")
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_paths_give_one_line_and_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("lsalsa: error:") for line in err)


def test_run_dir_of_another_config_is_refused(sc_run, capsys):
    assert main(["run", "demo", "--out", str(sc_run)]) == 2
    assert "different configuration" in capsys.readouterr().err


def test_shipped_configs_load():
    names = shipped_configs()
    assert {"demo", "demo_mca", "mnist_sc", "fashion_sc", "natural_sc", "mnist_natural_mca"} <= set(names)
    for name in names:
        c = load_config(name)
        assert c.name == name
    mca = load_config("mnist_natural_mca", ["data.scale=0.25"])
    assert mca.dictionary.n_atoms == [1024, 1024] and mca.methods.mu == 10.0 and mca.codes.mu == 1.0 and mca.scaled(mca.data.n_train) == 5000
    # at 0.1, 500 dictionary signals cannot seed 1024 atoms: refused on load, not at the dictionary step
    with pytest.raises(LsalsaError, match="data.n_dict must be at least dictionary.n_atoms = 1024"):
        load_config("mnist_natural_mca", ["data.scale=0.1"])


def test_report_and_analyze_say_what_lsalsa_learned(sc_run, tmp_path, capsys):
    """Section 5 on the run's trained encoders: the report's section, results/analysis.json, two
    figures, and ``lsalsa analyze`` on the run directory or one model file."""
    md = (sc_run / "report.md").read_text()
    assert "## What LSALSA learned (Section 5)" in md and "| beta_hat/beta |" in md.replace(" | ", " | ")
    results = json.loads((sc_run / "results" / "analysis.json").read_text())
    assert sorted(results) == ["1", "2"]
    for T, r in results.items():
        th = r["theorem1"]
        assert len(th["x"]) == len(th["u"]) == int(T)
        # the u- and d-updates are ADMM's and the x-update solves its system, to float64 rounding
        assert max(th["u"] + th["d"] + th["x_field"] + [th["readout_error"]]) < 1e-10
        assert len(r["descent"]["rmse_plain"]) == 21 and r["norm_ratio"][0] > 0
    for name in ("learned_curvature.png", "learned_descent.png"):
        assert (sc_run / "figures" / name).read_bytes()[:8] == PNG_MAGIC
    capsys.readouterr()
    assert main(["analyze", str(sc_run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "beta_hat/beta" in out[-3] and [line.split()[0] for line in out[-2:]] == ["1", "2"]
    assert main(["analyze", str(sc_run / "models" / "lsalsa_T2.pt")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[0] == "2"
    assert main(["analyze", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("load, said", [(0.4, False), (3.5, True)])
def test_report_says_when_the_load_was_high_while_timing(small, load, said):
    """Each row records the load per core after its method was timed; above 1 the time table says
    that other work shared the cores."""
    from lsalsa.experiments.report import _sections

    rows = [{"method": "fista", "T": 1, "time_s": 0.01, "rmse": 0.1, "sparsity": 0.5, "load": 0.2},
            {"method": "lsalsa", "T": 1, "time_s": 0.002, "rmse": 0.05, "sparsity": 0.6, "load": load}]
    text = {title: body for title, body, _ in _sections(load_config("demo"), small, rows, 10, None)}
    assert ("LOAD WAS HIGH" in text["Inference time [s] (median, whole test set)"]) == said
    assert ("3.5 per core" in text["Inference time [s] (median, whole test set)"]) == said


def test_rows_record_the_load_while_timing(sc_run):
    rows = list(csv.DictReader(open(sc_run / "results.csv")))
    assert all(0 <= float(r["load"]) < 1000 for r in rows)


def test_run_rows_carry_the_interleaved_timing(sc_run):
    rows = list(csv.DictReader(open(sc_run / "results.csv")))
    timing = json.loads((sc_run / "results" / "timing.json").read_text())
    assert timing["rounds"] == 2 and len(timing["rows"]) == len(rows)
    for r in rows:
        entry = timing["rows"][f"{r['method']}_T{r['T']}"]
        assert len(entry["times"]) == 2 and r["timed"] == "interleaved"
        assert float(r["time_min"]) <= float(r["time_s"]) <= float(r["time_max"])
        assert float(r["time_s"]) == pytest.approx(entry["time_s"])
        if r["method"] != "lsalsa":  # paired with LSALSA at the same T, round by round
            lsalsa = timing["rows"][f"lsalsa_T{r['T']}"]["times"]
            ratios = sorted(t / ref for t, ref in zip(entry["times"], lsalsa))
            assert float(r["ratio_min"]) == pytest.approx(ratios[0]) and float(r["ratio_max"]) == pytest.approx(ratios[-1])
    acc = json.loads((sc_run / "results" / "acceleration.json").read_text())
    for name in ("fista", "salsa"):
        if acc[name]["iterations"]:
            assert len(acc[name]["times"]) == 2 and acc[name]["ratio_min"] <= acc[name]["time_ratio"] <= acc[name]["ratio_max"]
    md = (sc_run / "report.md").read_text()
    assert "## Inference time [s] (median of 2 interleaved rounds, whole test set)" in md
    assert "## Inference time relative to LSALSA at the same T" in md and "T (ratio: min - max)" in md
    assert "paired per round" in md


def test_timing_is_cached_until_the_rows_change(sc_run, tmp_path, monkeypatch):
    import shutil

    import lsalsa.experiments.timing as timing

    run = tmp_path / "run"
    shutil.copytree(sc_run, run)
    config = load_config(sc_run.parent / "tiny_sc.toml")
    calls = []
    real = timing.interleaved
    monkeypatch.setattr(timing, "interleaved", lambda *a, **k: calls.append(1) or real(*a, **k))
    run_experiment(config, run, until="methods")
    assert calls == []
    (run / "results" / "fista_T2.json").unlink()  # a row recomputed: every row is timed again
    rows = run_experiment(config, run, until="methods")
    assert calls == [1] and all(r["timed"] == "interleaved" for r in rows)


def test_acceleration_takes_salsa_at_its_best_mu_for_the_target(sc_run):
    acc = json.loads((sc_run / "results" / "acceleration.json").read_text())
    by_mu = acc["salsa"]["iterations_by_mu"]
    assert set(by_mu) == {"1", "3"}  # search.mu (the searched mu at T = 1 among them)
    reached = {mu: k for mu, k in by_mu.items() if k is not None}
    assert acc["salsa"]["iterations"] == min(reached.values())
    assert f"{acc['salsa']['mu']:g}" == min(reached, key=reached.__getitem__)


def test_report_reuses_the_analysis_until_a_model_changes(sc_run, tmp_path, monkeypatch):
    import os
    import shutil
    import time

    import lsalsa.experiments.learned as learned

    run = tmp_path / "run"
    shutil.copytree(sc_run, run)
    calls = []
    real = learned.analyze_models
    monkeypatch.setattr(learned, "analyze_models", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(["report", str(run)]) == 0
    assert calls == [] and "What LSALSA learned" in (run / "report.md").read_text()
    model = run / "models" / "lsalsa_T2.pt"
    os.utime(model, (time.time() + 60,) * 2)  # a model newer than the analysis
    assert main(["report", str(run)]) == 0
    assert calls == [1]
