"""Learned encoders that earn their keep: LSALSA(T) and LISTA(T) against truncated SALSA and FISTA.

For each problem and each T, LSALSA and LISTA are trained with the library's default recipe
(``lsalsa.fit_encoder(..., config=TrainConfig(epochs=E, seed=0))``: lr="auto", LSALSA's
mu="auto", i.e. SALSA's best mu of ``MU_GRID`` at T on the validation split) and scored by their
code RMSE against the optimal codes of the test split (``lsalsa.code_rmse``). Recorded per
encoder: test RMSE, training time (the whole ``fit_encoder`` call: auto-mu, range test, epochs),
the rate the range test found, rollbacks, the best epoch (0: the encoder kept its initial
weights, the truncated solver) and the mu LSALSA used.

Baselines on the same test split, float32 like the encoders: truncated SALSA at each mu of
``MU_GRID`` (relaxation 1, the iteration LSALSA unrolls) and FISTA, with the code RMSE after
every iteration k = 1..K_max (one run per solver and mu, recording the error in the solvers'
``callback(k, X)``). The best-tuned SALSA at k is the minimum over mu at that k: an oracle on the
test set. Reported per T: SALSA (best mu at T) and FISTA(T) RMSE, and the fewest iterations the
oracle SALSA (some mu reaching the error at k) and FISTA need to reach LSALSA(T)'s and LISTA(T)'s
error, with the ratio k / T; the targets are SALSA >= 4T and FISTA >= 10T iterations to reach
LSALSA(T).

Problems:
  mnist10   the shipped "demo" experiment (MNIST 10x10 patches, 100 atoms, alpha 0.15)
  demo_mca  the shipped "demo_mca" experiment (32x32 digit + photo mixtures, 256 + 256 atoms)
  mca1024   _problems.mca32_problem's 1024 + 1024 atoms, --mca1024-train + 300 val + 300 test
            mixtures of digits and photos the dictionaries never saw (disjoint photos per split)
The experiments' data, dictionaries and codes are built by ``run_experiment(..., until="codes")``
and cached, like the mca1024 codes, in ``benchmarks/.cache/learned_gain`` (minutes the first time).
The training / validation split is the runner's (the last 20% of the training signals).

Results go to a JSON file (``--out``) after every trained encoder; ``--resume`` skips the
(problem, method, T, encoder options, epochs, n_train) entries it holds and reuses its error curves.
The options recorded are those the encoders got: ``fit_encoder``'s defaults under ``--encoder-options``.

    .venv/bin/python benchmarks/bench_learned_gain.py --quick          # smoke run (~2 min)
    .venv/bin/python benchmarks/bench_learned_gain.py                  # all problems, T 1..20
    .venv/bin/python benchmarks/bench_learned_gain.py --problems mnist10 --T 1,3,5 --epochs 50 \\
        --encoder-options '{"tied": false}' --out benchmarks/results/untied.json --resume
    for n in 4800 12000 24000 48000; do                                  # error vs training-set size
      .venv/bin/python benchmarks/bench_learned_gain.py --problems mnist10 --set data.n_train=60000 \
        --n-train $n --T 1,5 --methods lsalsa --out benchmarks/results/learned_gain_size.json --resume; done
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

import lsalsa
from _common import Table, machine
from _problems import CACHE, mca32_problem
from lsalsa.experiments.config import load_config
from lsalsa.experiments.context import RunContext
from lsalsa.experiments.evaluate import Task, validation_split
from lsalsa.experiments.runner import run_experiment, step_codes, step_data, step_dictionary
from lsalsa.files import read_json, write_json
from lsalsa.pipeline import MU_GRID

HERE = Path(__file__).resolve().parent
CACHE_DIR = CACHE / "learned_gain"
PROBLEMS = ("mnist10", "demo_mca", "mca1024")
TARGETS = {"salsa": 4, "fista": 10}  # the issue's: iterations >= factor * T to reach LSALSA(T)


def describe(split: Task) -> dict:
    """The sizes of a problem and its splits (``Task``: signals ``Y_*: (P, M)``, codes ``X_*: (P, N)``)."""
    return {"M": split.problem.n_features, "N": split.problem.n_atoms, "n_train": len(split.Y_train),
            "n_val": len(split.Y_val), "n_test": len(split.Y_test),
            # the error of the all-zero code: an encoder above it has learned nothing useful
            "zero_rmse": round(lsalsa.code_rmse(torch.zeros_like(split.X_test), split.X_test), 5)}


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))  # a copy: reads a memmap once


# ---- problems ----------------------------------------------------------------------------------
def experiment_split(name: str, overrides: list[str] = ()) -> Task:
    """A shipped experiment's signals, dictionary and codes (built once into the cache; with
    config ``overrides``, e.g. ``data.n_train=60000``, into a cache of their own); its training
    signals split as the runner splits them (``validation_split``)."""
    tag = "-" + hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:8] if overrides else ""
    c, run_dir = load_config(name, list(overrides)), CACHE_DIR / f"{name}{tag}"
    run_experiment(c, run_dir, until="codes", log=lambda m: print(f"  {m}", flush=True))
    run = RunContext(c, run_dir)  # the steps read back what run_experiment cached
    arrays = step_data(run)
    problem = step_dictionary(run, arrays).to(dtype=torch.float32)
    X_train, X_test, _ = step_codes(run, problem, arrays)
    return Task(problem, *validation_split(_t(arrays["Y_train"]), _t(X_train), c.search.val_fraction),
                _t(arrays["Y_test"]), _t(X_test), components=None, probe=None)


def mca1024_signals(n_train: int, n_val: int = 300, n_test: int = 300):
    """mca32's problem and mixtures ``(P, 1024)`` of held-out digits and photos (rows 4000 on of
    ``mca32_problem``'s shuffles, never seen by its dictionaries): test, val and train use
    disjoint photos; train reuses its photos with other digits when it needs more mixtures. The
    test mixtures are exactly ``mca32_problem(n_test)``'s."""
    problem, Y_ref = mca32_problem(n_test)  # n_test <= 1282: its dictionaries' 4000 photos
    digits, _ = lsalsa.data.load_images("mnist", split="train")
    d_rows, _ = lsalsa.data.extract_patches(digits, size=32, pad_to=32)
    photos, _ = lsalsa.data.load_images("natural", split="train")
    p_rows, _ = lsalsa.data.extract_patches(photos, size=32, stride=32)
    rng = np.random.default_rng(0)  # the same shuffles as mca32_problem
    d_rows, p_rows = d_rows[rng.permutation(len(d_rows))][4000:], p_rows[rng.permutation(len(p_rows))][4000:]
    n_fixed = n_test + n_val
    if len(p_rows) <= n_fixed or len(d_rows) < n_fixed + n_train:
        raise SystemExit(f"mca1024: {len(p_rows)} held-out photos, {len(d_rows)} digits: too few")
    photo = np.r_[np.arange(n_fixed), n_fixed + np.arange(n_train) % (len(p_rows) - n_fixed)]
    Y = d_rows[:n_fixed + n_train] + p_rows[photo]
    if not np.allclose(Y[:n_test], Y_ref):
        raise SystemExit("mca1024: the rebuilt test mixtures differ from mca32_problem's")
    return problem.to(dtype=torch.float32), Y[n_fixed:], Y[n_test:n_fixed], Y[:n_test]


