"""train_encoder (Eq. 15): learning on real digits, checkpoints and exact resume, failures."""
import math

import pytest
import torch

import lsalsa
from lsalsa import LISTA, LSALSA, LassoProblem, LsalsaError, TrainConfig, code_rmse, train_encoder


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def task(digits, digit_atoms):
    """Digits coded on unit-norm digit atoms with alpha = 0.15; optimal codes by FISTA to
    convergence; the first 800 signals train, the next 200 test (atoms come from the tail)."""
    problem = LassoProblem(digit_atoms, alphas=0.15)
    Y = torch.from_numpy(digits[:1000].copy())
    res = lsalsa.fista(problem, Y, tol=1e-6, max_iter=20_000)
    assert res.converged
    return problem, Y[:800], res.X[:800], Y[800:], res.X[800:]


@pytest.fixture(scope="module")
def small_task(task):
    """200 training and 100 validation signals, for the loop's mechanics."""
    problem, Y, X, _, _ = task
    return problem, Y[:200], X[:200], Y[200:300], X[200:300]


# ---- learning on real data --------------------------------------------------------------------
def test_trained_lsalsa_beats_truncated_salsa(task):
    problem, Y, X, Y_test, X_test = task
    mu = 1.0
    enc = LSALSA.from_problem(problem, 1, mu=mu)
    history = train_encoder(enc, Y, X, TrainConfig(epochs=5, batch_size=50, lr=3e-4, optimizer="sgd"))
    with torch.no_grad():
        rmse = code_rmse(enc(Y_test), X_test)
    salsa_rmse = code_rmse(lsalsa.salsa(problem, Y_test, mu=mu, n_iter=1).X, X_test)
    assert rmse < 0.75 * salsa_rmse
    assert rmse < 0.75 * code_rmse(torch.zeros_like(X_test), X_test)  # better than guessing x = 0
    assert history.train_loss[-1] < history.train_loss[0] and history.stop_reason == "epochs"


def test_trained_lista_beats_ista(task):
    problem, Y, X, Y_test, X_test = task
    enc = LISTA.from_problem(problem, 1)
    train_encoder(enc, Y, X, TrainConfig(epochs=5, batch_size=50, lr=0.1, optimizer="sgd"))
    with torch.no_grad():
        rmse = code_rmse(enc(Y_test), X_test)
    assert rmse < 0.85 * code_rmse(lsalsa.ista(problem, Y_test, n_iter=1).X, X_test)


@pytest.mark.parametrize("options", [{"tied": False}, {"learn_thresholds": "dictionary"}])
def test_options_train(options, small_task):
    problem, Y, X, Y_val, X_val = small_task
    enc = LSALSA.from_problem(problem, 2, **options)
    thresholds = enc.thresholds
    config = TrainConfig(epochs=3, batch_size=50, lr=1e-3, optimizer="adam")
    history = train_encoder(enc, Y, X, config, val=(Y_val, X_val))
    assert history.val_loss[-1] < history.val_loss[0]
    assert (enc.thresholds >= 0).all()
    assert torch.equal(enc.thresholds, thresholds) == ("learn_thresholds" not in options)


# ---- the loop's mechanics ----------------------------------------------------------------------
CONFIG = dict(epochs=6, batch_size=32, lr=3e-3, schedule="exponential", lr_decay=0.9, optimizer="adam", seed=3)


def fresh(small_task):
    return LSALSA.from_problem(small_task[0], 2, mu=1.0)


