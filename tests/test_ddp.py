"""train_encoder on torch.distributed (lsalsa.ddp): two ranks (gloo, CPU, float64) against one
process at twice the batch, a rank killed mid-epoch and restarted by torchrun, and the errors.

This file is also the script torchrun starts (``python tests/test_ddp.py OUT SCENARIO...``): each
rank trains the scenarios in turn and saves its parameters and history to ``OUT``; the tests
compare them with one process trained here on the same data.
"""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

from lsalsa import LSALSA, LassoProblem, LsalsaError, TrainConfig, train_encoder
from lsalsa.ddp import Ranks, shard
from lsalsa.training_data import Tensors, epoch_batches

pytestmark = pytest.mark.usefixtures("one_thread")  # the one-process references, as each rank

B = 20  # the per-rank batch: 100 signals per rank, 5 steps an epoch
KILL_AT = 13  # rank 1's 13th training step, the third of epoch 3, kills it (first attempt only)
SCENARIOS = {
    # lr="auto" (rank 0's range test), warm-up, clipping, stopped by rel_tol, best on validation
    "recipe": dict(epochs=12, lr="auto", lr_test_steps=2, warmup=4, rel_tol=0.02, seed=3),
    # a NaN on one rank (its S at step 7, epoch 2): both roll the epoch back, at a tenth of the rate
    "rollback": dict(epochs=3, lr=1e-3, warmup=0, rel_tol=0),
    # checkpointed every epoch: the uninterrupted run of the kill test
    "checkpointed": dict(epochs=5, lr=1e-3, warmup=2, rel_tol=0),
    # a callback that asks to stop after epoch 2 on rank 1 only: both ranks stop
    "callback": dict(epochs=6, lr=1e-3, rel_tol=0),
    # 199 signals on 2 ranks: 99 each (5 steps), the permutation's last one left out, said once
    "odd": dict(epochs=2, lr=1e-3, rel_tol=0),
}
SCENARIOS["killed"] = SCENARIOS["checkpointed"]  # the last: its first attempt dies
POISON_AT = 7


def task():
    """A random problem (M=12, N=16) and 200 training, 51 validation pairs (an odd count: the
    ranks' validation parts differ in size), float64."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(12, 16, generator=g, dtype=torch.float64)
    A /= torch.linalg.vector_norm(A, dim=0)
    X = torch.randn(251, 16, generator=g, dtype=torch.float64) * (torch.rand(251, 16, generator=g) < 0.2)
    Y = X @ A.T + 0.01 * torch.randn(251, 12, generator=g, dtype=torch.float64)
    return LassoProblem(A, alphas=0.1), Y[:200], X[:200], Y[200:], X[200:]


def hook_at(encoder, at_call, action):
    """Run ``action(encoder)`` before the ``at_call``-th training forward (gradients on)."""
    calls = {"n": 0}

    def hook(module, args):
        if module.training and torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == at_call:
                action(module)

    encoder.register_forward_pre_hook(hook)


def poison(module):
    with torch.no_grad():
        module.S.fill_(float("nan"))


def train(name, batch_size, checkpoint=None, distributed=False, rank=0):
    """One scenario's run: ``(encoder, history, the messages of distributed warnings)``."""
    problem, Y, X, Y_val, X_val = task()
    enc = LSALSA.from_problem(problem, 2, mu=1.0, tied=False)
    if name == "rollback" and (rank == 1 or not distributed):  # rank 1 of two, or the one process
        hook_at(enc, POISON_AT, poison)
    if name == "killed" and rank == 1 and os.environ["TORCHELASTIC_RESTART_COUNT"] == "0":
        hook_at(enc, KILL_AT, lambda m: os.kill(os.getpid(), signal.SIGKILL))
    if name == "odd":
        Y, X = Y[:199], X[:199]
    config = TrainConfig(batch_size=batch_size, **SCENARIOS[name])
    stop = [lambda state: state.epoch == 2] if name == "callback" and (rank == 1 or not distributed) else []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train_encoder(enc, Y, X, config, val=(Y_val, X_val), callbacks=stop, checkpoint=checkpoint,
                                resume=checkpoint is not None, distributed=distributed)
    return enc, history, [str(w.message) for w in caught if "distributed" in str(w.message)]


