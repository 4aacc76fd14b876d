"""The encoders' options for deeper training: learned per-layer penalties (LSALSA's ``learn_mu``)
and steps (LISTA's ``learn_step``), the read-outs of every layer (``forward_layers``), and
``grow`` (an encoder one or more layers deeper that starts as a trained one)."""
import json

import pytest
import torch

import lsalsa
from lsalsa import LISTA, LSALSA, LsalsaError
from lsalsa.encoders import grow
from lsalsa.encoders.lsalsa import MU_FLOOR
from test_encoders import MU, build, solver

LSALSA_OPTIONS = [
    {"learn_mu": True},
    {"learn_mu": True, "tied": False},
    {"learn_mu": True, "learn_thresholds": "coordinate"},
    {"learn_mu": True, "learn_thresholds": "dictionary", "tied": False},
    {"learn_mu": True, "learn_thresholds": "layer", "tied": False},
]
LISTA_OPTIONS = [
    {"learn_step": True},
    {"learn_step": True, "tied": False},
    {"learn_step": True, "learn_thresholds": "coordinate"},
    {"learn_step": True, "learn_thresholds": "dictionary", "tied": False},
    {"learn_step": True, "learn_thresholds": "layer"},
]
NEW_OPTIONS = [("lsalsa", o) for o in LSALSA_OPTIONS] + [("lista", o) for o in LISTA_OPTIONS]