def params(enc):
    return {k: v.detach().clone() for k, v in enc.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_validation_keeps_the_best_epoch(small_task):
    problem, Y, X, Y_val, X_val = small_task
    enc = fresh(small_task)
    seen = []
    history = train_encoder(enc, Y, X, TrainConfig(**CONFIG), val=(Y_val, X_val),
                            callbacks=[lambda s: seen.append(s.epoch)])
    assert seen == [1, 2, 3, 4, 5, 6] and history.epoch == seen
    assert history.lr == pytest.approx([3e-3 * 0.9**k for k in range(6)])
    best = min(history.val_loss)
    assert history.val_loss[history.best_epoch - 1] == best
    with torch.no_grad():
        R = enc(Y_val) - X_val
    assert float(0.5 * (R * R).sum() / len(Y_val)) == pytest.approx(best, rel=1e-12)
    rows = history.rows()
    assert len(rows) == 6 and set(rows[0]) == {"epoch", "train_loss", "val_loss", "lr", "time_s"}


@pytest.mark.parametrize("every, stop_at", [(1, 3), (2, 3)])
def test_interrupted_and_resumed_equals_uninterrupted(small_task, tmp_path, every, stop_at):
    problem, Y, X, Y_val, X_val = small_task
    reference = fresh(small_task)
    ref_history = train_encoder(reference, Y, X, TrainConfig(**CONFIG), val=(Y_val, X_val))

    def interrupt(state):
        if state.epoch == stop_at:
            raise KeyboardInterrupt

    path = tmp_path / "run.ckpt"
    config = TrainConfig(**CONFIG, checkpoint_every=every)
    with pytest.raises(KeyboardInterrupt):
        train_encoder(fresh(small_task), Y, X, config, val=(Y_val, X_val), callbacks=[interrupt], checkpoint=path)
    resumed = fresh(small_task)
    history = train_encoder(resumed, Y, X, config, val=(Y_val, X_val), checkpoint=path, resume=True)
    assert_same(params(resumed), params(reference))
    assert history.train_loss == ref_history.train_loss and history.val_loss == ref_history.val_loss
    assert history.best_epoch == ref_history.best_epoch
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temporary file left


def test_run_in_two_parts_equals_one(small_task, tmp_path):
    problem, Y, X, _, _ = small_task
    reference = fresh(small_task)
    train_encoder(reference, Y, X, TrainConfig(**CONFIG))
    path = tmp_path / "run.ckpt"
    enc = fresh(small_task)
    train_encoder(enc, Y, X, TrainConfig(**{**CONFIG, "epochs": 2}), checkpoint=path)
    enc = fresh(small_task)  # a new process would start from scratch too
    history = train_encoder(enc, Y, X, TrainConfig(**CONFIG), checkpoint=path, resume=True)
    assert history.epoch == [1, 2, 3, 4, 5, 6]
    assert_same(params(enc), params(reference))
    # the checkpoint also loads as an encoder (its last parameters)
    assert torch.equal(lsalsa.load_encoder(path)(Y), enc(Y))


def test_resume_without_checkpoint_starts_afresh(small_task, tmp_path):
    problem, Y, X, _, _ = small_task
    path = tmp_path / "new.ckpt"
    history = train_encoder(fresh(small_task), Y, X, TrainConfig(epochs=1), checkpoint=path, resume=True)
    assert history.epoch == [1] and path.exists()


def test_resume_refuses_another_run(small_task, tmp_path):
    problem, Y, X, _, _ = small_task
    path = tmp_path / "run.ckpt"
    train_encoder(fresh(small_task), Y, X, TrainConfig(epochs=1), checkpoint=path)
    with pytest.raises(LsalsaError, match=r"run.ckpt: the run was written with batch_size=100 \(now 10\)"):
        train_encoder(fresh(small_task), Y, X, TrainConfig(epochs=2, batch_size=10), checkpoint=path, resume=True)
    with pytest.raises(LsalsaError, match="run.ckpt: written for a LSALSA"):
        train_encoder(LISTA.from_problem(small_task[0], 2), Y, X, TrainConfig(epochs=2), checkpoint=path, resume=True)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(LsalsaError, match="run.ckpt: not a readable lsalsa file"):
        train_encoder(fresh(small_task), Y, X, TrainConfig(epochs=2), checkpoint=path, resume=True)


def test_divergence_raises_and_saves_nothing(small_task, tmp_path):
    problem, Y, X, _, _ = small_task
    path = tmp_path / "run.ckpt"
    with pytest.raises(LsalsaError, match=r"training diverged in epoch 1: .* lower the learning rate \(lr=1e\+06\)"):
        train_encoder(fresh(small_task), Y, X, TrainConfig(epochs=3, batch_size=10, lr=1e6), checkpoint=path)
    assert not path.exists()


def test_rel_tol_and_callback_stop(small_task):
    problem, Y, X, _, _ = small_task
    history = train_encoder(fresh(small_task), Y, X, TrainConfig(epochs=50, lr=1e-4, rel_tol=0.5))
    assert history.stop_reason == "converged" and len(history.epoch) == 2
    stop_at_2 = [lambda state: state.epoch == 2]
    history = train_encoder(fresh(small_task), Y, X, TrainConfig(epochs=50, rel_tol=0), callbacks=stop_at_2)
    assert history.stop_reason == "callback" and history.epoch == [1, 2]


def test_iterables_of_batches(small_task):
    problem, Y, X, Y_val, X_val = small_task
    data = torch.utils.data.TensorDataset(Y, X)
    loader = torch.utils.data.DataLoader(data, batch_size=25, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = [(Y_val[:50], X_val[:50]), (Y_val[50:], X_val[50:])]
    enc = fresh(small_task)
    history = train_encoder(enc, loader, config=TrainConfig(epochs=3, lr=1e-3, optimizer="adam"), val=val)
    assert history.val_loss[-1] < history.val_loss[0]
    # the validation loss over batches is Eq. 15 on the whole validation set
    with torch.no_grad():
        R = enc(Y_val) - X_val
    assert float(0.5 * (R * R).sum() / 100) == pytest.approx(min(history.val_loss), rel=1e-12)
    # as under DDP: a DistributedSampler is told the epoch so that it reshuffles
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=1, rank=0, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=25, sampler=sampler)
    train_encoder(fresh(small_task), loader, config=TrainConfig(epochs=3, optimizer="adam", rel_tol=0))
    assert sampler.epoch == 2
    one_shot = ((Y[i:i + 50], X[i:i + 50]) for i in range(0, 200, 50))
    with pytest.raises(LsalsaError, match="re-iterable"):
        train_encoder(fresh(small_task), one_shot, config=TrainConfig(epochs=2))


def test_any_module_trains_and_no_global_rng_is_touched(small_task, tmp_path):
    problem, Y, X, _, _ = small_task
    net = torch.nn.Sequential(torch.nn.Linear(64, 48, dtype=torch.float64), torch.nn.ReLU())
    rng_before = torch.get_rng_state()
    config = TrainConfig(epochs=4, batch_size=20, lr=1e-2, rel_tol=0)
    history = train_encoder(net, Y, X, config, checkpoint=tmp_path / "mlp.ckpt", progress=True)
    assert history.train_loss[-1] < history.train_loss[0]
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_numpy_inputs(small_task):
    problem, Y, X, Y_val, X_val = small_task
    val = (Y_val.numpy(), X_val.numpy())
    history = train_encoder(fresh(small_task), Y.numpy(), X.numpy(), TrainConfig(epochs=1), val=val)
    assert history.epoch == [1] and history.val_loss[0] is not None


def test_float32_training(small_task):
    problem, Y, X, _, _ = small_task
    enc = LSALSA.from_problem(problem.to(dtype=torch.float32), 2)
    history = train_encoder(enc, Y.float(), X.float(), TrainConfig(epochs=2, lr=1e-3, optimizer="adam"))
    assert enc.S.dtype == torch.float32 and all(math.isfinite(v) for v in history.train_loss)


# ---- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs: expected an integer >= 1"),
        ({"batch_size": 0}, "batch_size: expected an integer >= 1"),
        ({"lr": 0.0}, "lr: expected a finite number > 0"),
        ({"lr": float("nan")}, "lr: expected a finite number"),
        ({"lr_decay": 0.0}, "lr_decay: expected a finite number > 0"),
        ({"lr_decay": 1.5}, "lr_decay: expected 0 < lr_decay <= 1"),
        ({"optimizer": "lbfgs"}, "optimizer: expected one of"),
        ({"rel_tol": -1.0}, "rel_tol: expected a finite number > 0"),
        ({"seed": -1}, "seed: expected an integer >= 0"),
        ({"checkpoint_every": 0}, "checkpoint_every: expected an integer >= 1"),
    ],
)
def test_bad_train_config(kwargs, match):
    with pytest.raises(LsalsaError, match=match):
        TrainConfig(**kwargs)


