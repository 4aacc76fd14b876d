"""The training recipe: relative Adam rates, lr="auto", schedule, clipping, rollback, and
lsalsa.fit_encoder with its defaults (mu="auto", layer-wise growth)."""
import math

import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LISTA, LSALSA, LassoProblem, LsalsaError, TrainConfig, fit_encoder, train_encoder
from lsalsa.learning_rate import LR_CANDIDATES, find_lr, make_optimizer, schedule_factor
from lsalsa.pipeline import MU_GRID, best_mu
from lsalsa.solvers.salsa import DEFAULT_MU
from lsalsa.train import batch_loss, _clip_gradients


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def task(digits, digit_atoms):
    """Real digits on unit-norm digit atoms (alpha 0.15), optimal codes by SALSA to 1e-10:
    200 training and 100 validation signals."""
    problem = LassoProblem(digit_atoms, alphas=0.15)
    Y = torch.from_numpy(digits[:300].copy())
    X = lsalsa.salsa(problem, Y, mu=1.0, tol=1e-10, max_iter=20_000).X
    return problem, Y[:200], X[:200], Y[200:], X[200:]


def state(enc):
    return {k: v.detach().clone() for k, v in enc.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def poison_once(encoder, at_call):
    """A forward pre-hook that fills S with NaN at the ``at_call``-th training forward, once."""
    calls = {"n": 0, "fired": False}

    def hook(module, args):
        if module is encoder and module.training and torch.is_grad_enabled():  # training steps only
            calls["n"] += 1
            if calls["n"] == at_call and not calls["fired"]:
                calls["fired"] = True
                with torch.no_grad():
                    module.S.fill_(float("nan"))

    encoder.register_forward_pre_hook(hook)
    return calls


# ---- the pieces ------------------------------------------------------------------------------
def test_schedule_warm_up_then_cosine_or_exponential():
    assert schedule_factor("cosine", 0, 10, 0, 4, 1.0) == pytest.approx(0.25)
    assert schedule_factor("cosine", 0, 10, 3, 4, 1.0) == 1.0
    assert schedule_factor("cosine", 5, 10, 100, 4, 1.0) == pytest.approx(0.5)
    assert schedule_factor("exponential", 3, 10, 100, 0, 0.5) == 0.125
    assert schedule_factor("constant", 9, 10, 100, 0, 1.0) == 1.0


def test_adam_rates_are_relative_to_each_tensor(task):
    enc = LSALSA.from_problem(task[0], 3, mu=1.0)
    opt = make_optimizer("adam", enc, 1e-3)
    for group in opt.param_groups:
        (p,) = group["params"]
        rms = float(p.detach().pow(2).mean().sqrt())
        assert group["scale"] == rms and group["lr"] == pytest.approx(1e-3 * rms)
    sgd = make_optimizer("sgd", enc, 1e-3)
    assert [g["lr"] for g in sgd.param_groups] == [1e-3]


def test_clipping_caps_a_spike_at_a_multiple_of_the_running_norm():
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    clip = {"mean": None}
    p.grad = torch.ones(4, dtype=torch.float64)  # norm 2: sets the running mean
    _clip_gradients([p], 5.0, clip)
    assert torch.equal(p.grad, torch.ones(4, dtype=torch.float64)) and float(clip["mean"]) == 2.0
    p.grad = torch.full((4,), 100.0, dtype=torch.float64)  # norm 200, capped at 5 * 2
    _clip_gradients([p], 5.0, clip)
    assert float(p.grad.norm()) == pytest.approx(10.0)
    assert float(clip["mean"]) == pytest.approx(0.99 * 2 + 0.01 * 10)


def test_deep_supervision_adds_the_mean_of_the_earlier_layers(task):
    problem, Y, X, _, _ = task
    enc = LSALSA.from_problem(problem, 3, mu=1.0)
    outs = enc.forward_layers(Y)
    per_layer = [0.5 * float(((o.detach() - X) ** 2).sum()) / len(Y) for o in outs]
    got = float(batch_loss(enc, Y, X, weight=0.5).detach())
    assert got == pytest.approx(per_layer[2] + 0.5 * (per_layer[0] + per_layer[1]) / 2, rel=1e-12)
    assert float(batch_loss(enc, Y, X).detach()) == pytest.approx(per_layer[2], rel=1e-12)


def test_lr_auto_tries_the_grid_on_copies_and_leaves_the_encoder(task):
    problem, Y, X, _, _ = task
    enc = LSALSA.from_problem(problem, 2, mu=1.0)
    before = state(enc)
    batches = [(Y[i:i + 50], X[i:i + 50]) for i in range(0, 200, 50)]
    found = find_lr(enc, "adam", lambda: iter(batches), batch_loss, n_steps=5)
    assert same(state(enc), before)
    assert found["lrs"] == LR_CANDIDATES["adam"] and found["lr"] in found["lrs"]
    # the second round runs the three best rates of the first for 3x the steps; the chosen rate
    # is the one whose copy ended lowest there, and it beat the start
    ranked = sorted(found["lrs"], key=lambda lr: found["losses"][found["lrs"].index(lr)])
    assert sorted(found["second"]) == sorted(ranked[:3])
    assert found["second"][found["lr"]] == min(found["second"].values()) < found["initial"] and found["improved"]
    one_round = find_lr(enc, "adam", lambda: iter(batches), batch_loss, n_steps=5, keep=0)
    assert one_round["second"] == {} and one_round["losses"] == found["losses"]  # same trials, deterministic
    assert one_round["losses"][one_round["lrs"].index(one_round["lr"])] == min(one_round["losses"])


# ---- the loop --------------------------------------------------------------------------------
def test_default_recipe_trains_without_a_rate(task):
    problem, Y, X, Y_val, X_val = task
    enc = LSALSA.from_problem(problem, 3, mu=1.0)
    initial = lsalsa.code_rmse(enc(Y_val).detach(), X_val)
    history = train_encoder(enc, Y, X, TrainConfig(epochs=8), val=(Y_val, X_val))
    assert history.lr_found in LR_CANDIDATES["adam"] and history.rollbacks == []
    assert history.best_epoch >= 1
    assert lsalsa.code_rmse(enc(Y_val).detach(), X_val) < initial


def test_an_injected_nan_is_rolled_back_and_the_run_completes(task):
    problem, Y, X, Y_val, X_val = task
    enc = LSALSA.from_problem(problem, 2, mu=1.0)
    calls = poison_once(enc, at_call=6)  # 4 batches per epoch: in epoch 2
    history = train_encoder(enc, Y, X, TrainConfig(epochs=4, batch_size=50, lr=1e-3), val=(Y_val, X_val))
    assert calls["fired"] and history.epoch == [1, 2, 3, 4]
    assert len(history.rollbacks) == 1 and history.rollbacks[0]["epoch"] == 2
    assert math.isnan(history.rollbacks[0]["loss"]) and history.lr_scale == pytest.approx(0.1)
    assert history.lr[1] == pytest.approx(0.1 * history.lr[0] * schedule_factor("cosine", 1, 4, 99, 50, 1)
                                          / schedule_factor("cosine", 0, 4, 99, 50, 1))
    assert all(bool(torch.isfinite(p).all()) for p in enc.parameters())


def test_an_absurd_rate_is_recovered_from(task):
    problem, Y, X, Y_val, X_val = task
    enc = LSALSA.from_problem(problem, 2, mu=1.0)
    history = train_encoder(enc, Y, X, TrainConfig(epochs=3, batch_size=50, lr=30.0, warmup=0), val=(Y_val, X_val))
    assert history.rollbacks and history.lr_scale < 1 and history.epoch == [1, 2, 3]
    assert all(bool(torch.isfinite(p).all()) for p in enc.parameters())


def test_a_hopeless_rate_gives_one_clear_error_and_no_nan_encoder(task, tmp_path):
    problem, Y, X, _, _ = task
    enc = LSALSA.from_problem(problem, 2, mu=1.0)
    before = state(enc)
    path = tmp_path / "run.ckpt"
    with pytest.raises(LsalsaError, match=r"training diverged in epoch 1: .* after 2 rollbacks.* \(lr=1e\+06\)"):
        train_encoder(enc, Y, X, TrainConfig(epochs=3, batch_size=50, lr=1e6, max_rollbacks=2), checkpoint=path)
    assert same(state(enc), before) and not path.exists()


@pytest.mark.parametrize("stop_at", [2, 4])  # the checkpoint holds 1 (before the rollback) or 3 epochs
def test_resume_is_bit_exact_with_the_recipe_and_a_rollback(task, tmp_path, stop_at):
    problem, Y, X, Y_val, X_val = task
    config = TrainConfig(epochs=5, batch_size=50, warmup=6, lr_test_steps=3)  # lr="auto", cosine, clip
    reference = LSALSA.from_problem(problem, 2, mu=1.0, tied=False)
    poison_once(reference, at_call=10)  # epoch 3
    ref = train_encoder(reference, Y, X, config, val=(Y_val, X_val))
    assert len(ref.rollbacks) == 1

    def interrupt(s):
        if s.epoch == stop_at:
            raise KeyboardInterrupt

    path = tmp_path / "run.ckpt"
    first = LSALSA.from_problem(problem, 2, mu=1.0, tied=False)
    poison_once(first, at_call=10)
    with pytest.raises(KeyboardInterrupt):
        train_encoder(first, Y, X, config, val=(Y_val, X_val), callbacks=[interrupt], checkpoint=path)
    resumed = LSALSA.from_problem(problem, 2, mu=1.0, tied=False)
    # the same training step of the whole run (a callback's interruption comes before the
    # epoch's checkpoint, so the resumed run repeats epoch stop_at)
    poison_once(resumed, at_call=10 - 4 * (stop_at - 1))
    history = train_encoder(resumed, Y, X, config, val=(Y_val, X_val), checkpoint=path, resume=True)
    assert same(state(resumed), state(reference))
    assert history.val_loss == ref.val_loss and history.lr == ref.lr and history.lr_found == ref.lr_found
    assert repr(history.rollbacks) == repr(ref.rollbacks) and history.steps == ref.steps  # repr: nan == nan


def test_new_config_fields_are_checked():
    for kwargs, match in [({"lr": "fast"}, "lr: expected a number"), ({"schedule": "step"}, "schedule: expected"),
                          ({"lr_decay": 0.9}, "lr_decay: 0.9 is the factor of schedule='exponential'"),
                          ({"clip": -1.0}, "clip"), ({"blowup": 1.0}, "blowup: expected a factor > 1"),
                          ({"deep_supervision": -0.1}, "deep_supervision"), ({"warmup": -1}, "warmup")]:
        with pytest.raises(LsalsaError, match=match):
            TrainConfig(**kwargs)


# ---- fit_encoder ------------------------------------------------------------------------------
def test_fit_encoder_starts_lsalsa_at_the_best_salsa(task):
    problem, Y, X, Y_val, X_val = task
    enc = fit_encoder(problem, Y, X, n_layers=3, val=(Y_val, X_val), train=False)
    mu = best_mu(problem, Y_val, X_val, 3)
    assert isinstance(enc, torch.nn.Module) and enc.mu == mu and mu in MU_GRID
    errors = {m: lsalsa.code_rmse(lsalsa.salsa(problem, Y_val, mu=m, n_iter=3).X, X_val) for m in MU_GRID}
    assert errors[mu] == min(errors.values())
    torch.testing.assert_close(enc(Y_val), lsalsa.salsa(problem, Y_val, mu=mu, n_iter=3).X, rtol=0, atol=0)


def test_fit_encoder_trains_from_numpy_with_no_rate_to_pick(task):
    problem, Y, X, Y_val, X_val = task
    enc, history = fit_encoder(problem, Y.numpy(), X.numpy(), n_layers=2, method="lista",
                               val=(Y_val.numpy(), X_val.numpy()), config=TrainConfig(epochs=3), return_history=True)
    assert isinstance(enc, LISTA) and not enc.training and history.lr_found is not None
    ista = lsalsa.code_rmse(lsalsa.ista(problem, Y_val, n_iter=2).X, X_val)
    assert lsalsa.code_rmse(enc(Y_val).detach(), X_val) < ista


def test_fit_encoder_layerwise_grows_to_t_layers(task):
    problem, Y, X, Y_val, X_val = task
    enc, history = fit_encoder(problem, Y, X, n_layers=3, val=(Y_val, X_val), mu=1.0, layerwise=True, tied=False,
                               config=TrainConfig(epochs=3, lr=1e-3), return_history=True)
    assert enc.n_layers == 3 and enc.S.shape[0] == 3 and len(history.epoch) == 3
    salsa3 = lsalsa.code_rmse(lsalsa.salsa(problem, Y_val, mu=1.0, n_iter=3).X, X_val)
    assert lsalsa.code_rmse(enc(Y_val).detach(), X_val) <= salsa3


def test_fit_encoder_bad_arguments(task):
    problem, Y, X, _, _ = task
    with pytest.raises(LsalsaError, match="method: expected a learned method"):
        fit_encoder(problem, Y, X, n_layers=2, method="salsa")
    with pytest.raises(LsalsaError, match="n_layers: expected an integer >= 1"):
        fit_encoder(problem, Y, X, n_layers=0)
    with pytest.raises(LsalsaError, match="config: expected a TrainConfig"):
        fit_encoder(problem, Y, X, n_layers=2, config={"epochs": 1})
    with pytest.raises(LsalsaError, match="X_star: expected shape"):
        fit_encoder(problem, Y, np.zeros((200, 3)), n_layers=2, mu=1.0, config=TrainConfig(epochs=1, lr=1e-3))


def test_best_mu_falls_back_to_the_default_where_salsa_is_worse_than_zeros(task):
    problem, _, _, Y_val, X_val = task
    # one iteration at a tiny mu: no better than the zero code, for each mu tried
    errors = [lsalsa.code_rmse(lsalsa.salsa(problem, Y_val, mu=m, n_iter=1).X, X_val) for m in (1e-4, 2e-4)]
    zeros = lsalsa.code_rmse(torch.zeros_like(X_val), X_val)
    assert min(errors) >= zeros  # thresholds alpha / mu this large zero every code
    assert best_mu(problem, Y_val, X_val, 1, grid=(1e-4, 2e-4)) == DEFAULT_MU
