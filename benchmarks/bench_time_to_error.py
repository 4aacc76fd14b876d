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

import json
import time
from pathlib import Path

import numpy as np
import torch

import lsalsa
from _common import Table, argument_parser, interleaved, iterations_until, section_head, write_section
from _problems import CACHE, patch10_dictionary, patch10_patches

ROOT = Path(__file__).resolve().parents[1]
MU_GRID = (0.3, 1.0, 10.0)


def _fastest(v) -> str:
    ratio, label = v
    return f"{ratio:.1f}x ({label})"


ROWS = Table(("encoder", "encoder"), ("T", "T"), ("rmse", "encoder RMSE", "{:.4f}"), ("encode_ms", "encode [ms]", "{:.2f}"),
             ("forward_ms", "forward [ms]", "{:.2f}"), ("method", "method"), ("iters", "iterations"),
             ("time_ms", "time [ms]", "{:.2f}"), ("setup_ms", "set-up [ms]", "{:.2f}"), ("ratio", "time / encode", "{:.1f}x"))
SUMMARY = Table(("encoder", "encoder"), ("T", "T"), ("rmse", "test RMSE", "{:.4f}"), ("fista", "FISTA / encoder", "{:.1f}x"),
                ("own", "SALSA (encoder's mu) / encoder", "{:.1f}x"), ("fastest", "fastest SALSA / encoder", _fastest))


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
    patches = patch10_patches()
    problem = lsalsa.LassoProblem(patch10_dictionary(patches), alphas=0.15)  # bench_solvers.py's patch10 dictionary
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
def compare(kind, T, enc, problem, Y, X_star, max_iter, repeats):
    """One encoder against FISTA and SALSA at each mu: rows, and the summary row."""
    target = lsalsa.code_rmse(enc.encode(Y), X_star)
    mus = sorted(set(MU_GRID) | ({enc.mu} if kind == "lsalsa" else set()))
    methods = [("fista", {})] + [(f"salsa mu={mu:g}", {"mu": mu}) for mu in mus]
    rows, ratios = [], {}
    for label, kw in methods:
        solver = lsalsa.fista if label == "fista" else lsalsa.salsa
        row = {"encoder": kind, "T": T, "rmse": target, "method": label}
        # fewest iterations whose codes have RMSE <= target (checked untimed, after every iteration)
        k = iterations_until(lambda cb: solver(problem, Y, **kw, max_iter=max_iter, tol=1e-30, callback=cb),
                             lambda X: lsalsa.code_rmse(X, X_star) <= target)
        if k is None:
            rows.append(row | {"iters": f">{max_iter}", "ratio": f">{max_iter}it"})
            continue
        # the encoder is timed in the same rounds as each solver, so that a ratio compares
        # times taken under the same load
        times = interleaved({"encode": lambda: enc.encode(Y), "forward": lambda: enc(Y),
                             "solver": lambda: solver(problem, Y, n_iter=k, **kw),
                             "set-up": lambda: solver(problem, Y, n_iter=0, **kw)}, "cpu", repeats)
        t, t_setup, t_enc = times["solver"], times["set-up"], times["encode"]
        ratios[label] = t / t_enc
        rows.append(row | {"encode_ms": t_enc * 1e3, "forward_ms": times["forward"] * 1e3, "iters": k, "time_ms": t * 1e3,
                           "setup_ms": t_setup * 1e3, "ratio": t / t_enc})
        print(ROWS.line(rows[-1]), flush=True)
    salsas = {k: v for k, v in ratios.items() if k.startswith("salsa")}
    own = f"salsa mu={enc.mu:g}" if kind == "lsalsa" else None
    fastest = min(salsas, key=salsas.get) if salsas else None
    summary = {"encoder": kind, "T": T, "rmse": target, "fista": ratios.get("fista", f">{max_iter}it"), "own": ratios.get(own),
               "fastest": (salsas[fastest], fastest) if salsas else None}
    return rows, summary


def main(argv=None):
    parser = argument_parser(__doc__, "fewer T, signals and repeats (a smoke run)")
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
    rows, summary = [], []
    for (kind, T), enc in sorted(encoders.items()):
        r, s = compare(kind, T, enc.to(torch.float32), problem, Y, X_star, max_iter, repeats)
        rows += r
        summary.append(s)
    print()
    print(SUMMARY.markdown(summary))
    print()
    print(ROWS.markdown(rows))
    flags = (" --quick" if args.quick else "") + (" --train" if args.train else "")
    body = "\n\n".join(section_head("Time to equal code error", "bench_time_to_error.py", flags) + [
        f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t_start:.0f} s. Encoders: {source}; "
        f"B = {Y.shape[0]} test signals, M = {problem.n_features}, N = {problem.n_atoms}, 2 threads, medians of {repeats}.",
        __doc__.split("\n\n", 1)[1].split("\n\nData:")[0],
        "Acceleration (solver time to reach the encoder's test RMSE / encoder time):",
        SUMMARY.markdown(summary),
        "All rows:",
        ROWS.markdown(rows),
    ])
    if not args.no_readme:
        write_section("bench_time_to_error", body)


if __name__ == "__main__":
    main()