def mca1024_split(n_train: int) -> Task:
    """mca1024 with optimal codes (SALSA, tol 1e-5) cached in ``benchmarks/.cache/learned_gain/mca1024``."""
    problem, *Ys = mca1024_signals(n_train)
    out = []
    for split, Y in zip(("train", "val", "test"), Ys):
        t0 = time.perf_counter()
        X = lsalsa.optimal_codes(problem, Y.astype(np.float32), solver="salsa", tol=1e-5,
                                 cache_dir=CACHE_DIR / "mca1024", dataset_name=f"mca1024-{split}")
        print(f"  [mca1024] optimal codes of {len(Y)} {split} signals: {time.perf_counter() - t0:.1f} s", flush=True)
        out += [_t(Y), _t(X)]
    return Task(problem, *out, components=None, probe=None)


def load_split(name: str, args) -> Task:
    split = mca1024_split(args.mca1024_train) if name == "mca1024" else experiment_split(
        {"mnist10": "demo", "demo_mca": "demo_mca"}[name], args.set)
    if args.n_train:
        split.Y_train, split.X_train = split.Y_train[:args.n_train], split.X_train[:args.n_train]
    return split


# ---- baselines ---------------------------------------------------------------------------------
def error_curve(solve, X_star: torch.Tensor, K: int) -> list[float]:
    """Code RMSE after each iteration 1..K of ``solve(n_iter=K, callback=...)`` (6 digits)."""
    errors = []

    def callback(k, X):
        errors.append(float(f"{lsalsa.code_rmse(X, X_star):.6g}"))
        return False

    solve(n_iter=K, callback=callback)
    return errors


