"""What users trip over (issue 20, items 1, 11, 12): numpy in, numpy out; diverged encoders are
never kept, saved or loaded; encoders refuse NaN input as the solvers do."""
import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LISTA, LSALSA, LsalsaError, TrainConfig, train_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
ENCODERS = {"lsalsa": lambda p: LSALSA.from_problem(p, 3, mu=1.0), "lista": lambda p: LISTA.from_problem(p, 3)}


# ---- item 1: numpy in, numpy out --------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(ENCODERS))
def test_encode_takes_numpy_and_returns_numpy(kind, single, Y64):
    enc = ENCODERS[kind](single)
    codes = enc.encode(Y64.numpy())
    assert isinstance(codes, np.ndarray) and codes.dtype == np.float64 and codes.shape == (20, 48)
    np.testing.assert_array_equal(codes, enc.encode(Y64).numpy())
    assert isinstance(enc.encode(Y64), torch.Tensor)  # a tensor stays a tensor
    np.testing.assert_array_equal(enc.encode(Y64.numpy().tolist()), codes)  # any array-like
    with pytest.raises(LsalsaError, match=r"^Y: dtype torch.float32 does not match the encoder's torch.float64; "):
        enc.encode(Y64.numpy().astype(np.float32))


def test_learn_dictionary_returns_the_kind_of_its_input(digits):
    Y = digits[:200]
    A = lsalsa.learn_dictionary(Y, 16, 0.15, n_epochs=1, fista_iters=5)
    assert isinstance(A, np.ndarray) and A.shape == (64, 16) and A.dtype == np.float64
    At = lsalsa.learn_dictionary(torch.from_numpy(Y), 16, 0.15, n_epochs=1, fista_iters=5)
    assert isinstance(At, torch.Tensor)
    np.testing.assert_array_equal(A, At.numpy())


# ---- item 12: NaN input ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(ENCODERS))
def test_encoders_refuse_nan_input_outside_training(kind, single, Y64):
    enc = ENCODERS[kind](single).eval()
    Y = Y64.clone()
    Y[3, 5], Y[7, 0] = float("nan"), float("inf")
    message = r"^Y: expected finite values, found 2 NaN/Inf entries$"
    for call in (enc.encode, enc, enc.forward_layers, lambda y: enc.encode(y.numpy())):
        with pytest.raises(LsalsaError, match=message):
            call(Y)
    with pytest.raises(LsalsaError, match=message):  # as the solvers say
        lsalsa.ista(single, Y, n_iter=3)
    # training mode skips the check (a pass and a device sync per batch): train_encoder
    # validates its data once
    assert bool(torch.isnan(enc.train()(Y)).any())
    with pytest.raises(LsalsaError, match=r"^Y: expected finite values, found 2 NaN/Inf entries"):
        train_encoder(enc, Y, torch.zeros(20, 48, dtype=torch.float64), TrainConfig(epochs=1, lr=1e-3))


# ---- item 11: diverged encoders ------------------------------------------------------------------
def _state(enc):
    return {k: v.detach().clone() for k, v in enc.state_dict().items()}


def test_a_run_that_diverges_leaves_the_best_validation_state(single, digits):
    """Epoch 0 is the best on validation (the validation targets are the initial encoder's own
    codes, nearly; a loose ``blowup`` lets epoch 1 be worse without a rollback); from epoch 2
    every step poisons S. The run raises and the encoder
    is back at epoch 0, finite, not at epoch 1's parameters."""
    Y, Y_val = torch.from_numpy(digits[:100].copy()), torch.from_numpy(digits[100:150].copy())
    X = lsalsa.fista(single, Y, tol=1e-8, max_iter=20_000).X
    enc = LSALSA.from_problem(single, 2, mu=1.0)
    initial = _state(enc)
    with torch.no_grad():
        X_val = enc(Y_val) + 1e-3
    steps = {"n": 0}

    def poison(module, args):
        if module.training and torch.is_grad_enabled():
            steps["n"] += 1
            if steps["n"] > 2:  # epoch 1 is 2 batches of 50
                with torch.no_grad():
                    module.S.fill_(float("nan"))

    enc.register_forward_pre_hook(poison)
    with pytest.raises(LsalsaError, match=r"^training diverged in epoch 2: loss nan .* The encoder holds the "
                                          r"parameters of epoch 0 \(its lowest validation loss\); no checkpoint"):
        train_encoder(enc, Y, X, TrainConfig(epochs=4, batch_size=50, lr=1e-3, max_rollbacks=1, blowup=1e9),
                      val=(Y_val, X_val))
    assert all(torch.equal(v, initial[k]) for k, v in _state(enc).items())
    assert bool(torch.isfinite(enc.encode(Y_val)).all())


def test_adam_at_a_huge_rate_is_rolled_back_not_called_converged(single, digits):
    """Adam at lr = 100 without val used to end with stop_reason "converged" at a loss of 6e26;
    the rollbacks (already in train.py) bring it back to finite, falling losses."""
    Y = torch.from_numpy(digits[:200].copy()).float()
    problem = single.to(dtype=torch.float32)
    X = lsalsa.fista(problem, Y, tol=1e-5, max_iter=20_000).X
    enc = LSALSA.from_problem(problem, 2, mu=1.0)
    history = train_encoder(enc, Y, X, TrainConfig(epochs=3, lr=100.0, seed=0))
    assert history.rollbacks and history.rollbacks[0]["lr"] == 100.0
    assert max(history.train_loss) < 10 and history.train_loss[-1] < history.train_loss[0]
    assert all(bool(torch.isfinite(p).all()) for p in enc.parameters())


def test_non_finite_encoders_are_neither_saved_nor_loaded(single, tmp_path):
    enc = LSALSA.from_problem(single, 2, mu=1.0)
    good = tmp_path / "good.pt"
    lsalsa.save_encoder(enc, good)
    with torch.no_grad():
        enc.S[0, 1] = float("nan")
    bad = tmp_path / "bad.pt"
    with pytest.raises(LsalsaError, match=r"^encoder: S holds 1 NaN/Inf entries \(a diverged encoder\); refusing it$"):
        lsalsa.save_encoder(enc, bad)
    assert not bad.exists()
    # a file written with NaN weights (by an older version, or by hand) is refused on load
    obj = torch.load(good, weights_only=True)
    obj["state_dict"]["W_e"][0, 0] = float("inf")
    torch.save(obj, bad)
    with pytest.raises(LsalsaError, match=r"bad.pt: the stored LSALSA: W_e holds 1 NaN/Inf entries \(a diverged "
                                          r"encoder\); refusing it$"):
        lsalsa.load_encoder(bad)