def test_bad_training_data(small_task):
    problem, Y, X, _, _ = small_task
    enc = fresh(small_task)
    with pytest.raises(LsalsaError, match=r"X_star: expected shape \(P, 48\), got \(200, 47\)"):
        train_encoder(enc, Y, X[:, :47])
    with pytest.raises(LsalsaError, match="X_star: expected 200 rows like Y, got 199"):
        train_encoder(enc, Y, X[:199])
    with pytest.raises(LsalsaError, match=r"Y: expected shape \(P, 64\)"):
        train_encoder(enc, Y[:, :10], X)
    with pytest.raises(LsalsaError, match="Y: dtype torch.float32 does not match the encoder's torch.float64"):
        train_encoder(enc, Y.float(), X.float())
    with pytest.raises(LsalsaError, match="X_star: expected a"):
        train_encoder(enc, Y)
    with pytest.raises(LsalsaError, match=r"val\[1\]: expected 100 rows"):
        train_encoder(enc, Y, X, val=(Y[:100], X[:99]))
    with pytest.raises(LsalsaError, match="resume: needs the checkpoint path"):
        train_encoder(enc, Y, X, resume=True)
    with pytest.raises(LsalsaError, match="config: expected a TrainConfig"):
        train_encoder(enc, Y, X, {"epochs": 3})
    with pytest.raises(LsalsaError, match="encoder: expected a torch.nn.Module"):
        train_encoder(lambda y: y, Y, X)
    bad = X.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(LsalsaError, match="X_star: expected finite values"):
        train_encoder(enc, Y, bad)
    with pytest.raises(LsalsaError, match="does not match the encoder's output"):
        train_encoder(torch.nn.Linear(64, 40, dtype=torch.float64), Y, X)


def test_initial_parameters_are_kept_when_training_only_hurts(digit_atoms, digits):
    # SALSA with 30 iterations is already close to the optimum; one epoch of a far too large
    # Adam step makes it worse, so the best-on-validation encoder is the initial one (epoch 0).
    problem = lsalsa.LassoProblem(digit_atoms, alphas=0.15)
    Y = torch.from_numpy(digits[:300].copy())
    X_star = lsalsa.salsa(problem, Y, mu=1.0, tol=1e-10, max_iter=20_000).X
    enc = lsalsa.LSALSA.from_problem(problem, 30, mu=1.0)
    with torch.no_grad():
        before = enc(Y[200:]).clone()
    config = lsalsa.TrainConfig(epochs=1, batch_size=50, lr=0.05, optimizer="adam", seed=0)
    history = lsalsa.train_encoder(enc, Y[:200], X_star[:200], config, val=(Y[200:], X_star[200:]))
    assert history.best_epoch == 0 and history.val_loss[0] > 0
    with torch.no_grad():
        torch.testing.assert_close(enc(Y[200:]), before, rtol=0, atol=0)
