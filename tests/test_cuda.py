"""Solvers and whole-picture separation on a CUDA device give the CPU's results (run: -m gpu)."""
import numpy as np
import pytest
import torch

import lsalsa
from lsalsa.bundle import SeparationModel

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("solver, kw", [("ista", {}), ("fista", {}), ("salsa", {"mu": 1.0})])
def test_solvers_on_cuda_match_cpu(mca, Y64, solver, kw):
    run = lsalsa.SOLVERS[solver]
    cpu = run(mca, Y64, n_iter=50, **kw).X
    gpu = run(mca.to("cuda"), Y64.cuda(), n_iter=50, **kw).X
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-10)


def test_converged_salsa_on_cuda_satisfies_kkt(mca, Y64):
    res = lsalsa.salsa(mca.to("cuda"), Y64.cuda(), mu=1.0, tol=1e-10, max_iter=20_000)
    assert res.converged
    assert float(mca.to("cuda").kkt_violation(res.X, Y64.cuda()).max()) < 1e-7


def test_separation_on_cuda_matches_cpu(mca, digits):
    encoder = lsalsa.LSALSA.from_problem(mca, 3, mu=1.0)
    model = SeparationModel(mca, "lsalsa", 8, names=("digits", "dct"), encoder=encoder)
    img = digits[:12].reshape(12, 8, 8).transpose(1, 0, 2).reshape(8, 96)
    cpu = lsalsa.separate_image(img, model, stride=2)
    gpu = lsalsa.separate_image(img, model.to("cuda"), stride=2)
    np.testing.assert_allclose(gpu.sources, cpu.sources, rtol=0, atol=1e-10)
