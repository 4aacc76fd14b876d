"""Whole-picture separation, model files and the ``lsalsa separate`` command."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.fft import idctn

import lsalsa
from lsalsa.bundle import SeparationModel, load_model, save_model
from lsalsa.cli import main
from lsalsa.data.gray import to_gray_float
from lsalsa.errors import LsalsaError
from lsalsa.evaluation import psnr
from lsalsa.separation import patch_grid, read_image, separate_image, to_gray

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def identity_model(p: int) -> SeparationModel:
    # A = I, alpha = 0: one ISTA step (L = 1) returns y exactly, so the model is the identity.
    problem = lsalsa.LassoProblem(torch.eye(p * p, dtype=torch.float64), alphas=0.0)
    return SeparationModel(problem, "ista", p, n_iter=1)


@pytest.fixture(scope="module")
def sparse_mixture():
    """A 48x64 picture tiled by 8x8 patches, each exactly 4-sparse in the 2-D DCT (a smooth
    source) plus 2-sparse in the Dirac basis (spikes): MCA's textbook pair of morphologies."""
    p = 8
    dct = np.stack([idctn(np.eye(64)[k].reshape(p, p), norm="ortho").ravel() for k in range(64)], axis=1)
    rng = np.random.default_rng(0)
    smooth, spikes = np.zeros((48, 64)), np.zeros((48, 64))
    for r in range(0, 48, p):
        for c in range(0, 64, p):
            x = np.zeros(64)
            x[0] = 4.0
            k = rng.choice(np.arange(1, 16), 3, replace=False)
            x[k] = rng.uniform(0.3, 0.6, 3) * rng.choice([-1, 1], 3)
            smooth[r:r + p, c:c + p] = (dct @ x).reshape(p, p)
            spikes[r:r + p, c:c + p].flat[rng.choice(64, 2, replace=False)] = rng.uniform(0.5, 1.0, 2)
    problem = lsalsa.LassoProblem.from_dictionaries([torch.from_numpy(dct), torch.eye(64, dtype=torch.float64)],
                                                    alphas=[0.01, 0.01])
    return problem, smooth, spikes


@pytest.fixture(scope="module")
def lsalsa_model(mca):
    # 8x8 digits (scikit-learn) with two dictionaries: an untrained LSALSA is enough for files
    encoder = lsalsa.LSALSA.from_problem(mca, 3, mu=1.0)
    return SeparationModel(mca, "lsalsa", 8, input_scale=1.0, names=("digits", "dct"), encoder=encoder)


@pytest.mark.parametrize("shape, stride", [((37, 51), 1), ((37, 51), 3), ((40, 40), 8), ((8, 30), 5)])
def test_reassembly_is_exact_for_the_identity(shape, stride):
    img = np.random.default_rng(1).random(shape)
    sep = separate_image(img, identity_model(8), stride=stride, batch_size=7)
    np.testing.assert_allclose(sep.sources[0], img, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sep.residual, 0, atol=1e-12)


def test_patch_grid_covers_every_pixel_with_a_last_flush_row():
    corners = patch_grid((37, 51), 8, 8)
    assert sorted(set(corners[:, 0])) == [0, 8, 16, 24, 29]
    assert sorted(set(corners[:, 1])) == [0, 8, 16, 24, 32, 40, 43]


@pytest.mark.parametrize("method", ["fista", "salsa"])
def test_exactly_sparse_sources_are_recovered(sparse_mixture, method):
    problem, smooth, spikes = sparse_mixture
    mixture = smooth + spikes  # in [0.13, 1.58]: stored as a picture at half, input_scale = 2
    model = SeparationModel(problem, method, 8, input_scale=2.0, names=("smooth", "spikes"))
    sep = separate_image(mixture / 2.0, model, stride=8)
    # measured: 52.2 dB and 55.2 dB with alpha = 0.01 (the lasso's bias alpha is all that is left)
    assert psnr(sep.sources[0], smooth) > 45
    assert psnr(sep.sources[1], spikes) > 45
    np.testing.assert_allclose(sep.mixture, mixture, atol=1e-12)


def test_colour_is_converted_like_the_training_data():
    rgb = np.random.default_rng(2).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    np.testing.assert_allclose(to_gray(rgb), to_gray_float(rgb), atol=1e-6)
    np.testing.assert_allclose(to_gray(rgb.astype(np.float64) / 255), to_gray_float(rgb), atol=1e-6)


