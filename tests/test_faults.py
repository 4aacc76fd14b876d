"""Damaged run files, full disks, damaged code caches, two runs in one directory (issue 20,
items 7, 8, 9, 15): one line naming the file and what to do, exit code 2, nothing left behind."""
import json
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from _tiny import one_line_error, run, tiny  # noqa: F401  (the fixtures)
from lsalsa.cli import main
from lsalsa.experiments import load_config
from lsalsa.experiments.context import RunContext
from lsalsa.experiments.runner import step_separate
from lsalsa.files import directory_lock, save_npz


def _truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty(p):
    p.write_bytes(b"")


def _flip(p):
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0x10
    p.write_bytes(bytes(b))


def _drop_key(key):
    def drop(p):
        with np.load(p) as f:
            arrays = {k: f[k] for k in f.files if k != key}
        save_npz(p, **arrays)
    return drop


def _text(text):
    return lambda p: p.write_bytes(text)


CASES = [  # (file, damage, command, what the line says)
    ("data.npz", _truncate, "codes", "data.npz: cannot be read"),
    ("data.npz", _empty, "codes", "data.npz: cannot be read (not an .npz archive: empty)"),
    ("data.npz", _flip, "codes", "data.npz: cannot be read"),
    ("data.npz", _drop_key("Y_test"), "codes", "data.npz: lacks the array(s) ['Y_test']"),
    ("dictionary.npz", _truncate, "codes", "dictionary.npz: cannot be read"),
    ("dictionary.npz", _drop_key("A0"), "codes", "dictionary.npz: lacks the array(s) ['A0']"),
    ("results/fista_T1.json", _text(b"{"), "train", "fista_T1.json: cannot be read as JSON"),
    ("results/fista_T1.json", _text(b"\xff\xfe\x00"), "train", "fista_T1.json: cannot be read as JSON"),
    ("results/fista_T1.json", _text(b"[]"), "train", "fista_T1.json: does not hold the result row of fista at T=1"),
    ("results/fista_T1.json", _text(b'{"method": "fista", "T": 1}'), "train", "does not hold the result row"),
    ("results/fista_T1.npz", _truncate, "run", "fista_T1.npz: cannot be read"),
    ("results/fista_T1.npz", _drop_key("rmse"), "run", "fista_T1.npz: lacks the array(s) ['rmse']"),
    ("results/acceleration.json", _text(b'{"reference": 1}'), "run", "acceleration.json: does not hold"),
    ("results/acceleration.json", _empty, "run", "acceleration.json: cannot be read as JSON"),
]


@pytest.mark.parametrize("name, damage, command, says", CASES, ids=[f"{c[0]}-{c[1].__name__}" for c in CASES])
def test_damaged_run_file_is_one_line_naming_it(run, capsys, name, damage, command, says):
    cfg, run_dir = run
    damage(run_dir / name)
    assert main([command, str(cfg), "--out", str(run_dir)]) == 2
    err = one_line_error(capsys)
    assert says in err and err.rstrip().endswith("delete it to recompute the step")


@pytest.mark.parametrize("text, says", [(b"{", "cannot be read as JSON"), (b"[1]", "does not hold a config"),
                                        (b'{"bogus": 1}', "not a config this lsalsa reads")])
def test_damaged_config_json_is_one_line(run, capsys, text, says):
    cfg, run_dir = run
    (run_dir / "config.json").write_bytes(text)
    assert main(["codes", str(cfg), "--out", str(run_dir)]) == 2
    assert "config.json: " + says in one_line_error(capsys)
    assert main(["report", str(run_dir)]) == 2
    assert "config.json: " + says in one_line_error(capsys)


def test_damaged_separation_json_is_one_line(tmp_path):
    config = load_config("demo_mca")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "separation.json").write_text('[{"method": "lsalsa"}]')
    with pytest.raises(ValueError, match=r"separation.json: does not hold separation results; delete it"):
        step_separate(RunContext(config, tmp_path), None, [])


