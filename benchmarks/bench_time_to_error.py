"""Time to equal code error: a trained LSALSA(T) against FISTA and SALSA run until they match it.

The paper's speed claim (Section 6, "up to 100x"): for a learned encoder with T layers, measure
its code RMSE against the optimal codes on held-out signals (``lsalsa.code_rmse``), then find the
fewest iterations k with which FISTA, and SALSA at several mu, reach that RMSE or better
(untimed, checking after every iteration), and time exactly k iterations. The ratio solver time /
encoder time is the acceleration. The encoder is timed with ``encode`` (the inference fast path)
and its trainable ``forward`` under ``inference_mode``; the solvers are timed as called
(``lsalsa.fista(problem, Y, n_iter=k)``: set-up such as SALSA's Cholesky factorisation included;
the "set-up" column is the time of the same call with ``n_iter=0``). float32; each solver is
timed in the same interleaved rounds as the encoder it is compared with, medians.

Data: MNIST 10x10 patches of 32x32-padded digits with std >= 0.1, one 100-atom dictionary,
alpha = 0.15 (Supplement G.2). By default the trained encoders, dictionary, test signals and
optimal codes of the experiment run ``runs/mnist_sc`` (``lsalsa run mnist_sc``) are used when it
exists; otherwise (or with ``--train``) the script learns a dictionary (cached with
``bench_solvers.py``'s in ``benchmarks/.cache``), computes optimal codes and trains LSALSA for a few
epochs itself (Adam, cached in ``benchmarks/.cache``). LISTA is included where a trained one exists.

    .venv/bin/python benchmarks/bench_time_to_error.py [--quick] [--no-readme] [--train] [--run DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import lsalsa  # noqa: E402
from _common import machine, markdown_table, write_section  # noqa: E402
from bench_encoders import interleaved  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).with_name(".cache")
MU_GRID = (0.3, 1.0, 10.0)


# ---- data and encoders ---------------------------------------------------------------------------
def from_run(run: Path, Ts, n_test: int):
    """Problem, test signals, optimal test codes and trained encoders of an experiment run."""
    config = json.loads((run / "config.json").read_text())
    with np.load(run / "dictionary.npz") as f:
        atoms = [f[k] for k in sorted(f.files)]
    problem = lsalsa.LassoProblem.from_dictionaries(atoms, alphas=config["dictionary"]["alphas"])
    with np.load(run / "data.npz") as f:
        Y = f["Y_test"][:n_test]
    meta = [p for p in (run / "codes").glob("*-test-*.json")]
    if len(meta) != 1:
        raise FileNotFoundError(f"{run}/codes: expected one set of test codes, found {len(meta)}")
    X_star = np.load(meta[0].with_suffix(".npy"), mmap_mode="r")[:n_test]
    encoders = {}
    for kind in ("lsalsa", "lista"):
        for T in Ts:
            path = run / "models" / f"{kind}_T{T}.pt"
            if path.exists():
                encoders[kind, T] = lsalsa.load_encoder(path).eval()
    if not any(k == "lsalsa" for k, _ in encoders):
        raise FileNotFoundError(f"{run}/models: no trained LSALSA for T in {list(Ts)}")
    source = f"experiment run `{run.relative_to(ROOT) if run.is_relative_to(ROOT) else run}`"
    return problem, torch.from_numpy(np.ascontiguousarray(Y)), torch.from_numpy(np.array(X_star)), encoders, source


def train_here(Ts, n_test: int, epochs: int):
    """Learn (or load cached) dictionary, optimal codes and LSALSA encoders on MNIST patches."""
    images, _ = lsalsa.data.load_images("mnist", split="train")
    patches, _ = lsalsa.data.extract_patches(images, size=10, stride=10, min_std=0.1, pad_to=32)
    patches = patches[np.random.default_rng(0).permutation(len(patches))]
    CACHE.mkdir(exist_ok=True)
    dict_path = CACHE / "patch10_A.npy"  # the same recipe and file as bench_solvers.py
    if dict_path.exists():
        A = np.load(dict_path)
    else:
        A = lsalsa.learn_dictionary(patches[:20_000], n_atoms=100, alpha=0.15, seed=0).numpy()
        np.save(dict_path, A)
    problem = lsalsa.LassoProblem(A, alphas=0.15)
    Y_train, Y_test = patches[20_000:30_000], patches[30_000:30_000 + n_test]

    def codes(Y, name):
        return torch.from_numpy(np.array(lsalsa.optimal_codes(problem, Y, solver="salsa", mu=0.3, tol=1e-6,
                                                              max_iter=5000, cache_dir=CACHE, dataset_name=name)))

    X_train, X_test = codes(Y_train, "tte-train"), codes(Y_test, f"tte-test{n_test}")
    Y_train_t = torch.from_numpy(np.ascontiguousarray(Y_train))
    encoders = {}
    for T in Ts:
        path = CACHE / f"tte_lsalsa_T{T}_e{epochs}.pt"
        if path.exists():
            enc = lsalsa.load_encoder(path)
        else:
            enc = lsalsa.LSALSA.from_problem(problem, T, mu=1.0)
            lsalsa.train_encoder(enc, Y_train_t, X_train, lsalsa.TrainConfig(
                epochs=epochs, batch_size=100, optimizer="adam", lr=1e-3, lr_decay=0.9, rel_tol=0))
            lsalsa.save_encoder(enc, path)
        encoders["lsalsa", T] = enc.eval()
    source = (f"trained by this script: {len(Y_train)} training patches, {epochs} epochs of Adam "
              f"(lr 1e-3 x 0.9/epoch), LSALSA mu = 1")
    return problem, torch.from_numpy(np.ascontiguousarray(Y_test)), X_test, encoders, source


# ---- measurements ------------------------------------------------------------------------------
def iterations_to_rmse(run, X_star, target: float, max_iter: int) -> int | None:
    """Fewest iterations whose codes have RMSE <= target (checked untimed, after every iteration)."""
    hit = {}

    def cb(k, X):
        if lsalsa.code_rmse(X, X_star) <= target:
            hit["k"] = k
            return True
        return False

    run(max_iter=max_iter, tol=1e-30, callback=cb)
    return hit.get("k")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer T, signals and repeats (a smoke run)")
    parser.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    parser.add_argument("--train", action="store_true", help="train the encoders here even if a run exists")
    parser.add_argument("--run", default=str(ROOT / "runs" / "mnist_sc"), help="experiment run to reuse")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t_start = time.time()
    Ts, n_test, repeats, max_iter, epochs = ((1, 3), 1000, 3, 2000, 3) if args.quick else ((1, 3, 5, 10, 20), 3600, 7, 20_000, 15)

    run = Path(args.run)
    if not args.train and (run / "models").is_dir():
        problem, Y, X_star, encoders, source = from_run(run, Ts, n_test)
    else:
        problem, Y, X_star, encoders, source = train_here(Ts, n_test, epochs)
    problem, Y, X_star = problem.to(dtype=torch.float32), Y.float(), X_star.float()
    B = Y.shape[0]

    header = ["encoder", "T", "encoder RMSE", "encode [ms]", "forward [ms]", "method", "iterations",
              "time [ms]", "set-up [ms]", "time / encode"]
    rows, summary = [], []
    for (kind, T), enc in sorted(encoders.items()):
        enc = enc.to(torch.float32)
        target = lsalsa.code_rmse(enc.encode(Y), X_star)
        mus = sorted(set(MU_GRID) | ({enc.mu} if kind == "lsalsa" else set()))
        methods = [("fista", {})] + [(f"salsa mu={mu:g}", {"mu": mu}) for mu in mus]
        ratios = {}
        for label, kw in methods:
            solver = lsalsa.fista if label == "fista" else lsalsa.salsa
            k = iterations_to_rmse(lambda **a: solver(problem, Y, **kw, **a), X_star, target, max_iter)
            if k is None:
                rows.append([kind, T, f"{target:.4f}", "-", "-", label, f">{max_iter}", "-", "-", f">{max_iter}it"])
                continue
            # the encoder is timed in the same rounds as each solver, so that a ratio compares
            # times taken under the same load
            times = interleaved({"encode": lambda: enc.encode(Y), "forward": lambda: enc(Y),
                                 "solver": lambda: solver(problem, Y, n_iter=k, **kw),
                                 "set-up": lambda: solver(problem, Y, n_iter=0, **kw)}, "cpu", repeats)
            t, t0, t_enc, t_fwd = times["solver"], times["set-up"], times["encode"], times["forward"]
            ratios[label] = t / t_enc
            rows.append([kind, T, f"{target:.4f}", f"{t_enc * 1e3:.2f}", f"{t_fwd * 1e3:.2f}", label, k,
                         f"{t * 1e3:.2f}", f"{t0 * 1e3:.2f}", f"{t / t_enc:.1f}x"])
            print(markdown_table(header, rows[-1:]).splitlines()[-1], flush=True)
        salsas = {k: v for k, v in ratios.items() if k.startswith("salsa")}
        own = f"salsa mu={enc.mu:g}" if kind == "lsalsa" else None
        summary.append([
            kind, T, f"{target:.4f}",
            f"{ratios['fista']:.1f}x" if "fista" in ratios else f">{max_iter}it",
            f"{ratios[own]:.1f}x" if own in ratios else "-",
            (f"{min(salsas.values()):.1f}x ({min(salsas, key=salsas.get)})" if salsas else "-"),
        ])

    sum_header = ["encoder", "T", "test RMSE", "FISTA / encoder", "SALSA (encoder's mu) / encoder",
                  "fastest SALSA / encoder"]
    print()
    print(markdown_table(sum_header, summary))
    print()
    print(markdown_table(header, rows))
    body = "\n\n".join([
        "## Time to equal code error (`bench_time_to_error.py`)",
        f"Command: `.venv/bin/python benchmarks/bench_time_to_error.py{' --quick' if args.quick else ''}"
        f"{' --train' if args.train else ''}`  ",
        f"Machine: {machine()}  ",
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t_start:.0f} s. Encoders: {source}; "
        f"B = {B} test signals, M = {problem.n_features}, N = {problem.n_atoms}, 2 threads, medians of {repeats}.",
        __doc__.split("\n\n", 1)[1].split("\n\nData:")[0],
        "Acceleration (solver time to reach the encoder's test RMSE / encoder time):",
        markdown_table(sum_header, summary),
        "All rows:",
        markdown_table(header, rows),
    ])
    if not args.no_readme:
        write_section("bench_time_to_error", body)


if __name__ == "__main__":
    main()
