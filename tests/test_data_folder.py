"""Image folders (ASIRRA layout and class sub-folders) written here as real JPEG/PNG files, and
the natural-photo pool shipped in wheels."""
import numpy as np
import pytest
from PIL import Image

import lsalsa
from lsalsa import LsalsaError
from lsalsa.data.natural import POOL, TEST_IMAGES


def _photo(rng, h, w):
    # smooth colour gradients: JPEG keeps them well, so values can be checked loosely
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0.2, 0.8, size=3)
    img = np.stack([base[k] + 0.2 * np.sin(3 * x + k) * np.cos(2 * y) for k in range(3)], axis=-1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def asirra(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "train"
    root.mkdir()
    for cls in ("cat", "dog"):
        for i in range(5):
            Image.fromarray(_photo(rng, 60 + 7 * i, 80 - 3 * i)).save(root / f"{cls}.{i}.jpg", quality=95)
    return root


def test_asirra_layout(asirra):
    images, labels, info = lsalsa.data.load_images("folder", "all", data_dir=asirra, return_info=True)
    assert images.shape == (10, 224, 224) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert info["class_names"] == ["cat", "dog"]
    assert list(labels) == [0, 1] * 5  # classes interleaved, so prefixes stay balanced
    assert [p.split("/")[-1] for p in info["files"][:4]] == ["cat.0.jpg", "dog.0.jpg", "cat.1.jpg", "dog.1.jpg"]
    # grayscale of the decoded JPEG, resized: the mean brightness is kept
    rgb = np.asarray(Image.open(asirra / "cat.0.jpg").convert("RGB"), dtype=np.float64) / 255
    gray = rgb @ [0.299, 0.587, 0.114]
    assert abs(images[0].mean() - gray.mean()) < 0.01


def test_folder_path_as_name_and_splits(asirra):
    train, train_labels = lsalsa.data.load_images(str(asirra), "train", size=(32, 32))
    test, test_labels = lsalsa.data.load_images(str(asirra), "test", size=(32, 32))
    assert train.shape == (8, 32, 32) and test.shape == (2, 32, 32)  # every 5th image is a test image
    assert sorted(test_labels) == [0, 1]
    whole, _ = lsalsa.data.load_images(str(asirra), "all", size=None)
    assert isinstance(whole, list) and whole[0].shape == (60, 80)


def test_class_subfolders_and_split_folders(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("bird", "ant"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_photo(rng, 40, 50)).save(d / f"{i}.png")
    images, labels, info = lsalsa.data.load_images(tmp_path, "test", return_info=True, size=(16, 16))
    assert images.shape == (4, 16, 16) and info["class_names"] == ["ant", "bird"]
    assert list(labels) == [0, 1, 0, 1]


def test_corrupt_image_is_named(asirra):
    (asirra / "dog.2.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(LsalsaError, match=r"dog\.2\.jpg"):
        lsalsa.data.load_images("folder", "all", data_dir=asirra)


def test_truncated_image_is_named(asirra):
    p = asirra / "cat.3.jpg"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(LsalsaError, match=r"cat\.3\.jpg"):
        lsalsa.data.load_images("folder", "all", data_dir=asirra)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(LsalsaError, match="no images"):
        lsalsa.data.load_images("folder", data_dir=tmp_path)
    with pytest.raises(LsalsaError, match="data_dir"):
        lsalsa.data.load_images("folder", data_dir=tmp_path / "absent")
    with pytest.raises(LsalsaError, match="folder"):
        lsalsa.data.load_images("folder")


# ---- the natural-photo pool -------------------------------------------------------------
@pytest.fixture(scope="module")
def pool():
    return {split: lsalsa.data.load_images("natural", split, return_info=True) for split in ("train", "test")}


def test_natural_pool_loads_offline(pool):
    n_pixels = 0
    for split, (images, labels, info) in pool.items():
        assert isinstance(images, list) and len(images) == len(labels) == len(info["names"])
        for img in images:
            assert img.ndim == 2 and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
            assert img.std() > 0.02  # a real photo, not a blank
            n_pixels += img.size
        assert [POOL[k] for k in labels] == info["names"]
    assert len(pool["train"][0]) + len(pool["test"][0]) == len(POOL) == 17
    assert 6.0e6 < n_pixels < 7.2e6


def test_natural_split_is_by_whole_image(pool):
    train_names, test_names = pool["train"][2]["names"], pool["test"][2]["names"]
    assert set(test_names) == set(TEST_IMAGES) and not set(train_names) & set(test_names)


def test_natural_resized_stack():
    images, labels = lsalsa.data.load_images("natural", "test", size=(64, 64), limit=2)
    assert images.shape == (2, 64, 64) and list(labels) == [POOL.index(n) for n in TEST_IMAGES[:2]]
