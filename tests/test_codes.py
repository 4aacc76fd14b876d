"""Optimal codes for a data set: batched, KKT-optimal, cached on disk and reused."""
import json

import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LassoProblem, LsalsaError
from lsalsa import codes as codes_module


@pytest.fixture(scope="module")
def problem(digit_atoms):
    return LassoProblem(digit_atoms, alphas=0.15)


@pytest.fixture(scope="module")
def Y(digits):
    return np.ascontiguousarray(digits[:120])  # (120, 64) float64 real digits


# SALSA converges in hundreds of iterations where FISTA needs ~10^4 on these coherent atoms
TIGHT = {"solver": "salsa", "mu": 1.0, "tol": 1e-10, "max_iter": 50_000}


def test_codes_satisfy_kkt_in_batches(problem, Y):
    X = lsalsa.optimal_codes(problem, Y, batch_size=50, **TIGHT)
    assert isinstance(X, np.ndarray) and X.shape == (120, 48) and X.dtype == np.float64
    assert float(problem.kkt_violation(torch.from_numpy(X), torch.from_numpy(Y)).max()) < 1e-7
    assert (X == 0).mean() > 0.3


def test_fista_codes_satisfy_kkt(problem, Y):
    X = lsalsa.optimal_codes(problem, Y[:20], solver="fista", tol=1e-10, max_iter=50_000, batch_size=10)
    assert float(problem.kkt_violation(torch.from_numpy(X), torch.from_numpy(Y[:20])).max()) < 1e-7


def test_salsa_mca_codes(digit_atoms, dct_atoms, Y):
    mca = LassoProblem.from_dictionaries([digit_atoms, dct_atoms], alphas=[0.1, 0.25])
    X = lsalsa.optimal_codes(mca, torch.from_numpy(Y[:60]), batch_size=30, **(TIGHT | {"mu": 2.0}))
    assert float(mca.kkt_violation(torch.from_numpy(X), torch.from_numpy(Y[:60])).max()) < 1e-7


def test_cache_is_written_and_reused(problem, Y, tmp_path, monkeypatch):
    X = lsalsa.optimal_codes(problem, Y, cache_dir=tmp_path, dataset_name="digits/train", batch_size=100, **TIGHT)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].startswith("digits_train-") and files[0].endswith(".json")
    assert isinstance(X, np.memmap) and not X.flags.writeable
    meta = json.loads((tmp_path / files[0]).read_text())
    assert meta["dataset_name"] == "digits/train" and meta["n"] == 120 and meta["dtype"] == "float64"
    assert meta["solver"] == "salsa" and meta["mu"] == 1.0 and meta["alphas"] == [0.15] and meta["tol"] == 1e-10
    assert meta["max_kkt_violation"] < 1e-7 and meta["all_converged"]
    assert len(meta["dictionary_sha256"]) == len(meta["Y_sha256"]) == 64

    def must_not_solve(*args, **kwargs):
        raise AssertionError("the cached codes should have been reused")

    monkeypatch.setattr(codes_module, "_solve_batch", must_not_solve)
    again = lsalsa.optimal_codes(problem, Y.copy(), cache_dir=tmp_path, dataset_name="digits/train",
                                 batch_size=7, **TIGHT)  # same data, another batch size: still a hit
    np.testing.assert_array_equal(again, X)
    # any change of the inputs is a miss
    for changed in ({"problem": problem.with_alphas(0.2)}, {"Y": Y[::-1].copy()}, {"tol": 1e-9}, {"mu": 2.0}):
        kwargs = {"problem": problem, "Y": Y, **TIGHT, **changed}
        with pytest.raises(AssertionError, match="reused"):
            lsalsa.optimal_codes(cache_dir=tmp_path, dataset_name="digits/train", **kwargs)


def test_memmap_input_matches_in_memory(problem, Y, tmp_path):
    Ymm = np.lib.format.open_memmap(tmp_path / "Y.npy", mode="w+", dtype=np.float64, shape=Y.shape)
    Ymm[:] = Y
    Ymm.flush()
    Ymm = np.load(tmp_path / "Y.npy", mmap_mode="r")
    cached = lsalsa.optimal_codes(problem, Ymm, batch_size=37, cache_dir=tmp_path / "cache", **TIGHT)
    in_memory = lsalsa.optimal_codes(problem, torch.from_numpy(Y), batch_size=37, **TIGHT)
    np.testing.assert_array_equal(cached, in_memory)