def test_damaged_codes_are_recomputed(run, capsys, caplog):
    # emptied, or zeroed in place with shape and description intact: both recomputed, said so
    cfg, run_dir = run
    train = next((run_dir / "codes").glob("tiny-train-*.npy"))
    test = next((run_dir / "codes").glob("tiny-test-*.npy"))
    before = np.load(train).copy()
    train.write_bytes(b"")
    X = np.load(test, mmap_mode="r+")
    X[:] = 0
    X.flush()
    del X
    with caplog.at_level(logging.WARNING, logger="lsalsa.code_cache"):
        assert main(["codes", str(cfg), "--out", str(run_dir)]) == 0
    assert "tiny-train" in caplog.text and "unreadable" in caplog.text
    assert "tiny-test" in caplog.text and "do not match the checksum" in caplog.text
    assert np.array_equal(np.load(train), before) and np.abs(np.load(test)).sum() > 0


def test_full_disk_before_the_codes_memmap(run, capsys, monkeypatch):
    cfg, run_dir = run
    for p in (run_dir / "codes").iterdir():
        p.unlink()
    import lsalsa.files

    usage = lsalsa.files.shutil.disk_usage(run_dir)
    monkeypatch.setattr(lsalsa.files.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    assert main(["codes", str(cfg), "--out", str(run_dir)]) == 2
    err = one_line_error(capsys)
    assert "tiny-train" in err and "MiB free" in err and "free some space" in err
    assert list((run_dir / "codes").iterdir()) == []


FSIZE_SCRIPT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (8000, 8000))
from lsalsa.cli import main
from lsalsa.files import save_torch
import torch
rc = main(sys.argv[1:])
try:
    save_torch({"t": torch.zeros(10_000)}, sys.argv[-1] + "/models/big.pt")
except OSError as exc:
    print("save_torch:", type(exc).__name__, exc.errno)
sys.exit(rc)
"""


def test_file_size_limit_gives_one_line_and_no_temporaries(run):
    # a real failed write (RLIMIT_FSIZE): the codes memmap (12.9 kB) and a torch file (40 kB)
    cfg, run_dir = run
    for p in (run_dir / "codes").iterdir():
        p.unlink()
    proc = subprocess.run([sys.executable, "-c", FSIZE_SCRIPT, "codes", str(cfg), "--out", str(run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "File too large" in err[0] and "tiny-train" in err[0], proc.stderr
    assert "save_torch: OSError 27" in proc.stdout
    assert [p.name for p in run_dir.rglob(".*") if ".tmp" in p.name] == []


def test_temporaries_of_killed_runs_are_removed(run, capsys):
    cfg, run_dir = run
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = [run_dir / f".data.{dead.pid}-0123abcd.tmp.npz", run_dir / "codes" / f".x.{dead.pid}-deadbeef.tmp.npy"]
    live = run_dir / f".config.{os.getpid()}-00000000.tmp.json"
    for p in left + [live]:
        p.write_bytes(b"half")
    assert main(["codes", str(cfg), "--out", str(run_dir)]) == 0
    assert "removed 2 temporary file(s) left by an interrupted run" in capsys.readouterr().out
    assert not any(p.exists() for p in left) and live.exists()


def test_second_run_into_a_directory_is_refused(run, capsys):
    cfg, run_dir = run
    with directory_lock(run_dir):
        assert main(["codes", str(cfg), "--out", str(run_dir)]) == 2
    err = one_line_error(capsys)
    assert f"in use by another lsalsa process (pid {os.getpid()})" in err


def test_lock_of_a_killed_process_is_free(run, capsys):
    cfg, run_dir = run
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from lsalsa.files import directory_lock\n"
                               "with directory_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(120)",
                               str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["codes", str(cfg), "--out", str(run_dir)]) == 2
        assert f"(pid {holder.pid})" in one_line_error(capsys)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["codes", str(cfg), "--out", str(run_dir)]) == 0
    assert json.loads((run_dir / "config.json").read_text())["name"] == "tiny"