def error_curves(split: Task, k_salsa: int, k_fista: int) -> dict:
    """``{"salsa": {mu: [rmse at k=1..k_salsa]}, "fista": [rmse at k=1..k_fista]}`` on the test split."""
    p, Y, X = split.problem, split.Y_test, split.X_test
    curves = {"salsa": {}, "max_salsa_iter": k_salsa, "max_fista_iter": k_fista}
    for mu in MU_GRID:
        curves["salsa"][f"{mu:g}"] = error_curve(lambda **kw: lsalsa.salsa(p, Y, mu=mu, **kw), X, k_salsa)
    curves["fista"] = error_curve(lambda **kw: lsalsa.fista(p, Y, **kw), X, k_fista)
    return curves


def oracle_salsa(curves: dict) -> tuple[np.ndarray, list[str]]:
    """The best-tuned SALSA: ``(K,)`` min over mu of the RMSE at each k, and that mu's label."""
    labels = list(curves["salsa"])
    table = np.array([curves["salsa"][m] for m in labels])  # (mus, K)
    return table.min(axis=0), [labels[i] for i in table.argmin(axis=0)]


def first_reach(curve, target: float) -> int | None:
    """The smallest k (1-based) with ``curve[k-1] <= target``, None when never."""
    hits = np.flatnonzero(np.asarray(curve) <= target)
    return int(hits[0]) + 1 if len(hits) else None


def baselines_at(curves: dict, T: int) -> dict:
    """SALSA (oracle mu at T) and FISTA(T) test RMSE."""
    best, mus = oracle_salsa(curves)
    i = min(T, len(best)) - 1
    fista = curves["fista"]
    return {"salsa_rmse": float(best[i]), "salsa_mu": float(mus[i]), "fista_rmse": fista[min(T, len(fista)) - 1]}


def iterations_to(curves: dict, rmse: float, T: int) -> dict:
    """Iterations the oracle SALSA and FISTA need to reach ``rmse``, ratios to T, and targets."""
    best, mus = oracle_salsa(curves)
    k_s, k_f = first_reach(best, rmse), first_reach(curves["fista"], rmse)
    return {"salsa_iters": k_s, "salsa_iters_mu": None if k_s is None else float(mus[k_s - 1]),
            "fista_iters": k_f, "salsa_ratio": None if k_s is None else k_s / T,
            "fista_ratio": None if k_f is None else k_f / T,
            "salsa_target": k_s is None or k_s >= TARGETS["salsa"] * T,
            "fista_target": k_f is None or k_f >= TARGETS["fista"] * T}


# ---- encoders ----------------------------------------------------------------------------------
def train_entry(split: Task, method: str, T: int, args, options: dict) -> dict:
    """Train one encoder with the default recipe; its test RMSE and training record."""
    t0 = time.perf_counter()
    config = lsalsa.TrainConfig(epochs=args.epochs, seed=0)
    encoder, history = lsalsa.fit_encoder(split.problem, split.Y_train, split.X_train, n_layers=T, method=method,
                                          val=(split.Y_val, split.X_val), config=config, return_history=True, **options)
    train_s = time.perf_counter() - t0
    with torch.inference_mode():
        rmse = lsalsa.code_rmse(encoder(split.Y_test), split.X_test)
    mu = getattr(encoder, "mu", None)
    return {"rmse": rmse, "train_s": train_s, "epochs_run": len(history.epoch), "stop_reason": history.stop_reason,
            "lr_found": history.lr_found, "rollbacks": history.rollbacks, "n_rollbacks": len(history.rollbacks),
            "best_epoch": history.best_epoch, "kept_initial": history.best_epoch == 0,
            "mu": None if mu is None else float(mu)}


def entry_key(e: dict) -> tuple:
    return e["problem"], e["method"], e["T"], e["options"], e["epochs"], e["n_train"]


