"""The hyper-parameter search of an experiment (Supplement E): the grid, the staged search of the
learned methods, and how a trial's settings reach the training."""
from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch

import lsalsa.experiments.evaluate as ev
from lsalsa import TrainConfig, fit_encoder
from lsalsa.errors import LsalsaError
from lsalsa.experiments.config import load_config

AXES = {"alpha_factor": [0.5, 1.0, 2.0], "mu": [None], "lr_factor": [0.3, 1.0, 3.0], "lr_decay": [0.0, 0.8, 0.99]}
BEST = {"alpha_factor": 2.0, "lr_factor": 0.3, "lr_decay": 0.8}


def _separable(trial):
    """A validation error whose minimum is BEST, each setting's share independent of the others."""
    return sum((AXES[k].index(trial[k]) - AXES[k].index(v)) ** 2 for k, v in BEST.items())


def test_staged_search_tunes_one_setting_at_a_time():
    calls = []
    tried = ev._staged(AXES, lambda t: calls.append(dict(t)) or _separable(t))
    # alpha's three values, then two new rates and two new decays: the current best is not retried
    assert len(calls) == len(tried) == 3 + 2 + 2
    assert calls[0] == {"alpha_factor": 0.5, "mu": None, "lr_factor": 1.0, "lr_decay": 0.0}  # factor 1 first
    best = min(tried, key=tried.__getitem__)
    assert dict(zip(ev.SEARCHED, best)) == {**BEST, "mu": None}
    assert tried[best] == 0
    # every later stage kept the best alpha
    assert all(c["alpha_factor"] == 2.0 for c in calls[3:])


def test_staged_search_follows_the_best_of_each_stage_not_the_global_grid():
    # an interaction the staged search cannot see: it reports what it tried, the grid would find 0
    def coupled(t):
        return 0.0 if (t["alpha_factor"], t["lr_factor"]) == (0.5, 3.0) else 1.0 + abs(t["alpha_factor"] - 1.0)

    tried = ev._staged(AXES, coupled)
    best = dict(zip(ev.SEARCHED, min(tried, key=tried.__getitem__)))
    assert best["alpha_factor"] == 1.0 and tried[min(tried, key=tried.__getitem__)] == 1.0
    grid = [dict(zip(ev.SEARCHED, v)) for v in itertools.product(*(AXES[k] for k in ev.SEARCHED))]
    assert min(coupled(t) for t in grid) == 0.0


def test_grid_of_each_method():
    c = load_config("fashion_sc", ["search.alpha_factors=[0.5,1.0]", "search.mu=[1.0,10.0]",
                                   "search.lr_factors=[0.5,1.0,2.0]", "search.lr_decays=[0.0,0.8]"])
    assert len(ev._grid(c, "fista")) == 2                    # alpha only
    assert len(ev._grid(c, "salsa")) == 2 * 2                # alpha x mu
    assert len(ev._grid(c, "lsalsa")) == 2 * 3 * 2           # alpha x rate x decay (mu: SALSA's best)
    assert {p["mu"] for p in ev._grid(c, "lista")} == {None}
    with pytest.raises(LsalsaError, match="search.learned"):
        load_config("fashion_sc", ["search.learned=random"])
    with pytest.raises(LsalsaError, match="search.lr_decays"):
        load_config("fashion_sc", ["search.lr_decays=[1.5]"])


@pytest.mark.parametrize("decay, schedule, lr_decay", [(0.0, "cosine", 1.0), (0.8, "exponential", 0.8)])
def test_a_trial_trains_with_its_rate_factor_and_decay(monkeypatch, small, decay, schedule, lr_decay):
    seen = {}
    monkeypatch.setattr(ev, "fit_encoder", lambda *a, config, **k: seen.setdefault("config", config))
    run = SimpleNamespace(config=load_config("fashion_sc"), progress=False)
    Y = torch.zeros(4, small.n_features, dtype=small.dtype)
    task = SimpleNamespace(problem=small, Y_train=Y, X_train=Y, Y_val=Y, X_val=Y)
    ev._train(run, task, "lsalsa", 2, {"alpha_factor": 1.0, "mu": None, "lr_factor": 3.0, "lr_decay": decay}, 3)
    config = seen["config"]
    assert (config.lr, config.lr_scale, config.schedule, config.lr_decay) == ("auto", 3.0, schedule, lr_decay)
    assert config.epochs == 3 and config.lr_test_steps == 20  # train.lr_test_steps
    with pytest.raises(LsalsaError, match="train.lr_test_steps"):
        load_config("fashion_sc", ["train.lr_test_steps=0"])