def test_interrupted_run_resumes_its_finished_batches(problem, Y, tmp_path, monkeypatch):
    whole = lsalsa.optimal_codes(problem, Y, batch_size=20, **TIGHT)
    calls = []
    real = codes_module._solve_batch

    def fail_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(codes_module, "_solve_batch", fail_third)
    with pytest.raises(KeyboardInterrupt):
        lsalsa.optimal_codes(problem, Y, batch_size=20, cache_dir=tmp_path, dataset_name="d", **TIGHT)
    assert not list(tmp_path.glob("d-*.json"))  # no finished entry
    (partial,) = tmp_path.glob("d-*.partial")
    assert len(list((partial / "batches").glob("*.json"))) == 2
    calls.clear()
    monkeypatch.setattr(codes_module, "_solve_batch", lambda *a: calls.append(1) or real(*a))
    X = lsalsa.optimal_codes(problem, Y, batch_size=20, cache_dir=tmp_path, dataset_name="d", **TIGHT)
    assert len(calls) == 4  # the 6 batches less the 2 finished ones
    np.testing.assert_array_equal(X, whole)
    assert not partial.exists() and isinstance(X, np.memmap)
    meta = json.loads(next(tmp_path.glob("d-*.json")).read_text())
    assert meta["batches_resumed"] == 2 and meta["all_converged"] and meta["mu_used"] == 1.0