def perturbed(enc, seed=0):
    """The encoder with every parameter (mu_t and gamma_t too) moved off its initial value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return enc


def truncated(enc, n):
    """The encoder of ``enc``'s first n layers: its shared parameters, the first rows of its
    per-layer ones."""
    short = type(enc).from_config({**enc.config(), "n_layers": n}, dtype=enc.W_e.dtype)
    with torch.no_grad():
        for name, p in short.named_parameters():
            source = getattr(enc, name)
            p.copy_(source if p.shape == source.shape else source[: p.shape[0]])
    return short


def exact(X, ref):
    torch.testing.assert_close(X, ref, rtol=0, atol=0)


# ---- at initialisation, the solvers bit for bit ------------------------------------------------
@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize("which", ["single", "mca"])
@pytest.mark.parametrize(("kind", "options"), NEW_OPTIONS)
def test_new_options_at_init_equal_the_solvers(kind, options, which, T, request, Y64):
    """forward, encode (in place) and the last read-out of forward_layers: all exactly
    salsa(n_iter=T) / ista(n_iter=T), as the fixed-mu / fixed-step encoders are."""
    problem = request.getfixturevalue(which)
    enc = build(kind, problem, T, **options)
    ref = solver(kind, problem, Y64, T)
    exact(enc(Y64), ref)
    exact(enc.encode(Y64), ref)
    exact(enc.forward_layers(Y64)[-1], ref)


# ---- forward_layers ------------------------------------------------------------------------------
LAYER_OPTIONS = [("lsalsa", {}), ("lsalsa", {"tied": False}), ("lista", {}), ("lista", {"tied": False}),
                 *NEW_OPTIONS[::2]]


@pytest.mark.parametrize("which", ["single", "mca"])
@pytest.mark.parametrize(("kind", "options"), LAYER_OPTIONS)
def test_forward_layers_equal_truncated_solvers(kind, options, which, request, Y64):
    """Untrained, element t is salsa(n_iter=t+1).X / ista(n_iter=t+1).X, exactly."""
    problem = request.getfixturevalue(which)
    T = 5
    enc = build(kind, problem, T, **options)
    layers = enc.forward_layers(Y64)
    assert isinstance(layers, list) and len(layers) == T
    for t, X in enumerate(layers):
        assert X.shape == (20, problem.n_atoms)
        exact(X, solver(kind, problem, Y64, t + 1))
    assert torch.equal(layers[-1], enc(Y64))


@pytest.mark.parametrize(("kind", "options"), [*LAYER_OPTIONS, ("lsalsa", {"readout": "x", "learn_mu": True})])
def test_forward_layers_of_a_trained_encoder_are_its_truncations(kind, options, mca, Y64):
    """Element t is what the encoder of the first t+1 layers (the same parameters) outputs; the
    last is forward(Y) bit for bit."""
    T = 4
    enc = perturbed(build(kind, mca, T, **options))
    layers = enc.forward_layers(Y64)
    assert torch.equal(layers[-1], enc(Y64))
    for t in range(T - 1):
        exact(layers[t], truncated(enc, t + 1)(Y64))


def test_forward_layers_validates_and_is_differentiable(mca, Y64):
    enc = LSALSA.from_problem(mca, 3, mu=MU, learn_mu=True, tied=False)
    with pytest.raises(LsalsaError, match=r"Y: expected shape \(B, 64\)"):
        enc.forward_layers(Y64[:, :10])
    X_star = lsalsa.fista(mca, Y64, n_iter=50).X
    sum(0.5 * (X - X_star).pow(2).sum() for X in enc.forward_layers(Y64)).backward()  # deep supervision
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert (enc.mu_t.grad != 0).all()  # every layer's penalty, the last one through its read-out


# ---- what the learned penalties and steps compute ----------------------------------------------
def lsalsa_reference(enc, Y):
    """Algorithm 4's loop in (x, d), with layer t's S_t, mu_t and threshold."""
    mus = enc.mu_t.clamp_min(MU_FLOOR * enc.mu)
    thresholds = enc.thresholds if enc.thresholds.ndim == 2 else enc.thresholds.expand(enc.n_layers, -1)
    B = Y @ enc.W_e.T
    X, D = B, torch.zeros_like(B)
    for t in range(enc.n_layers):
        S = enc.S if enc.tied else enc.S[t]
        U = lsalsa.soft_threshold(X + D, thresholds[t])
        X = (B + mus[t] * (U - D)) @ S.T
        D = D - U + X
    return lsalsa.soft_threshold(X + D, thresholds[-1])


def lista_reference(enc, Y):
    """ISTA with layer t's step gamma_t / L: x_t = soft(gamma z + (1 - gamma) x; gamma theta),
    theta the fixed alpha_i / L or the learned thresholds."""
    gammas = enc.gamma_t.clamp_min(0)
    sizes = torch.tensor(enc.dict_sizes)
    if enc.learn_thresholds is None:
        theta = torch.repeat_interleave(torch.tensor(enc.alphas, dtype=torch.float64), sizes) / enc.lipschitz
    else:
        theta = enc.theta.clamp_min(0)
        theta = torch.repeat_interleave(theta, sizes) if enc.learn_thresholds == "dictionary" else theta
    theta = theta if theta.ndim == 2 else theta.expand(enc.n_layers, -1)  # (T, N): layer t's
    B = Y @ enc.W_e.T
    X = torch.zeros_like(B)
    for t in range(enc.n_layers):
        Z = B if t == 0 else B + X @ (enc.S if enc.tied else enc.S[t - 1]).T
        X = lsalsa.soft_threshold(gammas[t] * Z + (1 - gammas[t]) * X, gammas[t] * theta[t])
    return X


@pytest.mark.parametrize("options", LSALSA_OPTIONS)
def test_learned_mu_is_a_penalty_per_layer(options, mca, Y64):
    enc = perturbed(LSALSA.from_problem(mca, 4, mu=MU, **options))
    with torch.no_grad():
        enc.mu_t.copy_(torch.tensor([0.5, 1.0, 3.0, 8.0]))  # far from mu: each layer its own
        per_layer = options.get("learn_thresholds") in (None, "layer")
        assert enc.thresholds.shape == ((4, mca.n_atoms) if per_layer else (mca.n_atoms,))
        torch.testing.assert_close(enc(Y64), lsalsa_reference(enc, Y64), rtol=0, atol=1e-12)


def test_learned_mu_thresholds(mca):
    """Without learned thresholds, layer t's are alpha_i / mu_t; with them, theta (mu_t only
    scales the x-update)."""
    enc = LSALSA.from_problem(mca, 3, mu=MU, learn_mu=True)
    exact(enc.thresholds, (mca.thresholds / MU).expand(3, -1))
    with torch.no_grad():
        enc.mu_t.copy_(torch.tensor([1.0, 2.0, 4.0]))
    exact(enc.thresholds, mca.thresholds / torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float64))
    learned = LSALSA.from_problem(mca, 3, mu=MU, learn_mu=True, learn_thresholds="coordinate")
    with torch.no_grad():
        learned.mu_t.mul_(3.0)
    exact(learned.thresholds, mca.thresholds / MU)


@pytest.mark.parametrize("options", LISTA_OPTIONS)
def test_learned_step_is_ista_with_a_step_per_layer(options, mca, Y64):
    enc = perturbed(LISTA.from_problem(mca, 4, **options))
    with torch.no_grad():
        enc.gamma_t.copy_(torch.tensor([0.5, 1.5, 1.0, 1.9]))
        assert enc.thresholds.shape == (4, mca.n_atoms)
        torch.testing.assert_close(enc(Y64), lista_reference(enc, Y64), rtol=0, atol=1e-12)


def test_learned_step_is_istas_step_over_L(single, Y64):
    """Untrained with every gamma_t = g: ISTA with step g / L, written out."""
    g, T = 1.5, 6
    enc = LISTA.from_problem(single, T, learn_step=True)
    with torch.no_grad():
        enc.gamma_t.fill_(g)
    A, L = single.A, single.lipschitz
    X = torch.zeros(20, single.n_atoms, dtype=torch.float64)
    for _ in range(T):
        X = lsalsa.soft_threshold(X - (g / L) * (X @ A.T - Y64) @ A, g * 0.15 / L)
    torch.testing.assert_close(enc(Y64).detach(), X, rtol=0, atol=1e-12)


def test_learned_mu_and_step_stay_in_range(mca, Y64):
    """mu_t is used as max(mu_t, MU_FLOOR mu) > 0, gamma_t as max(gamma_t, 0)."""
    enc = LSALSA.from_problem(mca, 3, mu=MU, learn_mu=True)
    floor = LSALSA.from_problem(mca, 3, mu=MU, learn_mu=True)
    with torch.no_grad():
        enc.mu_t[1] = -5.0
        floor.mu_t[1] = MU_FLOOR * MU
    X = enc(Y64)
    assert torch.isfinite(X).all() and (enc.thresholds > 0).all()
    exact(X, floor(Y64))
    lista = LISTA.from_problem(mca, 3, learn_step=True)
    with torch.no_grad():
        lista.gamma_t[1] = -1.0
    assert (lista.thresholds >= 0).all()
    layers = lista.forward_layers(Y64)
    exact(layers[1], layers[0])  # a step of 0: the layer keeps its input


# ---- forward and encode ------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize(("kind", "options"), NEW_OPTIONS)
def test_encode_equals_forward(kind, options, T, mca, Y64):
    """Trained: encode's in-place layers equal forward to rounding (LSALSA's in-place update
    reads mu_t as a float, b + mu_t w, where forward computes b + mu (w mu_t / mu))."""
    enc = perturbed(build(kind, mca, T, **options))
    X, ref = enc.encode(Y64), enc(Y64).detach()
    assert not X.requires_grad and X.dtype == torch.float64
    torch.testing.assert_close(X, ref, rtol=0, atol=1e-12)
    assert torch.equal(X == 0, ref == 0)


@pytest.mark.parametrize(("kind", "options"), [("lsalsa", {"learn_mu": True}), ("lista", {"learn_step": True})])
def test_torch_compile_traces_whole_graph(kind, options, mca, Y64):
    enc = perturbed(build(kind, mca, 3, **options))
    compiled = torch.compile(enc, backend="eager", fullgraph=True)
    exact(compiled(Y64), enc(Y64))


# ---- gradients ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "options"), NEW_OPTIONS)
def test_gradients_reach_mu_and_step(kind, options, mca, Y64):
    enc = build(kind, mca, 3, **options)
    X_star = lsalsa.fista(mca, Y64, n_iter=50).X
    (0.5 * (enc(Y64) - X_star).pow(2).sum()).backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    grad = enc.mu_t.grad if kind == "lsalsa" else enc.gamma_t.grad
    assert grad.shape == (3,) and (grad != 0).all()


@pytest.mark.parametrize(("kind", "name"), [("lsalsa", "mu_t"), ("lista", "gamma_t")])
def test_gradcheck(kind, name, small):
    enc = build(kind, small, 3, **{"learn_mu" if kind == "lsalsa" else "learn_step": True})
    Y = torch.randn(4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    value = getattr(enc, name).detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: torch.func.functional_call(enc, {name: v}, (Y,)), (value,))


# ---- config, save, load, validation ------------------------------------------------------------
@pytest.mark.parametrize(("kind", "options"), NEW_OPTIONS)
def test_config_and_save_load_round_trip(kind, options, mca, Y64, tmp_path):
    enc = perturbed(build(kind, mca, 3, **options))
    config = json.loads(json.dumps(enc.config()))
    flag = "learn_mu" if kind == "lsalsa" else "learn_step"
    assert config[flag] is True
    rebuilt = type(enc).from_config(config, dtype=torch.float64)
    rebuilt.load_state_dict(enc.state_dict())
    assert rebuilt.config() == enc.config()
    assert torch.equal(rebuilt(Y64), enc(Y64))
    lsalsa.save_encoder(enc, tmp_path / "enc.pt")
    loaded = lsalsa.load_encoder(tmp_path / "enc.pt")
    assert type(loaded) is type(enc) and loaded.config() == enc.config()
    assert ("mu_t" if kind == "lsalsa" else "gamma_t") in loaded.state_dict()
    assert torch.equal(loaded(Y64), enc(Y64))
    assert torch.equal(loaded.encode(Y64), enc.encode(Y64))


def test_options_default_off(mca):
    """Without the options nothing new is learned, and configs written before them still load."""
    for enc in (LSALSA.from_problem(mca, 2), LISTA.from_problem(mca, 2)):
        assert set(dict(enc.named_parameters())) == {"W_e", "S"}
        config = enc.config()
        assert config.pop("learn_mu" if isinstance(enc, LSALSA) else "learn_step") is False
        assert type(enc).from_config(config).config() == enc.config()


def test_invalid_options(mca):
    for bad in (1, 0, "yes", None):
        with pytest.raises(LsalsaError, match="learn_mu: expected True or False"):
            LSALSA.from_problem(mca, 2, learn_mu=bad)
        with pytest.raises(LsalsaError, match="learn_step: expected True or False"):
            LISTA.from_problem(mca, 2, learn_step=bad)
    with pytest.raises(LsalsaError, match="options: not a valid LISTA configuration"):
        LISTA.from_problem(mca, 2, learn_mu=True)
    with pytest.raises(LsalsaError, match="options: not a valid LSALSA configuration"):
        LSALSA.from_problem(mca, 2, learn_step=True)
    config = {**LSALSA.from_problem(mca, 2).config(), "learn_step": True}
    with pytest.raises(LsalsaError, match="config: not a valid LSALSA configuration"):
        LSALSA.from_config(config)


# ---- grow -----------------------------------------------------------------------------------------
GROW_OPTIONS = [("lsalsa", {}), ("lsalsa", {"tied": False}), ("lista", {}), ("lista", {"tied": False}),
                ("lsalsa", {"learn_thresholds": "layer"}), ("lista", {"learn_thresholds": "layer", "tied": False}),
                *NEW_OPTIONS]


@pytest.mark.parametrize(("T0", "T"), [(1, 2), (2, 5)])
@pytest.mark.parametrize("which", ["single", "mca"])
@pytest.mark.parametrize(("kind", "options"), GROW_OPTIONS)
def test_grow_untrained_is_the_untrained_deeper_encoder(kind, options, which, T0, T, request, Y64):
    problem = request.getfixturevalue(which)
    initial = build(kind, problem, T, **options)
    grown = grow(build(kind, problem, T0, **options), initial)
    assert type(grown) is type(initial) and grown is not initial and grown.config() == initial.config()
    for name, p in grown.state_dict().items():
        assert torch.equal(p, initial.state_dict()[name]), name
    exact(grown(Y64), solver(kind, problem, Y64, T))


@pytest.mark.parametrize(("kind", "options"), GROW_OPTIONS)
def test_grow_keeps_the_trained_layers(kind, options, mca, Y64):
    T0, T = 2, 4
    trained = perturbed(build(kind, mca, T0, **options))
    initial = perturbed(build(kind, mca, T, **options), seed=1)
    before = [{k: v.clone() for k, v in enc.state_dict().items()} for enc in (trained, initial)]
    grown = grow(trained, initial)
    per_layer = grown._per_layer_parameters()
    for name, p in grown.named_parameters():
        old, new = getattr(trained, name), getattr(initial, name)
        if name in per_layer:  # trained's rows for its layers, initial's for the new ones
            n = old.shape[0]
            assert torch.equal(p[:n], old) and torch.equal(p[n:], new[n:]), name
        else:
            assert torch.equal(p, old), name
        assert p.data_ptr() not in (old.data_ptr(), new.data_ptr())
    layers, ref = grown.forward_layers(Y64), trained.forward_layers(Y64)
    assert len(layers) == T
    for t in range(T0):
        exact(layers[t], ref[t])
    with torch.no_grad():
        for p in grown.parameters():
            p.mul_(2.0)
    for enc, state in zip((trained, initial), before):  # neither input changed, nor shares memory
        assert all(torch.equal(v, state[k]) for k, v in enc.state_dict().items())


def test_grow_invalid(mca):
    lsalsa2 = LSALSA.from_problem(mca, 2, mu=MU)
    with pytest.raises(LsalsaError, match="grow: expected two encoders of one class"):
        grow(lsalsa2, LISTA.from_problem(mca, 3))
    with pytest.raises(LsalsaError, match=r"grow: the encoders' options differ \(learn_mu, tied\)"):
        grow(lsalsa2, LSALSA.from_problem(mca, 3, mu=MU, tied=False, learn_mu=True))
    with pytest.raises(LsalsaError, match=r"grow: the encoders' options differ \(mu\)"):
        grow(lsalsa2, LSALSA.from_problem(mca, 3, mu=2 * MU))
    with pytest.raises(LsalsaError, match=r"grow: the encoders' options differ \(learn_step\)"):
        grow(LISTA.from_problem(mca, 2), LISTA.from_problem(mca, 3, learn_step=True))
    for T in (1, 2):
        with pytest.raises(LsalsaError, match=f"grow: initial must have more layers than trained, got {T} <= 2"):
            grow(lsalsa2, LSALSA.from_problem(mca, T, mu=MU))
    with pytest.raises(LsalsaError, match="grow: initial: expected a LISTA or LSALSA encoder"):
        grow(lsalsa2, torch.nn.Linear(2, 2))


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
@pytest.mark.parametrize("T", [1, 2, 5])
def test_thresholds_per_layer_start_at_the_solver(kind, T, single, mca, Y64):
    """learn_thresholds="layer": theta (T, N), every row alpha_i / scale; untrained, the
    encoder is the solver, bit for bit, for one and two dictionaries."""
    for problem in (single, mca):
        enc = build(kind, problem, T, learn_thresholds="layer")
        assert enc.theta.shape == (T, problem.n_atoms)
        solver = lsalsa.salsa(problem, Y64, mu=MU, n_iter=T) if kind == "lsalsa" else lsalsa.ista(problem, Y64, n_iter=T)
        with torch.no_grad():
            torch.testing.assert_close(enc(Y64), solver.X, rtol=0, atol=0)
            torch.testing.assert_close(enc.encode(Y64), solver.X, rtol=0, atol=0)