def test_lr_scale_multiplies_the_rate(small):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, small.n_atoms, generator=g, dtype=small.dtype) * (torch.rand(64, small.n_atoms, generator=g) < 0.1)
    Y = X @ small.A.T
    models = [fit_encoder(small, Y, X, n_layers=2, mu=1.0, config=TrainConfig(epochs=2, lr=lr, lr_scale=scale, warmup=0))
              for lr, scale in ((0.01, 0.5), (0.005, 1.0), (0.01, 1.0))]
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    # the scale did change the training: the unscaled rate ends elsewhere
    assert any((p - q).abs().max() > 1e-6 for p, q in zip(models[0].parameters(), models[2].parameters()))
    with pytest.raises(LsalsaError, match="lr_scale"):
        TrainConfig(lr_scale=0)


def test_the_range_test_runs_once_per_alpha(monkeypatch, small):
    """A learned method's trials at one alpha share the rate its first trial's range test found;
    the final training gets it too."""
    from lsalsa.train import TrainHistory

    configs = []

    def fake_fit(problem, Y, X, *, config, **kwargs):
        configs.append(config)
        score = abs(config.lr_scale - 0.3) + (config.schedule == "cosine")  # best: rate x0.3, a decay
        history = TrainHistory(lr_found=0.01 * problem.alphas[0].item() if config.lr == "auto" else None)
        return (lambda Y: torch.full((len(Y), small.n_atoms), score, dtype=small.dtype)), history

    monkeypatch.setattr(ev, "fit_encoder", fake_fit)
    run = SimpleNamespace(config=load_config("fashion_sc"), progress=False)
    Y, X = torch.zeros(4, small.n_features, dtype=small.dtype), torch.zeros(4, small.n_atoms, dtype=small.dtype)
    task = SimpleNamespace(problem=small, Y_train=Y, X_train=X, Y_val=Y, X_val=X)
    best, err = ev._search(run, "lsalsa", task, 2)
    assert len(configs) == 3 + 2 + 2
    assert sum(c.lr == "auto" for c in configs) == 3  # one range test per alpha factor
    assert all(c.lr == pytest.approx(0.01 * small.alphas[0].item() * best["alpha_factor"]) for c in configs[3:])
    assert (best["lr_factor"], best["lr_decay"], err) == (0.3, 0.8, 0.0)  # the first decay that scores 0
    assert best["lr_base"] == pytest.approx(configs[3].lr)


def test_learned_mu_trains_lsalsa_at_each_mu_after_salsas_best(monkeypatch, small):
    """search.learned_mu: LSALSA's mu stage tries SALSA's best at T (None, what it starts from by
    default) and then every mu of search.mu, each a training from that mu with its own range test;
    LISTA has no mu, and without the option LSALSA's mu is not searched."""
    from lsalsa.train import TrainHistory

    seen = []

    def fake_fit(problem, Y, X, *, config, mu, **kwargs):
        seen.append((mu, config.lr))
        score = 0.0 if mu == 3.0 else 1.0  # training from mu = 3 is best on validation
        return (lambda Y: torch.full((len(Y), small.n_atoms), score, dtype=small.dtype)), TrainHistory(lr_found=0.01)

    monkeypatch.setattr(ev, "fit_encoder", fake_fit)
    c = load_config("fashion_sc", ["search.alpha_factors=[1.0]", "search.mu=[1.0,3.0]", "search.lr_factors=[1.0]",
                                   "search.lr_decays=[0.0]", "search.learned_mu=true"])
    assert ev._axes(c, "lsalsa")["mu"] == [None, 1.0, 3.0] and ev._axes(c, "lista")["mu"] == [None]
    assert ev._axes(load_config("fashion_sc", ["search.mu=[1.0,3.0]"]), "lsalsa")["mu"] == [None]
    run = SimpleNamespace(config=c, progress=False)
    Y, X = torch.zeros(4, small.n_features, dtype=small.dtype), torch.zeros(4, small.n_atoms, dtype=small.dtype)
    task = SimpleNamespace(problem=small, Y_train=Y, X_train=X, Y_val=Y, X_val=X)
    best, err = ev._search(run, "lsalsa", task, 2)
    assert [mu for mu, _ in seen] == [[1.0, 3.0], 1.0, 3.0]  # SALSA's best of the grid first, then each mu
    assert all(lr == "auto" for _, lr in seen)  # a range test per start: rates differ between mus
    assert (best["mu"], err, best["lr_base"]) == (3.0, 0.0, 0.01)
    with pytest.raises(LsalsaError, match="search.learned_mu"):
        load_config("fashion_sc", ["search.learned_mu=1"])