def _g(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def progress_line(e: dict) -> str:
    def it(k_max, k):
        return f">{k_max}" if k is None else f"{k} ({k / e['T']:.1f}T)"
    return (f"[{e['problem']}] {e['method']} T={e['T']}: RMSE {e['rmse']:.5f} | SALSA best {e['salsa_rmse']:.5f} "
            f"(mu {e['salsa_mu']:g}), FISTA {e['fista_rmse']:.5f} | to reach it: SALSA "
            f"{it(e['max_salsa_iter'], e['salsa_iters'])}, FISTA {it(e['max_fista_iter'], e['fista_iters'])} | "
            f"train {e['train_s']:.1f} s, lr {_g(e['lr_found'])}, best epoch {e['best_epoch']}/{e['epochs_run']}, "
            f"{e['n_rollbacks']} rollbacks, mu {_g(e['mu'])}")


# ---- the table ---------------------------------------------------------------------------------
def _iters(k, ratio, k_max) -> str:
    return f">{k_max}" if k is None else f"{k} ({ratio:.1f}x)"


TABLE = Table(("T", "T"), ("lsalsa", "LSALSA", "{:.5f}"), ("lista", "LISTA", "{:.5f}"),
              ("salsa", "SALSA best mu (mu)"), ("fista", "FISTA", "{:.5f}"),
              ("s_lsalsa", "SALSA iters to LSALSA (ratio)"), ("f_lsalsa", "FISTA iters to LSALSA (ratio)"),
              ("s_lista", "SALSA iters to LISTA"), ("t_lsalsa", "train s LSALSA", "{:.1f}"),
              ("t_lista", "train s LISTA", "{:.1f}"), ("notes", "notes"))


def table_row(T: int, by_method: dict) -> dict:
    """One T's row from its entries ``{method: entry}``."""
    any_e = next(iter(by_method.values()))
    row = {"T": T, "salsa": f"{any_e['salsa_rmse']:.5f} ({any_e['salsa_mu']:g})", "fista": any_e["fista_rmse"]}
    notes = []
    for m, name in (("lsalsa", "LSALSA"), ("lista", "LISTA")):
        e = by_method.get(m)
        if e is None:
            continue
        row[m], row[f"t_{m}"] = e["rmse"], e["train_s"]
        row[f"s_{m}"] = _iters(e["salsa_iters"], e["salsa_ratio"], e["max_salsa_iter"])
        if m == "lsalsa":
            row["f_lsalsa"] = _iters(e["fista_iters"], e["fista_ratio"], e["max_fista_iter"])
            missed = [f"{s.upper()} < {TARGETS[s]}T" for s in ("salsa", "fista") if not e[f"{s}_target"]]
            notes.append(f"LSALSA mu {e['mu']:g}; " + ("targets met" if not missed else "missed: " + ", ".join(missed)))
        if e["kept_initial"]:
            notes.append(f"{name} kept initial weights")
        if e["n_rollbacks"]:
            notes.append(f"{name} {e['n_rollbacks']} rollbacks")
    row["notes"] = "; ".join(notes)
    return row


def tables(results: dict, keys: set) -> str:
    """A markdown table per problem, of the entries whose keys are in ``keys`` (this run's)."""
    out = []
    for problem in PROBLEMS:
        entries = [e for e in results["entries"] if e["problem"] == problem and entry_key(e) in keys]
        if not entries:
            continue
        e0 = entries[0]
        info = results["problems"][problem]
        zero = f"; the zero code's RMSE {info['zero_rmse']:.4f}" if "zero_rmse" in info else ""
        out.append(f"### {problem} ({info['shape']}; epochs {e0['epochs']}, options {e0['options']}{zero})\n")
        Ts = sorted({e["T"] for e in entries})
        out.append(TABLE.markdown([table_row(T, {e["method"]: e for e in entries if e["T"] == T}) for T in Ts]) + "\n")
    return "\n".join(out)


# ---- main --------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--problems", help=f"comma-separated, of {','.join(PROBLEMS)} (default all; --quick: mnist10)")
    p.add_argument("--T", help="comma-separated layer counts (default 1,3,5,10,20; --quick: 1,3)")
    p.add_argument("--epochs", type=int, help="training epochs (default 30; --quick: 2)")
    p.add_argument("--methods", default="lsalsa,lista")
    p.add_argument("--encoder-options", default="{}", help="JSON of encoder options for both, e.g. '{\"tied\": false}'")
    p.add_argument("--max-salsa-iter", type=int, default=500)
    p.add_argument("--max-fista-iter", type=int, default=2000)
    p.add_argument("--mca1024-train", type=int, default=1500, help="mca1024 training mixtures")
    p.add_argument("--n-train", type=int, help="cap on the training signals (--quick: 500)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the mnist10 / demo_mca experiment config, e.g. data.n_train=60000 "
                        "(repeatable; cached apart): with --n-train, a code error vs training-set size curve")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="results JSON (default benchmarks/results/learned_gain.json; --quick: "
                                 "benchmarks/.cache/learned_gain/quick.json)")
    p.add_argument("--resume", action="store_true", help="skip entries (and reuse error curves) in --out")
    p.add_argument("--quick", action="store_true", help="tiny smoke run: mnist10, T 1,3, 2 epochs, 500 signals")
    a = p.parse_args(argv)
    q = a.quick
    a.problems = (a.problems or ("mnist10" if q else ",".join(PROBLEMS))).split(",")
    a.T = [int(t) for t in (a.T or ("1,3" if q else "1,3,5,10,20")).split(",")]
    a.epochs = a.epochs or (2 if q else 30)
    a.n_train = a.n_train or (500 if q else None)
    a.methods = a.methods.split(",")
    a.out = Path(a.out or (CACHE_DIR / "quick.json" if q else HERE / "results" / "learned_gain.json"))
    if unknown := set(a.problems) - set(PROBLEMS):
        p.error(f"--problems: unknown {sorted(unknown)}")
    return a


