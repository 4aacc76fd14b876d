"""Codes, encoding and separation on a Dask cluster (lsalsa.distributed): equal to the in-process
results, robust to a killed worker, resumable, and one-line errors for bad input.

One ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` serves the module."""
import json
import os
import shutil
import threading
import time
import warnings

import dask.array as da
import numpy as np
import pytest
import torch
import zarr
from distributed import Client, LocalCluster
from PIL import Image

import lsalsa
from lsalsa import LassoProblem, LsalsaConvergenceWarning, LsalsaError
from lsalsa import codes as codes_module
from lsalsa import distributed as ld
from lsalsa.bundle import SeparationModel
from lsalsa.cli import main
from lsalsa.distributed import _session
from lsalsa.distributed._chunks import MARKERS
from lsalsa.separation import save_separation, separate_image

from _tiny import TINY, one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")
SALSA = {"solver": "salsa", "mu": "auto", "tol": 1e-10, "max_iter": 50_000, "batch_size": 20}
UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(scope="module")
def client():
    # preload: a worker (re)started by its nanny imports lsalsa before it takes tasks
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      preload=["lsalsa"]) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def problem(digit_atoms):
    return LassoProblem(digit_atoms, alphas=0.15)


@pytest.fixture(scope="module")
def Y(digits):
    return np.ascontiguousarray(digits[:200])  # (200, 64) float64 real digits


@pytest.fixture(scope="module")
def reference(problem, Y):
    return lsalsa.optimal_codes(problem, Y, **SALSA)


def markers(out) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in (out / MARKERS).glob("[0-9]*.json")}


@pytest.mark.parametrize("kind", ["numpy", "npy", "zarr", "dask"])
def test_codes_equal_in_process_row_for_row(client, problem, Y, reference, tmp_path, kind):
    if kind == "npy":
        np.save(tmp_path / "Y.npy", Y)
        Y_in = tmp_path / "Y.npy"
    elif kind == "zarr":
        Y_in = zarr.create_array(store=str(tmp_path / "Y.zarr"), shape=Y.shape, chunks=(30, 64), dtype=Y.dtype)
        Y_in[:] = Y
    else:
        Y_in = da.from_array(Y, chunks=(70, 64)) if kind == "dask" else Y
    X = ld.optimal_codes(problem, Y_in, client=client, chunk_rows=40, **SALSA)
    assert isinstance(X, np.ndarray) and X.shape == (200, 48) and X.dtype == np.float64
    np.testing.assert_allclose(X, reference, rtol=0, atol=1e-12)


def test_zarr_output_and_fista(client, problem, Y, tmp_path):
    opts = {"solver": "fista", "tol": 1e-6, "max_iter": 3000, "batch_size": 25}
    ref = lsalsa.optimal_codes(problem, Y[:100], **opts)
    Z = ld.optimal_codes(problem, Y[:100], client=client, chunk_rows=50, out=tmp_path / "X.zarr", **opts)
    assert isinstance(Z, zarr.Array) and Z.shape == (100, 48) and Z.chunks == (50, 48)
    np.testing.assert_allclose(Z[:], ref, rtol=0, atol=1e-12)
    assert sorted(markers(tmp_path / "X.zarr")) == [0, 1]
    facts = Z.attrs["lsalsa"]["facts"]
    assert facts["all_converged"] and facts["n_chunks"] == 2 and facts["chunks_computed"] == 2


def test_unconverged_codes_warn_once_as_in_process(client, problem, Y):
    opts = {"solver": "fista", "max_iter": 5, "batch_size": 25}
    with pytest.warns(LsalsaConvergenceWarning) as here:
        lsalsa.optimal_codes(problem, Y[:100], **opts)
    with pytest.warns(LsalsaConvergenceWarning) as there:
        ld.optimal_codes(problem, Y[:100], client=client, chunk_rows=50, **opts)
    assert len(there) == 1 and str(there[0].message) == str(here[0].message)
    assert "100 of 100 rows did not converge" in str(there[0].message)