def test_a_damaged_or_mismatched_partial_entry_is_recomputed(problem, Y, tmp_path, monkeypatch):
    real = codes_module._solve_batch
    calls = []

    def stop_after_three(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args)

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(codes_module, "_solve_batch", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        lsalsa.optimal_codes(problem, Y, batch_size=20, cache_dir=tmp_path, **TIGHT)
    (partial,) = tmp_path.glob("*.partial")
    codes = np.load(partial / "codes.npy", mmap_mode="r+")
    codes[25] = 7.0  # a row of the second finished batch damaged in place
    codes.flush()
    del codes
    (partial / "batches" / "00000002.json").write_text("{not json")  # a torn marker
    calls.clear()
    monkeypatch.setattr(codes_module, "_solve_batch", counted)
    X = lsalsa.optimal_codes(problem, Y, batch_size=20, cache_dir=tmp_path, **TIGHT)
    assert len(calls) == 5  # only the first batch was reused
    np.testing.assert_array_equal(X, lsalsa.optimal_codes(problem, Y, batch_size=20, **TIGHT))

    # an unfinished entry of another batch size is started again, not mixed in
    other = tmp_path / "other"
    calls.clear()
    monkeypatch.setattr(codes_module, "_solve_batch", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        lsalsa.optimal_codes(problem, Y, batch_size=20, cache_dir=other, **TIGHT)
    calls.clear()
    monkeypatch.setattr(codes_module, "_solve_batch", counted)
    lsalsa.optimal_codes(problem, Y, batch_size=30, cache_dir=other, **TIGHT)
    assert len(calls) == 4 and not list(other.glob("*.partial"))


def test_bad_input(problem, Y):
    with pytest.raises(LsalsaError, match="dtype"):
        lsalsa.optimal_codes(problem, Y.astype(np.float32))
    with pytest.raises(LsalsaError, match="shape"):
        lsalsa.optimal_codes(problem, Y[:, :10])
    with pytest.raises(LsalsaError, match="solver"):
        lsalsa.optimal_codes(problem, Y, solver="lars")
    with pytest.raises(LsalsaError, match="problem"):
        lsalsa.optimal_codes(problem.A, Y)
    with pytest.raises(LsalsaError, match="Y"):
        lsalsa.optimal_codes(problem, Y.tolist())
    with pytest.raises(LsalsaError, match="batch_size"):
        lsalsa.optimal_codes(problem, Y, batch_size=0)
    bad = Y.copy()
    bad[3, 3] = np.nan
    with pytest.raises(LsalsaError, match="finite"):
        lsalsa.optimal_codes(problem, bad)


def test_auto_mu_is_chosen_once_recorded_and_keyed_as_asked(problem, Y, tmp_path, monkeypatch):
    calls = []
    real = codes_module.auto_mu
    monkeypatch.setattr(codes_module, "auto_mu", lambda p, Ys: calls.append(Ys.shape) or real(p, Ys))
    kw = {"solver": "salsa", "tol": 1e-10, "max_iter": 50_000, "batch_size": 40}
    X = lsalsa.optimal_codes(problem, Y, cache_dir=tmp_path, dataset_name="d", **kw)
    assert calls == [(32, 64)]  # one trial for all three batches, on rows spread over Y
    assert float(problem.kkt_violation(torch.from_numpy(np.array(X)), torch.from_numpy(Y)).max()) < 1e-7
    meta = json.loads(next(tmp_path.glob("d-*.json")).read_text())
    assert meta["mu"] == "auto" and meta["relaxation"] == 1.8
    assert meta["mu_used"] == pytest.approx(lsalsa.solvers.auto_mu(problem, torch.from_numpy(Y[np.linspace(0, 119, 32).round().astype(int)])))
    # asking again the same way ("auto" or None) reuses the file
    assert lsalsa.optimal_codes(problem, Y, cache_dir=tmp_path, dataset_name="d", mu=None, **kw) is not None
    assert len(calls) == 1 and len(list(tmp_path.glob("d-*.npy"))) == 1


def test_salsa_polish_is_passed_recorded_and_keyed(problem, Y, tmp_path):
    kw = {"solver": "salsa", "mu": 0.5, "tol": 1e-8, "batch_size": 50, "cache_dir": tmp_path, "dataset_name": "p"}
    exact = np.array(lsalsa.optimal_codes(problem, Y, **kw))  # N = 48 on a CPU: polished by default
    plain = np.array(lsalsa.optimal_codes(problem, Y, polish=False, **kw))
    metas = sorted((json.loads(f.read_text()) for f in tmp_path.glob("p-*.json")), key=lambda m: m["polish"])
    assert [m["polish"] for m in metas] == [False, True] and metas[0]["key"] != metas[1]["key"]
    kkt = problem.kkt_violation(torch.from_numpy(exact), torch.from_numpy(Y))
    assert float(kkt.max()) < 1e-12 < float(problem.kkt_violation(torch.from_numpy(plain), torch.from_numpy(Y)).max())
    with pytest.raises(LsalsaError, match="polish"):
        lsalsa.optimal_codes(problem, Y, solver="salsa", polish="yes")


KILLED_SCRIPT = """
import os, sys
import numpy as np
import lsalsa
import lsalsa.code_cache
from lsalsa import codes as codes_module
real, calls = codes_module._solve_batch, []
def die_on_fourth(*args):
    calls.append(1)
    if len(calls) == 4:
        os._exit(9)  # as kill -9: no handler, no clean-up runs
    return real(*args)
codes_module._solve_batch = die_on_fourth
lsalsa.code_cache.CHECKPOINT_S = float(sys.argv[3])
d = np.load(sys.argv[1])
problem = lsalsa.LassoProblem(d["A"], alphas=0.15)
lsalsa.optimal_codes(problem, d["Y"], batch_size=20, cache_dir=sys.argv[2], solver="salsa", mu=1.0, tol=1e-10,
                     max_iter=50_000)
"""


@pytest.mark.parametrize("every, kept", [(0.0, 3), (3600.0, 0)])
def test_a_killed_process_resumes_from_its_last_checkpoint(problem, Y, digit_atoms, tmp_path, monkeypatch, every,
                                                           kept):
    # every 0 s: a checkpoint after each batch; every hour: none before the kill, so all is redone
    import subprocess
    import sys

    np.savez(tmp_path / "in.npz", A=digit_atoms, Y=Y)
    proc = subprocess.run([sys.executable, "-c", KILLED_SCRIPT, str(tmp_path / "in.npz"), str(tmp_path / "c"),
                           str(every)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    (partial,) = (tmp_path / "c").glob("*.partial")
    assert len(list((partial / "batches").glob("*.json"))) == kept
    calls = []
    real = codes_module._solve_batch
    monkeypatch.setattr(codes_module, "_solve_batch", lambda *a: calls.append(1) or real(*a))
    X = lsalsa.optimal_codes(problem, Y, batch_size=20, cache_dir=tmp_path / "c", **TIGHT)
    assert len(calls) == 6 - kept
    np.testing.assert_array_equal(X, lsalsa.optimal_codes(problem, Y, batch_size=20, **TIGHT))
