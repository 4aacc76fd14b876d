"""Patch extraction with the paper's options, exact re-assembly, and MCA mixtures."""
import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LsalsaError
from lsalsa.data import assemble_patches, extract_patches, mix


@pytest.fixture(scope="module")
def digits():
    return lsalsa.data.load_images("mnist-5k", "test", limit=40)[0]  # (40, 28, 28) real digits


def test_paper_mnist_preparation(digits):
    # 28 -> 32 by zero padding, 10x10 non-overlapping patches, the 2 extra pixels on two edges dropped
    patches, source, pos = extract_patches(digits, size=10, pad_to=32, return_positions=True)
    assert patches.shape == (40 * 9, 100) and patches.dtype == np.float32
    assert list(source[:10]) == [0] * 9 + [1]
    assert {tuple(p) for p in pos} == {(r, c) for r in (0, 10, 20) for c in (0, 10, 20)}
    padded = np.pad(digits, ((0, 0), (2, 2), (2, 2)))
    np.testing.assert_array_equal(patches[4].reshape(10, 10), padded[0, 10:20, 10:20])
    # dropping the practically all-black patches (std < 0.1)
    kept, kept_source = extract_patches(digits, size=10, pad_to=32, min_std=0.1)
    assert 0 < len(kept) < len(patches) and (kept.std(axis=1) >= 0.1).all()
    assert (patches[patches.std(axis=1) < 0.1].std(axis=1) < 0.1).all()


def test_whole_images_as_rows(digits):
    rows, source = extract_patches(digits, size=32, pad_to=32)
    assert rows.shape == (40, 1024) and list(source) == list(range(40))
    images = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    rows, _ = extract_patches(images, size=8)
    assert rows.flags.writeable and not np.shares_memory(rows, images)  # a copy, never a view


@pytest.mark.parametrize("size,stride", [(8, 8), (8, 4), (7, 3), (5, 1)])
def test_round_trip(size, stride):
    rng = np.random.default_rng(0)
    images = rng.random((3, 29, 37)).astype(np.float32)
    patches, source, pos = extract_patches(images, size, stride, return_positions=True)
    out = assemble_patches(patches, pos, images.shape[1:], source)
    covered_h = (29 - size) // stride * stride + size
    covered_w = (37 - size) // stride * stride + size
    np.testing.assert_array_equal(out[:, :covered_h, :covered_w], images[:, :covered_h, :covered_w])
    assert (out[:, covered_h:, :] == 0).all() and (out[:, :, covered_w:] == 0).all()


def test_overlaps_are_averaged():
    patches = np.array([np.full(4, 1.0), np.full(4, 3.0)], dtype=np.float32)  # two 2x2 patches
    out = assemble_patches(patches, [(0, 0), (0, 1)], (2, 3), fill=-1.0)
    np.testing.assert_array_equal(out, [[1, 2, 3], [1, 2, 3]])
    out = assemble_patches(patches[:1], [(0, 0)], (2, 3), fill=-1.0)
    np.testing.assert_array_equal(out, [[1, 1, -1], [1, 1, -1]])


def test_list_of_differently_sized_images():
    rng = np.random.default_rng(1)
    images = [rng.random((20, 30)).astype(np.float32), rng.random((16, 16)).astype(np.float32), (rng.random((25, 12)) * 255).astype(np.uint8)]
    patches, source, pos = extract_patches(images, 8, return_positions=True)
    assert patches.shape == (2 * 3 + 2 * 2 + 3 * 1, 64) and patches.dtype == np.float32
    assert list(np.bincount(source)) == [6, 4, 3]
    np.testing.assert_allclose(patches[source == 2][0].reshape(8, 8), images[2][:8, :8] / 255, rtol=1e-6)
    for i, img in enumerate(images[:2]):
        back = assemble_patches(patches[source == i], pos[source == i], img.shape)
        np.testing.assert_allclose(back[:16, :24], img[:16, :24], rtol=1e-6)


def test_float64_and_tensor_input():
    images = torch.rand(2, 12, 12, dtype=torch.float64)
    patches, _ = extract_patches(images, 6)
    assert patches.dtype == np.float64 and patches.shape == (8, 36)


@pytest.mark.parametrize("kwargs,match", [
    ({"size": 40}, "size.*larger than image 0"),
    ({"size": 0}, "size"),
    ({"size": 4, "stride": -1}, "stride"),
    ({"size": 4, "pad_to": 20}, "pad_to"),
    ({"size": 4, "min_std": 10.0}, "min_std"),
    ({"size": 4, "min_std": -1}, "min_std"),
])
def test_bad_arguments(digits, kwargs, match):
    with pytest.raises(LsalsaError, match=match):
        extract_patches(digits, **kwargs)


def test_patch_larger_than_one_image_of_a_list():
    with pytest.raises(LsalsaError, match=r"image 1 of shape \(5, 40\)"):
        extract_patches([np.zeros((40, 40)), np.zeros((5, 40))], 10)
    with pytest.raises(LsalsaError, match="images"):
        extract_patches([], 10)
    with pytest.raises(LsalsaError, match="images"):
        extract_patches(np.zeros((2, 3, 4, 5)), 2)


# ---- mixtures ----------------------------------------------------------------------------
def test_mixture_is_the_sum_of_its_components():
    rng = np.random.default_rng(0)
    a, b = rng.random((30, 16)).astype(np.float32), rng.random((7, 16)).astype(np.float32)
    m = mix([a, b], [np.arange(30), np.arange(7) + 100], seed=3, names=("a", "b"))
    assert m.Y.shape == (30, 16) and m.components.shape == (2, 30, 16) and len(m) == 30
    np.testing.assert_array_equal(m.Y, m.components[0] + m.components[1])
    np.testing.assert_array_equal(m.components[0], a[m.index[0]])
    np.testing.assert_array_equal(m.components[1], b[m.index[1]])
    np.testing.assert_array_equal(m.labels[1], m.index[1] + 100)
    assert sorted(m.index[0]) == list(range(30))  # every row of the larger source once
    assert np.bincount(m.index[1]).max() - np.bincount(m.index[1]).min() <= 1  # others reused evenly
    again = mix([a, b], seed=3)
    np.testing.assert_array_equal(again.index, m.index)  # the seed fixes the pairing
    assert (mix([a, b], seed=4).index != m.index).any()
    assert (again.labels == -1).all() and m.names == ("a", "b")


def test_mixture_bad_input():
    with pytest.raises(LsalsaError, match=r"sources\[1\]"):
        mix([np.zeros((3, 4)), np.zeros((3, 5))])
    with pytest.raises(LsalsaError, match="labels"):
        mix([np.zeros((3, 4))], [np.zeros(2)])


def test_mnist_natural_mixtures():
    m = lsalsa.data.mnist_natural("test", limit=50, n_mixtures=64, seed=0)
    assert m.Y.shape == (64, 1024) and m.names == ("mnist", "natural")
    np.testing.assert_array_equal(m.Y, m.components.sum(axis=0))
    digits = m.components[0].reshape(-1, 32, 32)
    assert (digits[:, :2, :] == 0).all() and (digits[:, :, -2:] == 0).all()  # padded 28 -> 32
    assert set(m.labels[1]) <= {lsalsa.data.NATURAL_POOL.index(n) for n in lsalsa.data.NATURAL_TEST_IMAGES}