def test_rerun_computes_only_the_missing_chunks(client, problem, Y, reference, tmp_path):
    out = tmp_path / "X.zarr"
    np.save(tmp_path / "Y.npy", Y)
    ld.optimal_codes(problem, tmp_path / "Y.npy", client=client, chunk_rows=40, out=out, **SALSA)
    first = markers(out)
    assert len(first) == 5
    for i in (1, 3):  # interrupted before these two chunks were marked done; their rows are garbage
        (out / MARKERS / f"{i:08d}.json").unlink()
        zarr.open_array(str(out), mode="r+")[40 * i:40 * i + 40] = -1.0
    Z, facts = ld._codes.codes_job(problem, tmp_path / "Y.npy", client=client, chunk_rows=40, out=out, **SALSA)
    assert facts["chunks_computed"] == 2
    again = markers(out)
    assert {i for i in again if again[i]["run"] != first[0]["run"]} == {1, 3}
    np.testing.assert_allclose(Z[:], reference, rtol=0, atol=1e-12)
    # a chunk whose input rows changed is computed again; the finished ones are not
    Y2 = Y.copy()
    Y2[130] = Y[0]
    np.save(tmp_path / "Y.npy", Y2)
    _, facts = ld._codes.codes_job(problem, tmp_path / "Y.npy", client=client, chunk_rows=40, out=out, **SALSA)
    assert facts["chunks_computed"] == 1 and markers(out)[3]["Y_sha256"] != again[3]["Y_sha256"]


def _idle(client) -> bool:
    return sum(client.run(lambda dask_worker: len(dask_worker.state.executing)).values()) == 0


def test_rerun_after_a_failed_job(client, problem, Y, reference, tmp_path):
    out, path = tmp_path / "X.zarr", tmp_path / "Y.npy"
    bad = Y.copy()
    bad[170] = np.nan  # chunk 8 of 10 fails on its worker: the job stops there
    np.save(path, bad)
    with pytest.raises(LsalsaError, match="finite"):
        ld.optimal_codes(problem, path, client=client, chunk_rows=20, out=out, **SALSA)
    deadline = time.monotonic() + 30
    while not _idle(client) and time.monotonic() < deadline:  # tasks already running finish
        time.sleep(0.05)
    written = len(markers(out))
    assert 1 <= written < 10
    np.save(path, Y)
    Z, facts = ld._codes.codes_job(problem, path, client=client, chunk_rows=20, out=out, **SALSA)
    assert facts["chunks_computed"] == 10 - written
    np.testing.assert_allclose(Z[:], reference, rtol=0, atol=1e-12)


def test_codes_cached_on_dask_are_the_in_process_cache_entry(client, problem, Y, tmp_path, monkeypatch):
    X = ld.cached_codes(problem, Y, client=client, chunk_rows=40, cache_dir=tmp_path, dataset_name="d",
                        solver="salsa", mu="auto", tol=1e-10, max_iter=50_000)
    assert isinstance(X, np.memmap) and not list(tmp_path.glob("*.zarr"))

    def must_not_solve(*args, **kwargs):
        raise AssertionError("the Dask entry should have been reused")

    monkeypatch.setattr(codes_module, "_solve_batch", must_not_solve)
    again = lsalsa.optimal_codes(problem, Y, cache_dir=tmp_path, dataset_name="d", solver="salsa", mu="auto",
                                 tol=1e-10, max_iter=50_000)
    np.testing.assert_array_equal(again, X)
    meta = json.loads(next(tmp_path.glob("d-*.json")).read_text())
    assert meta["all_converged"] and meta["mu"] == "auto" and meta["mu_used"] > 0 and "codes_sha256" in meta


