"""One training of LSALSA or LISTA on the demo_mca problem, with given options: the ablation rows
of "Learned gain" in benchmarks/README.md (which choice moves the code error at a fixed T).

Uses the demo_mca data, dictionaries and optimal codes that ``bench_learned_gain.py`` caches in
``benchmarks/.cache/learned_gain/demo_mca`` (run it once first); the runner's split (the last 600
training mixtures validate). Prints the test code RMSE, the mu used, the best epoch, the rate
the range test found, and the final training and best validation losses.

    .venv/bin/python benchmarks/ablation_learned_gain.py 5 lsalsa '{"epochs": 20}'
    .venv/bin/python benchmarks/ablation_learned_gain.py 5 lsalsa '{"epochs": 20, "enc": {"tied": true}}'
    .venv/bin/python benchmarks/ablation_learned_gain.py 5 lsalsa '{"epochs": 20, "fit": {"layerwise": true}}'
    N_TRAIN=600 .venv/bin/python benchmarks/ablation_learned_gain.py 5 lsalsa '{"epochs": 30, "lr": 3e-4}'

The JSON holds TrainConfig fields, plus "enc" (encoder options) and "fit" (fit_encoder keywords).
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import lsalsa
from lsalsa.files import load_npz

CACHE = Path(__file__).parent / ".cache" / "learned_gain" / "demo_mca"


def main(T: int, method: str, spec: dict) -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    data, dicts = load_npz(CACHE / "data.npz"), load_npz(CACHE / "dictionary.npz")
    codes = {split: np.load(next((CACHE / "codes").glob(f"*-{split}-*.npy"))) for split in ("train", "test")}
    t = lambda a: torch.from_numpy(np.array(a)).float()  # noqa: E731
    problem = lsalsa.LassoProblem.from_dictionaries([t(dicts["A0"]), t(dicts["A1"])], alphas=[0.125, 0.2])
    Y, X, Y_test, X_test = t(data["Y_train"]), t(codes["train"]), t(data["Y_test"]), t(codes["test"])
    Y_tr, X_tr, Y_val, X_val = Y[:-600], X[:-600], Y[-600:], X[-600:]
    n_train = int(os.environ.get("N_TRAIN", "0")) or len(Y_tr)
    enc_options, fit_options = spec.pop("enc", {}), spec.pop("fit", {})
    t0 = time.time()
    encoder, history = lsalsa.fit_encoder(problem, Y_tr[:n_train], X_tr[:n_train], n_layers=T, method=method,
                                          val=(Y_val, X_val), config=lsalsa.TrainConfig(**spec),
                                          return_history=True, **fit_options, **enc_options)
    with torch.no_grad():
        rmse = lsalsa.code_rmse(encoder(Y_test), X_test)
    print(f"{method} T={T} {spec} enc={enc_options} fit={fit_options} n_train={n_train}: test RMSE {rmse:.5f}, "
          f"mu {getattr(encoder, 'mu', None)}, best epoch {history.best_epoch}, lr found {history.lr_found}, "
          f"rollbacks {len(history.rollbacks)}, train loss {history.train_loss[-1]:.3f}, "
          f"best val loss {min(history.val_loss):.3f}, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
