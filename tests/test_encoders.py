"""LISTA and LSALSA: equal to their solvers at initialisation, differentiable, saved and loaded."""
import json

import numpy as np
import pytest
import torch

import lsalsa
from lsalsa import LISTA, LSALSA, LassoProblem, LsalsaError
from lsalsa.solvers import salsa_operators

MU = 2.0


def build(kind, problem, T, **options):
    if kind == "lsalsa":
        return LSALSA.from_problem(problem, T, mu=MU, **options)
    return LISTA.from_problem(problem, T, **options)


def solver(kind, problem, Y, T):
    return lsalsa.salsa(problem, Y, mu=MU, n_iter=T).X if kind == "lsalsa" else lsalsa.ista(problem, Y, n_iter=T).X


# ---- equality with the solvers -------------------------------------------------------------
@pytest.fixture(scope="module")
def mca3(digit_atoms, dct_atoms):
    """Three dictionaries (D = 3), each with its own alpha."""
    return LassoProblem.from_dictionaries([digit_atoms[:, :30], digit_atoms[:, 30:], dct_atoms], alphas=[0.1, 0.2, 0.25])


@pytest.mark.parametrize("T", [1, 2, 5, 20])
@pytest.mark.parametrize("which", ["single", "mca", "mca3"])
def test_untrained_lsalsa_equals_salsa(T, which, request, Y64):
    """Exactly, bit for bit: the network's layers and the solver are the one iteration."""
    problem = request.getfixturevalue(which)
    with torch.no_grad():
        X = LSALSA.from_problem(problem, T, mu=MU)(Y64)
    torch.testing.assert_close(X, lsalsa.salsa(problem, Y64, mu=MU, n_iter=T).X, rtol=0, atol=0)
    assert X.dtype == torch.float64 and X.shape == (20, problem.n_atoms)


@pytest.mark.parametrize("T", [1, 2, 5, 20])
@pytest.mark.parametrize("which", ["single", "mca", "mca3"])
def test_untrained_lista_equals_ista(T, which, request, Y64):
    problem = request.getfixturevalue(which)
    with torch.no_grad():
        X = LISTA.from_problem(problem, T)(Y64)
    torch.testing.assert_close(X, lsalsa.ista(problem, Y64, n_iter=T).X, rtol=0, atol=0)


def test_default_mu_is_the_fixed_default(single, Y64):
    # salsa's own default is mu="auto" (chosen from the signals); an encoder is built before it
    # sees signals, so it takes the fixed DEFAULT_MU
    from lsalsa.solvers.salsa import DEFAULT_MU

    torch.testing.assert_close(LSALSA.from_problem(single, 3)(Y64), lsalsa.salsa(single, Y64, mu=DEFAULT_MU, n_iter=3).X)


def test_readout_x_is_the_papers_soft_of_x(mca, Y64):
    """Algorithms 3/4 print soft(x_T); the option computes exactly that."""
    T = 4
    W_e, S, _ = salsa_operators(mca, MU)
    t = mca.thresholds / MU
    B = Y64 @ W_e.T
    X, D = B, torch.zeros_like(B)
    for _ in range(T):  # Alg. 4's loop body
        U = lsalsa.soft_threshold(X + D, t)
        X = (B + MU * (U - D)) @ S.T
        D = D - U + X
    enc = LSALSA.from_problem(mca, T, mu=MU, readout="x")
    torch.testing.assert_close(enc(Y64), lsalsa.soft_threshold(X, t), rtol=0, atol=1e-12)
    # ... which is not what SALSA returns: it shrinks the fixed point a second time
    assert (enc(Y64) - lsalsa.salsa(mca, Y64, mu=MU, n_iter=T).X).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
@pytest.mark.parametrize(
    "options",
    [{"tied": False}, {"learn_thresholds": "coordinate"}, {"learn_thresholds": "dictionary"},
     {"tied": False, "learn_thresholds": "dictionary"}],
)
def test_options_at_init_equal_the_papers_model(kind, options, mca, Y64):
    T = 3
    X = build(kind, mca, T, **options)(Y64)
    torch.testing.assert_close(X, build(kind, mca, T)(Y64), rtol=0, atol=1e-12)


def test_untied_shapes(single):
    N = single.n_atoms
    assert LSALSA.from_problem(single, 4, tied=False).S.shape == (4, N, N)
    assert LISTA.from_problem(single, 4, tied=False).S.shape == (3, N, N)  # layer 1 sees x_0 = 0
    assert LSALSA.from_problem(single, 4).S.shape == (N, N)
    assert LSALSA.from_problem(single, 4).W_e.shape == (N, 64)