def test_cli_codes_on_a_dask_scheduler_write_the_runs_cache(client, tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    assert main(["codes", str(cfg), "--out", str(tmp_path / "dask"), "--scheduler", client.scheduler.address,
                 "--chunk-rows", "64"]) == 0
    assert "on a Dask cluster at tcp://" in capsys.readouterr().out
    (tmp_path / "local").mkdir()
    for name in ("config.json", "data.npz", "dictionary.npz"):  # the same signals and dictionary, codes in process
        shutil.copy(tmp_path / "dask" / name, tmp_path / "local" / name)
    assert main(["codes", str(cfg), "--out", str(tmp_path / "local")]) == 0
    for split in ("train", "test"):
        (dask_npy,), (local_npy,) = (sorted((tmp_path / d / "codes").glob(f"tiny-{split}-*.npy"))
                                     for d in ("dask", "local"))
        assert dask_npy.name == local_npy.name  # the same key
        np.testing.assert_allclose(np.load(dask_npy), np.load(local_npy), rtol=0, atol=1e-12)


def test_use_cluster_starts_and_closes_a_local_cluster():
    with ld.use_cluster(workers=1, chunk_rows=8) as cluster:
        assert ld.active_cluster() is cluster and cluster.chunk_rows == 8
        assert len(cluster.client.scheduler_info()["workers"]) == 1
    assert ld.active_cluster() is None and cluster.client.status == "closed"


def test_encode_equals_the_encoder_in_process(client, problem, Y, tmp_path):
    model = lsalsa.LSALSA.from_problem(problem, 3, mu=1.0)
    want = model.encode(torch.from_numpy(Y)).numpy()
    np.testing.assert_allclose(ld.encode(model, Y, client=client, chunk_rows=64), want, rtol=0, atol=1e-12)
    Z = ld.encode(model, da.from_array(Y, chunks=50), client=client, chunk_rows=64, out=tmp_path / "E.zarr")
    np.testing.assert_allclose(Z[:], want, rtol=0, atol=1e-12)
    with pytest.raises(LsalsaError, match="model: expected a trained encoder"):
        ld.encode(problem, Y, client=client, chunk_rows=64)


def test_separate_images_as_in_process_and_resumed(client, mca, digits, tmp_path):
    model = SeparationModel(mca, "lsalsa", 8, names=("digits", "dct"), encoder=lsalsa.LSALSA.from_problem(mca, 3, mu=1.0))
    paths = []
    for k in range(3):
        strip = np.hstack([digits[5 * k + j].reshape(8, 8) for j in range(5)])
        paths.append(tmp_path / f"pic{k}.png")
        Image.fromarray((255 * strip).astype(np.uint8)).save(paths[-1])
    done = ld.separate_images(model, paths, tmp_path / "out", client=client, stride=4)
    assert [r["computed"] for r in done] == [True] * 3
    here = save_separation(separate_image(lsalsa.read_image(paths[1]), model, stride=4), tmp_path / "here",
                           title=f"{paths[1].name}: lsalsa")
    assert (tmp_path / "out" / "pic1" / "source1_digits.png").read_bytes() == here["digits"].read_bytes()
    Image.fromarray(np.zeros((8, 40), np.uint8)).save(paths[2])  # a picture changed since
    again = ld.separate_images(model, paths, tmp_path / "out", client=client, stride=4)
    assert [r["computed"] for r in again] == [False, False, True]
    with pytest.raises(LsalsaError, match="same name"):
        ld.separate_images(model, [paths[0], tmp_path / "out" / ".." / "pic0.png"], tmp_path / "o2", client=client)


# ---- bad input: one-line LsalsaError naming the problem ------------------------------------------
def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


def test_unreachable_scheduler(problem, Y, monkeypatch, capsys):
    monkeypatch.setattr(_session, "CONNECT_TIMEOUT_S", 1.0)
    with pytest.raises(LsalsaError, match=f"cannot reach the Dask scheduler at {UNREACHABLE}") as e:
        ld.optimal_codes(problem, Y, client=UNREACHABLE, chunk_rows=40)
    one_line(e)
    assert main(["codes", "tiny", "--scheduler", UNREACHABLE]) == 2
    assert f"cannot reach the Dask scheduler at {UNREACHABLE}" in one_line_error(capsys)


@pytest.mark.parametrize("existing, message", [
    ({"shape": (100, 48), "dtype": "f8", "chunks": (40, 48)}, r"has shape \(100, 48\) and dtype float64; this job "
                                                               r"writes \(200, 48\) float64"),
    ({"shape": (200, 48), "dtype": "f4", "chunks": (40, 48)}, "dtype float32"),
    ({"shape": (200, 48), "dtype": "f8", "chunks": (50, 48)}, r"is chunked \(50, 48\).*chunk_rows=50"),
])
def test_zarr_store_of_the_wrong_shape_dtype_or_chunks(client, problem, Y, tmp_path, existing, message):
    zarr.create_array(store=str(tmp_path / "X.zarr"), **existing)
    with pytest.raises(LsalsaError, match=message) as e:
        ld.optimal_codes(problem, Y, client=client, chunk_rows=40, out=tmp_path / "X.zarr", **SALSA)
    assert str(tmp_path / "X.zarr") in one_line(e)


def test_zarr_store_of_other_inputs(client, problem, Y, tmp_path):
    ld.optimal_codes(problem, Y[:40], client=client, chunk_rows=40, out=tmp_path / "X.zarr", **SALSA)
    with pytest.raises(LsalsaError, match=r"holds the output of other inputs \(differing: alphas\)") as e:
        ld.optimal_codes(problem.with_alphas(0.2), Y[:40], client=client, chunk_rows=40, out=tmp_path / "X.zarr",
                         **SALSA)
    one_line(e)


@pytest.mark.parametrize("chunk_rows", [0, -3, 2.5, True, "64"])
def test_bad_chunk_rows(client, problem, Y, chunk_rows):
    with pytest.raises(LsalsaError, match="chunk_rows") as e:
        ld.optimal_codes(problem, Y, client=client, chunk_rows=chunk_rows)
    one_line(e)


def test_bad_inputs_and_clients(client, problem, Y, tmp_path, capsys):
    for kwargs, message in [
        ({"Y": Y.astype(np.float32)}, "Y: dtype float32 does not match the model's float64"),
        ({"Y": Y[:, :10]}, r"Y: expected shape \(n, 64\)"),
        ({"Y": tmp_path / "missing.zarr"}, "is neither a .npy file nor a zarr array"),
        ({"Y": Y.tolist()}, "Y: expected a dask array"),
        ({"client": 42}, "client: expected a distributed.Client"),
        ({"solver": "lars"}, "solver"),
    ]:
        args = {"Y": Y, "client": client, "chunk_rows": 40} | kwargs
        with pytest.raises(LsalsaError, match=message) as e:
            ld.optimal_codes(problem, **args)
        one_line(e)
    closed = Client(client.scheduler.address)
    closed.close()
    with pytest.raises(LsalsaError, match="client: the Dask client is closed"):
        ld.optimal_codes(problem, Y, client=closed, chunk_rows=40)
    assert main(["codes", "tiny", "--workers", "0"]) == 2
    assert "--workers: expected an integer >= 1, got 0" in one_line_error(capsys)


# ---- a killed worker (last: it leaves the cluster restarting a worker) ---------------------------
async def _die():  # client.run without waiting for a reply takes a coroutine
    os._exit(1)


def test_a_worker_killed_mid_run_and_every_row_written_once(client, problem, Y, tmp_path):
    opts = SALSA | {"batch_size": 10}
    np.save(tmp_path / "Y.npy", Y)
    out = tmp_path / "X.zarr"
    seen: dict = {}

    def kill_a_busy_worker_after_the_first_chunk():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "killed" not in seen:
            busy = [w for w, keys in client.processing().items() if keys]
            if (out / MARKERS).is_dir() and any((out / MARKERS).glob("[0-9]*.json")) and busy:
                seen["done_before"] = len(markers(out))
                seen["killed"] = busy[0]
                client.run(_die, workers=[busy[0]], wait=False)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker_after_the_first_chunk)
    killer.start()
    try:
        Z, facts = ld._codes.codes_job(problem, tmp_path / "Y.npy", client=client, chunk_rows=10, out=out, **opts)
    finally:
        killer.join()
    assert "killed" in seen and seen["done_before"] < 20 and seen["killed"] not in client.scheduler_info()["workers"]
    np.testing.assert_allclose(Z[:], lsalsa.optimal_codes(problem, Y, **opts), rtol=0, atol=1e-12)
    done = markers(out)
    assert sorted(done) == list(range(20)) and len({d["run"] for d in done.values()}) == 1
    assert sorted(r for d in done.values() for r in range(*d["rows"])) == list(range(200))
    for i in done:  # no chunk's rows were written again after it was marked done
        chunk = out / "c" / str(i) / "0"
        assert chunk.stat().st_mtime_ns <= (out / MARKERS / f"{i:08d}.json").stat().st_mtime_ns
    # the last test of the module: the cluster it leaves has one worker restarting