def problem_curves(results: dict, name: str, split: Task, args) -> dict:
    """The problem's test error curves: reused from ``results`` under --resume when they match."""
    info = results["problems"].get(name, {})
    curves = info.get("curves")
    want = (args.max_salsa_iter, args.max_fista_iter, len(split.Y_test))
    have = curves and (curves["max_salsa_iter"], curves["max_fista_iter"], info.get("n_test"))
    if not (args.resume and have == want):
        t0 = time.perf_counter()
        curves = error_curves(split, args.max_salsa_iter, args.max_fista_iter)
        print(f"  [{name}] error curves (SALSA x {len(MU_GRID)} mu, FISTA): {time.perf_counter() - t0:.1f} s",
              flush=True)
    d = describe(split)
    results["problems"][name] = {"shape": f"M={d['M']}, N={d['N']}, {d['n_train']} train / {d['n_val']} val / "
                                          f"{d['n_test']} test", **d, "curves": curves}
    return curves


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    options = json.loads(args.encoder_options)
    # the options the encoders get: fit_encoder's defaults (where it has them) under the given ones
    opt_key = json.dumps({**getattr(lsalsa.pipeline, "DEFAULT_OPTIONS", {}), **options}, sort_keys=True)
    results = read_json(args.out) if args.out.exists() else {"entries": [], "problems": {}}
    results["machine"] = machine()
    keys = set()
    for name in args.problems:
        print(f"[{name}] loading", flush=True)
        split = load_split(name, args)
        curves = problem_curves(results, name, split, args)
        write_json(args.out, results)
        for T in args.T:
            for method in args.methods:
                head = {"problem": name, "method": method, "T": T, "options": opt_key, "epochs": args.epochs,
                        "n_train": len(split.Y_train), "options_given": args.encoder_options}
                keys.add(entry_key(head))
                old = next((x for x in results["entries"] if entry_key(x) == entry_key(head)), None)
                if args.resume and old is not None:
                    print(f"[{name}] {method} T={T}: in {args.out}, skipped", flush=True)
                    e = old  # its baselines refreshed below: the curves may be new
                else:
                    e = head | train_entry(split, method, T, args, options)
                e |= {"max_salsa_iter": args.max_salsa_iter, "max_fista_iter": args.max_fista_iter}
                e |= baselines_at(curves, T) | iterations_to(curves, e["rmse"], T)
                results["entries"] = [x for x in results["entries"] if entry_key(x) != entry_key(e)] + [e]
                write_json(args.out, results)
                print(progress_line(e), flush=True)
    print("\n" + tables(results, keys), flush=True)
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
