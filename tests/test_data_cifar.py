"""The CIFAR-10 reader on batches written here in the real format (Python 2 pickles of dicts
with byte-string keys), and its refusal of unsafe or corrupt pickles."""
import pickle
import struct

import numpy as np
import pytest

import lsalsa
from lsalsa import LsalsaError
from lsalsa.data.cifar import read_batch


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), as cPickle did for the
    real CIFAR-10 files, instead of Python 3's ``_codecs.encode`` call."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_batch(path, data, labels):
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump({b"batch_label": b"training batch 1 of 5", b"labels": list(map(int, labels)),
                                         b"data": data, b"filenames": [b"img_%d.png" % i for i in range(len(data))]})
    # numpy 2 names its reconstructor numpy._core.multiarray; the real files (numpy 1.x, Python 2)
    # name numpy.core.multiarray: write that
    raw = path.read_bytes().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(raw)
    return path


@pytest.fixture
def cifar_dir(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=4)
        write_batch(root / name, data, labels)
        batches[name] = (data, labels)
    return tmp_path, batches


def test_reads_real_format(cifar_dir):
    tmp_path, batches = cifar_dir
    assert b"numpy.core.multiarray" in (tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes()
    images, labels, info = lsalsa.data.load_images("cifar10", "train", data_dir=tmp_path, return_info=True)
    assert images.shape == (20, 32, 32) and images.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)]))
    # grayscale = BT.601 luma of the R, G, B planes (1024 values each, row-major 32x32)
    data = batches["data_batch_1"][0].astype(np.float64)
    r, g, b = (data[:, k * 1024:(k + 1) * 1024].reshape(-1, 32, 32) for k in range(3))
    np.testing.assert_allclose(images[:4], (0.299 * r + 0.587 * g + 0.114 * b) / 255, atol=1e-6)
    test, test_labels = lsalsa.data.load_images("cifar10", "test", data_dir=tmp_path)
    assert test.shape == (4, 32, 32)
    np.testing.assert_array_equal(test_labels, batches["test_batch"][1])
    assert lsalsa.data.load_images("cifar10", data_dir=tmp_path, limit=6)[0].shape == (6, 32, 32)


def test_python3_pickles_too(tmp_path):
    data = np.full((2, 3072), 255, np.uint8)
    for protocol in (2, 5):
        p = tmp_path / f"b{protocol}"
        p.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=protocol))
        out, labels = read_batch(p)
        np.testing.assert_array_equal(out, data)
        np.testing.assert_array_equal(labels, [3, 4])


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned",))


def test_refuses_code_in_pickles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(LsalsaError, match="data_batch_1.*(system|refusing)"):
        read_batch(p)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", pickle.dumps({b"data": 1})[:-5]])
def test_corrupt_pickle(tmp_path, content):
    p = tmp_path / "test_batch"
    p.write_bytes(content)
    with pytest.raises(LsalsaError, match="test_batch"):
        read_batch(p)


@pytest.mark.parametrize("payload,match", [
    ([1, 2, 3], "expected a dict"),
    ({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, "3072"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 integers"),
])
def test_wrong_content(tmp_path, payload, match):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(LsalsaError, match=match):
        read_batch(p)


def test_missing_batches(tmp_path, cifar_dir):
    root, _ = cifar_dir
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(LsalsaError, match="data_batch_3"):
        lsalsa.data.load_images("cifar10", data_dir=root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LsalsaError, match="no CIFAR-10"):
        lsalsa.data.load_images("cifar10", data_dir=empty)