def test_png_round_trip(tmp_path):
    img = np.random.default_rng(3).integers(0, 256, (20, 24), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "g.png")
    Image.fromarray(np.stack([img] * 3, axis=2)).save(tmp_path / "c.png")
    np.testing.assert_allclose(read_image(tmp_path / "g.png"), img / 255.0, atol=1e-7)
    np.testing.assert_allclose(read_image(tmp_path / "c.png"), img / 255.0, atol=1e-5)


def test_model_file_round_trip(tmp_path, lsalsa_model, digits):
    path = tmp_path / "m.model"
    save_model(lsalsa_model, path)
    loaded = load_model(path)
    assert loaded.method == "lsalsa" and loaded.patch_size == 8 and loaded.names == ("digits", "dct")
    img = digits[:12].reshape(12, 8, 8).transpose(1, 0, 2).reshape(8, 96)
    a = separate_image(img, lsalsa_model, stride=2)
    b = separate_image(img, path, stride=2)
    np.testing.assert_array_equal(a.sources, b.sources)
    # the stored encoder is LSALSA at initialisation: the same as 3 SALSA iterations
    solver = SeparationModel(lsalsa_model.problem, "salsa", 8, names=("digits", "dct"), n_iter=3, mu=1.0)
    np.testing.assert_allclose(separate_image(img, solver, stride=2).sources, a.sources, atol=1e-10)


def test_model_file_errors(tmp_path, lsalsa_model, mca):
    path = tmp_path / "m.model"
    save_model(lsalsa_model, path)
    blob = path.read_bytes()
    (tmp_path / "cut.model").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(LsalsaError, match="cut.model: not a readable lsalsa file"):
        load_model(tmp_path / "cut.model")
    lsalsa.save_encoder(lsalsa_model.encoder, tmp_path / "enc.pt")
    with pytest.raises(LsalsaError, match="expected an lsalsa file of format lsalsa-model"):
        load_model(tmp_path / "enc.pt")
    obj = torch.load(path, weights_only=True)
    del obj["patch_size"]
    torch.save(obj, tmp_path / "partial.model")
    with pytest.raises(LsalsaError, match="partial.model: not a complete lsalsa model .missing 'patch_size'"):
        load_model(tmp_path / "partial.model")
    obj = torch.load(path, weights_only=True)
    obj["patch_size"] = 7
    torch.save(obj, tmp_path / "p7.model")
    with pytest.raises(LsalsaError, match="p7.model: .*patch_size 7 gives 49 pixels, but the dictionaries have 64"):
        load_model(tmp_path / "p7.model")
    obj = torch.load(path, weights_only=True)
    obj["dictionaries"] = obj["dictionaries"][:1]
    obj["alphas"], obj["names"] = obj["alphas"][:1], obj["names"][:1]
    torch.save(obj, tmp_path / "onedict.model")
    with pytest.raises(LsalsaError, match="onedict.model: .*the encoder codes 64-pixel signals with dictionaries of sizes"):
        load_model(tmp_path / "onedict.model")
    with pytest.raises(LsalsaError, match="2 source names for 1 dictionaries"):
        SeparationModel(lsalsa.LassoProblem(mca.A, 0.1), "fista", 8, names=("a", "b"))
    with pytest.raises(LsalsaError, match="method 'lsalsa' needs a trained LSALSA encoder"):
        SeparationModel(mca, "lsalsa", 8)
    with pytest.raises(LsalsaError, match="input_scale must be a finite number > 0"):
        SeparationModel(mca, "fista", 8, input_scale=0.0)


@pytest.mark.parametrize("kwargs, image, message", [
    ({}, np.zeros((6, 40)), "the model's 8x8 patches do not fit a picture of 6x40 pixels"),
    ({"stride": 0}, np.zeros((16, 16)), "stride: expected an integer >= 1, got 0"),
    ({"stride": 9}, np.zeros((16, 16)), "stride: expected 1 <= stride <= patch size 8, got 9"),
    ({"patch_size": 10}, np.zeros((16, 16)), "patch_size: the model codes 8x8 patches, got patch_size=10"),
    ({}, np.full((16, 16), np.nan), "image: contains NaN or Inf"),
    ({}, np.full((16, 16), 3.0), r"image: float pixels must lie in \[0, 1\]"),
    ({}, np.zeros((16, 16, 2)), r"image: expected shape \(h, w\), \(h, w, 3\) or \(h, w, 4\)"),
])
def test_separate_errors(kwargs, image, message):
    with pytest.raises(LsalsaError, match=message):
        separate_image(image, identity_model(8), **kwargs)


