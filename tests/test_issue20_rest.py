"""Issue 20, the remaining pieces: temporaries of older versions swept (item 8), FISTA and ISTA
stop only on certified codes (item 2), the CLI's one-line warnings (item 2's display)."""
import os
import shutil
import subprocess
import sys
import warnings

import pytest

import lsalsa
from _tiny import TINY, run, tiny  # noqa: F401  (the fixtures)
from lsalsa.cli import main
from lsalsa.errors import LsalsaConvergenceWarning
from lsalsa.files import remove_temporaries
from lsalsa.kkt import certify
from lsalsa.solvers._common import row_change

pytestmark = pytest.mark.usefixtures("one_thread")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- item 8: temporaries of killed processes, in today's names and in older versions' ------
def test_older_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead, me = _dead_pid(), os.getpid()
    (tmp_path / "codes").mkdir()
    stale = [tmp_path / "codes" / f"mnist-0123.npy.{dead}.tmp",   # the code cache's memmap, before atomic_write
             tmp_path / "codes" / f"mnist-0123.json.{dead}.tmp",
             tmp_path / "models" / f".lista_T1.pt.{dead}.tmp",       # an encoder file's
             tmp_path / "data.npz.tmp.npz",                          # the runner's, no pid: held by no one
             tmp_path / "results" / "fista_T1.json.tmp",
             tmp_path / f".config.{dead}-0123abcd.tmp.json"]         # today's atomic_write
    live = [tmp_path / "codes" / f"mnist-4567.npy.{me}.tmp",         # a live process's, with its pid
            tmp_path / "dictionary.npz.tmp.npz",                     # no pid, but held open by a live process
            tmp_path / f".report.{me}-00000000.tmp.md"]
    others = [tmp_path / "data.npz", tmp_path / "notes.tmp", tmp_path / "codes" / "mnist-0123.npy",
              tmp_path / "x.99999999999999999999.tmp"]               # not a pid: not ours
    for p in stale + live + others:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half")
    with open(tmp_path / "dictionary.npz.tmp.npz", "ab"):
        removed = remove_temporaries(tmp_path, recursive=True)
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in live + others)
    # without recursion only the directory's own files; the held one is now closed: removed
    assert remove_temporaries(tmp_path) == [tmp_path / "dictionary.npz.tmp.npz"]
    assert remove_temporaries(tmp_path / "codes") == []  # the live pid's memmap stays


# ---- item 2: FISTA and ISTA stop on a small change only with certified codes -----------------
@pytest.mark.parametrize("method, scale", [("ista", 1.0), ("fista", 100.0)])
def test_fista_and_ista_stop_only_on_certified_codes(method, scale, single, Y64):
    """At tol 1e-3 the relative change of the codes of digits (x 100 for FISTA) falls below tol
    hundreds of iterations before the codes pass the KKT test: the old rule stopped there (at
    k_rule) with codes that are not optimal; now the rows run on until all are certified, or to
    max_iter with a warning."""
    tol, seen, Y64 = 1e-3, [], Y64 * scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = lsalsa.solve(single, Y64, method=method, tol=tol, max_iter=20_000,
                           callback=lambda k, X: seen.append(X) and False)
    assert res.converged and bool(certify(single.A, Y64, res.X, single.thresholds, tol)["ok"].all())
    k_rule = next(k for k in range(10, len(seen) + 1, 10)  # the first check where the old rule held
                  if float(row_change(seen[k - 1], seen[k - 2]).max()) < tol)
    assert not bool(certify(single.A, Y64, seen[k_rule - 1], single.thresholds, tol)["ok"].all())
    assert res.n_iter > k_rule + 10
    with pytest.warns(LsalsaConvergenceWarning, match=rf"^{method} \(max_iter={k_rule + 10}, tol=0.001\): "):
        short = lsalsa.solve(single, Y64, method=method, tol=tol, max_iter=k_rule + 10)
    assert short.n_iter == k_rule + 10 and not short.converged


# ---- item 2's display: the CLI shows lsalsa's warnings in one line -----------------------------
def test_the_cli_shows_a_convergence_warning_in_one_line(run, tmp_path, capsys):
    _, run_dir = run
    shutil.rmtree(run_dir / "codes")
    (run_dir / "config.json").unlink()  # other codes settings than the tiny run's: FISTA, 2 iterations
    cfg = tmp_path / "tiny_fista.toml"
    cfg.write_text(TINY.replace('solver = "salsa"\nmu = 1.0\n', 'solver = "fista"\n'))
    sets = ["--set", "codes.max_iter=2", "--set", "codes.tol=1e-12", "--set", "codes.allow_unconverged=true"]
    shown = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["codes", str(cfg), "--out", str(run_dir)] + sets) == 0
    assert warnings.showwarning is shown  # the library's display, untouched after main returns
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines  # one line per split (train, test), no source line under it
    for line, n in zip(lines, (200, 32)):
        assert line.startswith("lsalsa: warning: optimal codes (fista, max_iter=2, tol=1e-12): ") and \
            f" of {n} rows did not converge: " in line and line.endswith("; raise max_iter or lower tol"), line