def worker(out: Path, names: list[str]) -> None:
    """A rank's part: every scenario, its results saved to ``out/<name>.rank<r>.pt``; a restarted
    attempt skips the scenarios both ranks finished."""
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    for name in names:
        if all((out / f"{name}.rank{r}.pt").exists() for r in (0, 1)):
            continue
        ckpt = out / f"{name}.ckpt" if name in ("checkpointed", "killed") else None
        enc, history, warned = train(name, B, ckpt, distributed=True, rank=rank)
        torch.save({"params": enc.state_dict(), "history": dataclasses.asdict(history), "warnings": warned,
                    "restarts": int(os.environ["TORCHELASTIC_RESTART_COUNT"])}, out / f"{name}.rank{rank}.pt")


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """The scenarios trained on two ranks of this file under one torchrun (a free port:
    --standalone; one thread each) that restarts once: rank 1 dies in "killed", the last."""
    out = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "1", __file__, str(out), *SCENARIOS]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def results(out: Path, name: str) -> dict:
    """Rank 0's results, after checking that rank 1 ends with the same parameters bit for bit."""
    r0, r1 = (torch.load(out / f"{name}.rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(r0["params"][k], r1["params"][k]) for k in r0["params"])
    assert r0["history"]["train_loss"] == r1["history"]["train_loss"]
    return r0


# ---- two ranks at batch b = one process at batch 2b ---------------------------------------------
@pytest.mark.parametrize("name", ["recipe", "rollback", "callback", "checkpointed"])
def test_two_ranks_take_the_steps_of_one_process_at_twice_the_batch(ddp_runs, name):
    got = results(ddp_runs, name)
    enc, ref, _ = train(name, 2 * B)
    h = got["history"]
    assert h["epoch"] == ref.epoch and h["stop_reason"] == ref.stop_reason and h["steps"] == ref.steps
    assert h["best_epoch"] == ref.best_epoch and h["lr_found"] == ref.lr_found
    assert [r["epoch"] for r in h["rollbacks"]] == [r["epoch"] for r in ref.rollbacks]
    assert h["train_loss"] == pytest.approx(ref.train_loss, rel=1e-10)
    assert h["val_loss"] == pytest.approx(ref.val_loss, rel=1e-10)
    for k, v in enc.state_dict().items():
        torch.testing.assert_close(got["params"][k], v, rtol=1e-9, atol=1e-12)
    if name == "recipe":  # the scenario does what it is there for
        assert ref.stop_reason == "converged" and len(ref.epoch) < 12 and ref.lr_found is not None
        assert 0 < ref.best_epoch
    if name == "callback":
        assert ref.stop_reason == "callback" and ref.epoch == [1, 2]
    if name == "rollback":
        assert len(ref.rollbacks) == 1 and ref.rollbacks[0]["epoch"] == 2 and ref.lr_scale == pytest.approx(0.1)


def test_a_killed_rank_is_restarted_by_torchrun_and_resumes_exactly(ddp_runs):
    got, ref = results(ddp_runs, "killed"), results(ddp_runs, "checkpointed")
    assert got["restarts"] == 1 and ref["restarts"] == 0  # the first attempt died in "killed"
    assert all(torch.equal(got["params"][k], v) for k, v in ref["params"].items())
    for key in ("epoch", "train_loss", "val_loss", "lr", "best_epoch", "steps", "stop_reason"):
        assert got["history"][key] == ref["history"][key], key
    written = sorted(p.name for p in ddp_runs.iterdir() if not p.name.endswith(".pt"))
    assert written == ["checkpointed.ckpt", "killed.ckpt"]  # rank 0's checkpoints, no temporary file


def test_a_world_size_that_does_not_divide_the_data_leaves_out_the_rest_and_says_so(ddp_runs):
    got = results(ddp_runs, "odd")
    assert got["history"]["steps"] == 2 * 5  # 99 signals per rank in batches of 20, two epochs
    assert got["warnings"] == ["distributed: 199 training signals on 2 ranks; each epoch leaves out the last 1 of "
                               "its permutation"]
    assert torch.load(ddp_runs / "odd.rank1.pt", weights_only=True)["warnings"] == []  # rank 0 alone says it


def test_a_checkpoint_resumes_on_its_own_number_of_ranks_only(ddp_runs):
    problem, Y, X, _, _ = task()
    enc = LSALSA.from_problem(problem, 2, mu=1.0, tied=False)
    with pytest.raises(LsalsaError, match=r"checkpointed.ckpt: the run was trained on 2 rank\(s\), not 1"):
        train_encoder(enc, Y, X, TrainConfig(batch_size=B, **SCENARIOS["checkpointed"]),
                      checkpoint=ddp_runs / "checkpointed.ckpt", resume=True)


# ---- the experiment runner under torchrun ---------------------------------------------------------
RUN = """
name = "tinyddp"
[data]
patch_size = 6
n_train = 200
n_test = 40
n_dict = 200
dtype = "float64"
[dictionary]
n_atoms = [16]
alphas = [0.15]
epochs = 1
[codes]
solver = "salsa"
mu = 1.0
tol = 1e-6
[methods]
names = ["fista", "lsalsa"]
T = [1]
repeats = 1
classify = false
[train]
epochs = 3
batch_size = 20
warmup = 4
rel_tol = 0.0
[search]
alpha_factors = [1.0, 0.8]
epochs = 1
"""


@pytest.mark.slow  # three runs of the runner's steps: ~1 minute on a quiet two-core machine
def test_lsalsa_train_under_torchrun_equals_one_process_at_twice_the_batch(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(RUN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "lsalsa", "train", str(cfg), "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-4000:]
    one = subprocess.run([sys.executable, "-m", "lsalsa", "train", str(cfg), "--set", f"train.batch_size={2 * 20}",
                          "--out", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-4000:]
    for name in ("fista_T1", "lsalsa_T1"):
        got, ref = (json.loads((tmp_path / run / "results" / f"{name}.json").read_text()) for run in ("two", "one"))
        assert got.keys() == ref.keys()
        for key, value in ref.items():
            if key != "time_s":
                assert got[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), key
    assert sorted(p.name for p in (tmp_path / "two" / "models").iterdir()) == ["lsalsa_T1.ckpt", "lsalsa_T1.pt"]


# ---- the pieces, in this process -----------------------------------------------------------------
@pytest.mark.parametrize("P, K", [(12, 2), (11, 2), (11, 3), (2, 3)])
def test_shards_split_as_distributed_sampler_does(P, K):
    for r in range(K):
        sampler = DistributedSampler(range(P), num_replicas=K, rank=r, shuffle=False, drop_last=True)
        assert shard(torch.arange(P), Ranks(r, K, torch.device("cpu"))).tolist() == list(sampler)
    # evaluation: every signal once
    parts = [shard(torch.arange(P), Ranks(r, K, torch.device("cpu")), drop=False) for r in range(K)]
    assert sorted(torch.cat(parts).tolist()) == list(range(P))


def test_the_ranks_batches_make_up_the_batches_of_one_process():
    data = Tensors(torch.arange(22.0)[:, None], torch.arange(22.0)[:, None])
    one = [Y.flatten().tolist() for Y, _ in epoch_batches(data, 6, seed=5, epoch=2)]
    ranks = [[Y.flatten().tolist() for Y, _ in epoch_batches(data, 3, 5, 2, Ranks(r, 2, torch.device("cpu")))]
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(one)
    for j, batch in enumerate(one):
        assert sorted(ranks[0][j] + ranks[1][j]) == sorted(batch)


def test_no_process_group_is_a_clear_error(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    problem, Y, X, _, _ = task()
    enc = LSALSA.from_problem(problem, 1)
    with pytest.raises(LsalsaError, match=r"distributed=True: no torch.distributed process group .*torchrun"):
        train_encoder(enc, Y, X, TrainConfig(epochs=1, lr=1e-3), distributed=True)


if __name__ == "__main__":
    worker(Path(sys.argv[1]), sys.argv[2:])