# ---- gradients -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
@pytest.mark.parametrize("options", [{}, {"tied": False, "learn_thresholds": "coordinate"}])
def test_gradients_reach_parameters(kind, options, mca, Y64):
    enc = build(kind, mca, 3, **options)
    X_star = lsalsa.fista(mca, Y64, n_iter=50).X
    (0.5 * (enc(Y64) - X_star).pow(2).sum()).backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    if options.get("tied") is False:
        assert not torch.equal(enc.S.grad[0], enc.S.grad[1])  # each layer learns its own S


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_gradcheck(kind, small):
    enc = build(kind, small, 3)
    Y = torch.randn(4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    names = ("W_e", "S")

    def f(W_e, S):
        return torch.func.functional_call(enc, dict(zip(names, (W_e, S))), (Y,))

    inputs = tuple(getattr(enc, n).detach().clone().requires_grad_() for n in names)
    # soft-thresholding has kinks; one input sits 1e-5 from one, so finite differences use a
    # step well below that
    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-5)


def test_gradcheck_learned_thresholds(small):
    enc = LSALSA.from_problem(small, 3, mu=MU, learn_thresholds="dictionary")
    Y = torch.randn(4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    theta = enc.theta.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: torch.func.functional_call(enc, {"theta": t}, (Y,)), (theta,))


def test_learned_thresholds_stay_nonnegative(single, Y64):
    enc = LSALSA.from_problem(single, 2, mu=MU, learn_thresholds="coordinate")
    with torch.no_grad():
        enc.theta[:5] = -1.0
    assert (enc.thresholds >= 0).all() and (enc.thresholds[:5] == 0).all()
    ref = LSALSA.from_problem(single, 2, mu=MU, learn_thresholds="coordinate")
    with torch.no_grad():
        ref.theta[:5] = 0.0
    torch.testing.assert_close(enc(Y64), ref(Y64), rtol=0, atol=0)  # used as max(theta, 0)


# ---- dtype, device, modes ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_follows_dtype(kind, mca, Y64):
    enc64 = build(kind, mca, 5)
    enc32 = build(kind, mca.to(dtype=torch.float32), 5)
    assert enc32.W_e.dtype == torch.float32
    X32 = enc32(Y64.float())
    assert X32.dtype == torch.float32
    torch.testing.assert_close(X32.double(), enc64(Y64), rtol=0, atol=1e-4)
    moved = build(kind, mca, 5).to(torch.float32)
    assert moved(Y64.float()).dtype == torch.float32
    with pytest.raises(LsalsaError, match=r"Y: dtype torch.float32 does not match the encoder's torch.float64"):
        enc64(Y64.float())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_cuda_matches_cpu(kind, mca, Y64):
    enc = build(kind, mca, 5)
    gpu = build(kind, mca, 5).to("cuda")(Y64.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), enc(Y64), rtol=1e-9, atol=1e-11)