def _separate_digit_strip(tmp_path, model, digits):
    """``lsalsa separate`` of six digits side by side (8 x 48) with ``model``; the output dir."""
    save_model(model, tmp_path / "m.model")
    img = digits[:6].reshape(6, 8, 8).transpose(1, 0, 2).reshape(8, 48)
    Image.fromarray((img * 255).round().astype(np.uint8)).save(tmp_path / "mix.png")
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "mix.png"), "--model", str(tmp_path / "m.model"), "--stride", "4",
                 "--out", str(out)]) == 0
    return out


def test_cli_separate_writes_sources_reconstruction_and_figure(tmp_path, lsalsa_model, digits, capsys):
    out = _separate_digit_strip(tmp_path, lsalsa_model, digits)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["reconstruction.png", "separation.png", "source1_digits.png", "source2_dct.png"]
    for name in names:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert np.asarray(Image.open(out / "source1_digits.png")).shape == (8, 48)
    assert "separated 48x8 pixels" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["separate", "missing.png", "--model", "MODEL", "--out", "o"], "missing.png: no such image file"),
    (["separate", "BAD", "--model", "MODEL", "--out", "o"], "cannot be read as an image"),
    (["separate", "MIX", "--model", "MODEL", "--out", "o", "--stride", "0"], "stride: expected an integer >= 1"),
    (["separate", "MIX", "--model", "MIX", "--out", "o"], "not a readable lsalsa file"),
])
def test_cli_separate_errors_are_one_line(tmp_path, lsalsa_model, capsys, argv, message):
    save_model(lsalsa_model, tmp_path / "m.model")
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp_path / "mix.png")
    (tmp_path / "bad.png").write_text("not an image")
    subst = {"MODEL": str(tmp_path / "m.model"), "MIX": str(tmp_path / "mix.png"), "BAD": str(tmp_path / "bad.png"),
             "missing.png": str(tmp_path / "missing.png"), "o": str(tmp_path / "o")}
    assert main([subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lsalsa: error: ") and message in err and err.count("\n") == 1


def test_float_and_32_bit_tiffs_read_as_their_values(tmp_path):
    """Pillow's mode F (float TIFF) read near-black and mode I (int32) all white through RGB."""
    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp, mode="F").save(tmp_path / "f.tif")
    np.testing.assert_allclose(read_image(tmp_path / "f.tif"), ramp, atol=1e-7)
    Image.fromarray((ramp * 65535).round().astype(np.int32), mode="I").save(tmp_path / "i.tif")
    np.testing.assert_allclose(read_image(tmp_path / "i.tif"), ramp, atol=1 / 65535)
    Image.fromarray(ramp * 3, mode="F").save(tmp_path / "f3.tif")
    with pytest.raises(LsalsaError, match=r"float pixels must lie in \[0, 1\], got \[0, 3\]"):
        read_image(tmp_path / "f3.tif")
    Image.fromarray(np.full((8, 8), 70000, dtype=np.int32), mode="I").save(tmp_path / "big.tif")
    with pytest.raises(LsalsaError, match=r"big.tif: 32-bit integer pixels in \[70000, 70000\], outside the 16-bit range"):
        read_image(tmp_path / "big.tif")


def test_sources_are_written_in_the_pictures_units(tmp_path, lsalsa_model, digits, capsys):
    """Sources are written in the picture's units (model units / input_scale, 2 here as in the
    demo's models): where nothing is clipped they add up to the reconstruction, and the log says
    how much was clipped."""
    import dataclasses

    lsalsa_model = dataclasses.replace(lsalsa_model, input_scale=2.0)  # as the demo's models
    out = _separate_digit_strip(tmp_path, lsalsa_model, digits)
    read = {n: np.asarray(Image.open(out / f"{n}.png"), dtype=np.float64) / 255
            for n in ("source1_digits", "source2_dct", "reconstruction")}
    sep = separate_image(read_image(tmp_path / "mix.png"), lsalsa_model, stride=4)
    for name, src in zip(("source1_digits", "source2_dct"), sep.sources):
        np.testing.assert_allclose(read[name], np.clip(src / sep.input_scale, 0, 1), atol=0.5 / 255 + 1e-9)
    raw = [src / sep.input_scale for src in sep.sources]
    inside = ((raw[0] >= 0) & (raw[0] <= 1) & (raw[1] >= 0) & (raw[1] <= 1) & (raw[0] + raw[1] <= 1))
    assert inside.mean() > 0.2  # the synthetic DCT source is signed: only these pixels are unclipped
    np.testing.assert_allclose((read["source1_digits"] + read["source2_dct"])[inside], read["reconstruction"][inside],
                               atol=1.5 / 255)
    log = capsys.readouterr().out
    assert "sources are written in the picture's units (they add up to reconstruction.png)" in log