def test_inference_mode(single, Y64):
    enc = LSALSA.from_problem(single, 3, mu=MU)
    with torch.inference_mode():
        X = enc(Y64)
    assert not X.requires_grad
    torch.testing.assert_close(X, lsalsa.salsa(single, Y64, mu=MU, n_iter=3).X)


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_torch_compile_traces_whole_graph(kind, mca, Y64):
    # the "eager" backend checks that dynamo captures forward without a graph break, in seconds
    enc = build(kind, mca, 3, learn_thresholds="dictionary")
    compiled = torch.compile(enc, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(Y64), enc(Y64), rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_torch_compile_inductor(kind, mca, Y64):
    enc = build(kind, mca, 3)
    compiled = torch.compile(enc, fullgraph=True)
    torch.testing.assert_close(compiled(Y64), enc(Y64), rtol=1e-12, atol=1e-12)


# ---- the inference fast path: encode ---------------------------------------------------------
ENCODE_OPTIONS = [{}, {"tied": False}, {"learn_thresholds": "coordinate"}, {"learn_thresholds": "dictionary"}]


def perturbed(enc, seed=0):
    """The encoder with parameters moved off their solver values, as training would (untied
    layers then differ from each other)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return enc


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
@pytest.mark.parametrize("options", ENCODE_OPTIONS)
@pytest.mark.parametrize("T", [1, 2, 7])
@pytest.mark.parametrize("which", ["single", "mca"])
def test_encode_equals_forward_float64(kind, options, T, which, request, Y64):
    """Same layers, reassociated in-place arithmetic: equal to rounding (float64)."""
    enc = perturbed(build(kind, request.getfixturevalue(which), T, **options))
    X = enc.encode(Y64)
    ref = enc(Y64)
    assert X.dtype == torch.float64 and X.shape == ref.shape and not X.requires_grad
    torch.testing.assert_close(X, ref.detach(), rtol=0, atol=1e-12)
    assert torch.equal(X == 0, ref == 0)  # the same support


@pytest.mark.parametrize("T", [1, 3, 20])
def test_encode_untrained_equals_solvers(T, mca, Y64):
    torch.testing.assert_close(LSALSA.from_problem(mca, T, mu=MU).encode(Y64),
                               lsalsa.salsa(mca, Y64, mu=MU, n_iter=T).X, rtol=0, atol=1e-12)
    torch.testing.assert_close(LISTA.from_problem(mca, T).encode(Y64),
                               lsalsa.ista(mca, Y64, n_iter=T).X, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
@pytest.mark.parametrize("options", [{}, {"tied": False, "learn_thresholds": "coordinate"}])
def test_encode_equals_forward_float32(kind, options, mca, Y64):
    enc = perturbed(build(kind, mca.to(dtype=torch.float32), 10, **options))
    Y = Y64.float()
    X, ref = enc.encode(Y), enc(Y).detach()
    assert X.dtype == torch.float32
    # float32 rounding, reassociated, over 10 layers: ~1e-6 of the codes' scale
    torch.testing.assert_close(X, ref, rtol=0, atol=2e-6 * float(ref.abs().max()))


def test_encode_readout_x(mca, Y64):
    enc = perturbed(LSALSA.from_problem(mca, 4, mu=MU, readout="x"))
    torch.testing.assert_close(enc.encode(Y64), enc(Y64).detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_encode_leaves_inputs_and_parameters_alone(kind, mca, Y64):
    enc = perturbed(build(kind, mca, 3))
    Y = Y64.clone()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    X1 = enc.encode(Y)
    X2 = enc.encode(Y)
    assert torch.equal(Y, Y64) and torch.equal(X1, X2) and X1.data_ptr() != X2.data_ptr()
    assert all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())
    with torch.no_grad():  # a parameter update is seen by the next call: nothing is cached
        enc.S.mul_(0.5)
    torch.testing.assert_close(enc.encode(Y), enc(Y).detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_encode_edge_batches(kind, single, Y64):
    enc = build(kind, single, 3)
    assert enc.encode(Y64[:0]).shape == (0, single.n_atoms)
    torch.testing.assert_close(enc.encode(Y64[:1]), enc(Y64[:1]).detach(), rtol=0, atol=1e-12)
    Yt = Y64.T.contiguous().T  # column-major input
    torch.testing.assert_close(enc.encode(Yt), enc(Y64).detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
@pytest.mark.parametrize("T", [1, 5, 20])
def test_encode_bfloat16_within_tolerance(kind, T, mca, Y64):
    """bf16 products (8 significant bits; the iterates stay float32): the codes stay within 5%
    (LISTA) or 15% (LSALSA, whose x = S (b + mu w) amplifies the rounding by cond(S) ~ 30 here)
    relative RMSE of float32's."""
    enc = build(kind, mca.to(dtype=torch.float32), T)
    Y = Y64.float()
    X = enc.encode(Y, dtype=torch.bfloat16)
    ref = enc.encode(Y)
    assert X.dtype == torch.float32 and enc.W_e.dtype == torch.float32
    assert float(torch.linalg.norm(X - ref) / torch.linalg.norm(ref)) < (0.15 if kind == "lsalsa" else 0.05)


def test_encode_dtype_cast_float32_of_float64_encoder(mca, Y64):
    enc = build("lsalsa", mca, 5)
    X = enc.encode(Y64, dtype=torch.float32)
    assert X.dtype == torch.float64
    torch.testing.assert_close(X, enc(Y64).detach(), rtol=0, atol=1e-5)


def test_encode_validates(single, Y64):
    enc = LSALSA.from_problem(single, 2)
    with pytest.raises(LsalsaError, match=r"Y: expected shape \(B, 64\), got \(20, 63\)"):
        enc.encode(Y64[:, :63])
    with pytest.raises(LsalsaError, match="Y: dtype torch.float32 does not match"):
        enc.encode(Y64.float())
    for bad in (torch.int32, "bfloat16", np.float32):
        with pytest.raises(LsalsaError, match="dtype: expected None or a floating torch.dtype"):
            enc.encode(Y64, dtype=bad)
    with pytest.raises(LsalsaError, match="compile: not supported with dtype"):
        enc.encode(Y64, dtype=torch.float32, compile=True)
    with pytest.raises(LsalsaError, match="compile: Unrecognized mode=fast"):
        enc.encode(Y64, compile="fast")
    with pytest.raises(LsalsaError, match="compile: expected True, False or a torch.compile mode"):
        enc.encode(Y64, compile=1)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_encode_compiled(kind, mca, Y64):
    """torch.compile (inductor) of the layers: tens of seconds on CPU, hence slow."""
    enc = perturbed(build(kind, mca, 3, tied=False))
    torch.testing.assert_close(enc.encode(Y64, compile=True), enc(Y64).detach(), rtol=0, atol=1e-12)
    with torch.no_grad():  # parameters are inputs of the compiled code, not constants in it
        enc.S.mul_(0.5)
    torch.testing.assert_close(enc.encode(Y64, compile=True), enc(Y64).detach(), rtol=0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_cuda_encode_compiled_cuda_graph(kind, mca, Y64):
    """compile="reduce-overhead" replays a CUDA graph whose output memory the next replay
    reuses: codes returned earlier must survive later calls."""
    enc = perturbed(build(kind, mca, 4)).to(device="cuda", dtype=torch.float32)
    Y = Y64.float().cuda()
    first = [enc.encode(Y[:16] * s, compile="reduce-overhead") for s in (1.0, 2.0, 1.0, 2.0)]
    for X, s in zip(first, (1.0, 2.0, 1.0, 2.0)):
        torch.testing.assert_close(X, enc(Y[:16] * s).detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
@pytest.mark.parametrize("options", [{}, {"tied": False, "learn_thresholds": "coordinate"}])
def test_cuda_encode_matches_forward(kind, options, mca, Y64):
    enc = perturbed(build(kind, mca, 5, **options)).to("cuda")
    X = enc.encode(Y64.cuda())
    assert X.device.type == "cuda"
    torch.testing.assert_close(X.cpu(), enc(Y64.cuda()).detach().cpu(), rtol=0, atol=1e-12)
    enc32 = enc.to(torch.float32)
    Xb = enc32.encode(Y64.cuda().float(), dtype=torch.bfloat16)
    ref = enc32.encode(Y64.cuda().float())
    assert float(torch.linalg.norm(Xb - ref) / torch.linalg.norm(ref)) < (0.15 if kind == "lsalsa" else 0.05)


# ---- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize("n_layers", [0, -1, 1.5, True, "3"])
@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
def test_bad_n_layers(kind, n_layers, single):
    with pytest.raises(LsalsaError, match="n_layers: expected an integer"):
        build(kind, single, n_layers)


@pytest.mark.parametrize("mu", [0.0, -1.0, float("nan"), "ten"])
def test_bad_mu(mu, single):
    with pytest.raises(LsalsaError, match="mu: expected"):
        LSALSA.from_problem(single, 2, mu=mu)


def test_bad_construction(single):
    with pytest.raises(LsalsaError, match="problem: expected a LassoProblem"):
        LSALSA.from_problem(np.eye(3), 2)
    with pytest.raises(LsalsaError, match="readout: expected one of"):
        LSALSA.from_problem(single, 2, readout="soft")
    with pytest.raises(LsalsaError, match="learn_thresholds: expected one of"):
        LISTA.from_problem(single, 2, learn_thresholds="atom")
    with pytest.raises(LsalsaError, match="tied: expected True or False"):
        LISTA.from_problem(single, 2, tied=1)
    with pytest.raises(LsalsaError, match="dict_sizes: expected positive sizes summing to n_atoms=8"):
        LSALSA(4, 8, 2, dict_sizes=[4, 3])
    with pytest.raises(LsalsaError, match="alphas: expected finite numbers >= 0"):
        LSALSA(4, 8, 2, alphas=-0.1)
    with pytest.raises(LsalsaError, match="alphas: expected 1 or 2 values"):
        LSALSA(4, 8, 2, alphas=[0.1, 0.2, 0.3], dict_sizes=[4, 4])
    with pytest.raises(LsalsaError, match="lipschitz: expected"):
        LISTA(4, 8, 2, lipschitz=0)


def test_bad_input(single, Y64):
    enc = LSALSA.from_problem(single, 2)
    with pytest.raises(LsalsaError, match=r"Y: expected shape \(B, 64\), got \(20, 63\)"):
        enc(Y64[:, :63])
    with pytest.raises(LsalsaError, match=r"Y: expected shape \(B, 64\), got \(64,\)"):
        enc(Y64[0])
    with pytest.raises(LsalsaError, match="Y: expected a torch tensor"):
        enc(Y64.numpy())


# ---- config, save, load -----------------------------------------------------------------------
OPTIONS = [{}, {"tied": False, "learn_thresholds": "coordinate"}, {"learn_thresholds": "dictionary"}]


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
@pytest.mark.parametrize("options", OPTIONS)
def test_config_round_trip(kind, options, mca, Y64):
    enc = build(kind, mca, 3, **options)
    config = json.loads(json.dumps(enc.config()))  # JSON-able
    rebuilt = type(enc).from_config(config, dtype=torch.float64)
    rebuilt.load_state_dict(enc.state_dict())
    assert rebuilt.config() == enc.config()
    torch.testing.assert_close(rebuilt(Y64), enc(Y64), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["lsalsa", "lista"])
@pytest.mark.parametrize("options", OPTIONS)
def test_save_load_round_trip(kind, options, mca, Y64, tmp_path):
    enc = build(kind, mca, 3, **options)
    with torch.no_grad():  # make it differ from any freshly built encoder
        enc.S.mul_(1.01)
    path = tmp_path / "enc.pt"
    lsalsa.save_encoder(enc, path)
    loaded = lsalsa.load_encoder(path)
    assert type(loaded) is type(enc) and loaded.config() == enc.config()
    assert loaded.W_e.dtype == torch.float64
    assert torch.equal(loaded(Y64), enc(Y64))
    assert [p.name for p in tmp_path.iterdir()] == ["enc.pt"]  # no temporary file left behind


def test_save_load_float32(single, tmp_path):
    enc = LISTA.from_problem(single.to(dtype=torch.float32), 2)
    lsalsa.save_encoder(enc, tmp_path / "e.pt")
    assert lsalsa.load_encoder(tmp_path / "e.pt").W_e.dtype == torch.float32


def test_save_rejects_unregistered_module(tmp_path):
    with pytest.raises(LsalsaError, match="encoder: expected an encoder of class"):
        lsalsa.save_encoder(torch.nn.Linear(3, 4), tmp_path / "x.pt")


class _Evil:
    """Unpickling this would create a file: a stand-in for code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _bad_files(tmp_path, good):
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a torch file" * 10)
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"format": "lsalsa-encoder", "version": 99}, tmp_path / "future.pt")
    torch.save({"format": "lsalsa-encoder", "version": 1, "class": "Transformer", "config": {}}, tmp_path / "class.pt")
    obj = torch.load(good, weights_only=True)
    obj["state_dict"] = {"W_e": torch.zeros(2, 2)}
    torch.save(obj, tmp_path / "shapes.pt")
    torch.save({"format": "lsalsa-encoder", "version": 1, "evil": _Evil(tmp_path / "PWNED")}, tmp_path / "evil.pt")
    return ["truncated", "garbage", "text", "foreign", "tensor", "future", "class", "shapes", "evil", "missing"]


def test_bad_files_raise_naming_the_file(single, tmp_path):
    good = tmp_path / "good.pt"
    lsalsa.save_encoder(LSALSA.from_problem(single, 2), good)
    for name in _bad_files(tmp_path, good):
        path = tmp_path / f"{name}.pt"
        with pytest.raises(LsalsaError, match=f"{name}.pt"):
            lsalsa.load_encoder(path)
    assert not (tmp_path / "PWNED").exists()  # loading never ran code from the file


# ---- metric ------------------------------------------------------------------------------------
def test_code_rmse():
    X = torch.zeros(2, 3, dtype=torch.float64)
    X_star = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -2.0]], dtype=torch.float64)
    assert lsalsa.code_rmse(X, X_star) == pytest.approx(np.sqrt(5 / 6))
    assert lsalsa.code_rmse(X_star.numpy(), X_star) == 0.0
    with pytest.raises(LsalsaError, match="X, X_star: expected two"):
        lsalsa.code_rmse(X[:1], X_star)
