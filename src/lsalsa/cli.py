"""The ``lsalsa`` command: a thin argparse layer over library calls.

Errors in configs, paths and values end the command with a one-line message and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import LsalsaError

DEMO_CONFIGS = ("demo", "demo_mca")
DEFAULT_BATCH = 2048  # = lsalsa.separation.DEFAULT_BATCH, without importing torch for --help


def _log(msg: str) -> None:
    print(msg, flush=True)


def _run_config(name: str, overrides: list[str], out: str | None, until: str, progress: bool) -> Path:
    from .experiments import load_config, run_experiment

    config = load_config(name, overrides)
    run_dir = Path(out or Path("runs") / config.name)
    t0 = time.perf_counter()
    rows = run_experiment(config, run_dir, until=until, progress=progress, log=_log)
    if rows:
        _print_rows(rows)
    _log(f"[{config.name}] step '{until}' done in {time.perf_counter() - t0:.0f} s; run directory: {run_dir}")
    if until == "report":
        _log(f"[{config.name}] report: {run_dir / 'report.html'} (and report.md)")
    return run_dir


def _print_rows(rows: list[dict]) -> None:
    cols = [k for k in ("method", "T", "rmse", "time_s", "sparsity", "class_error", "psnr_1", "psnr_2") if any(k in r for r in rows)]
    _log("  ".join(f"{c:>11s}" for c in cols))
    for r in rows:
        _log("  ".join(f"{r[c]:>11.4g}" if isinstance(r.get(c), float) else f"{str(r.get(c, '-')):>11s}" for c in cols))


def _cmd_demo(args) -> int:
    from .files import read_json

    for name in DEMO_CONFIGS:
        _run_config(name, args.set, str(Path(args.out) / name), "report", args.progress)
    mca = Path(args.out) / "demo_mca"
    sep = read_json(mca / "results" / "separation.json")
    _log("whole-picture separation (MNIST test digits over a held-out photo), PSNR [dB]:")
    for r in sep:
        _log(f"  {r['method']:>6s} T={r['T']:<3d} digits {r['psnr_digits']:6.2f}  photo {r['psnr_photo']:6.2f}  "
             f"({r['time_s']:.3f} s)")
    T = max(r["T"] for r in sep)
    stride = read_json(mca / "config.json")["separation"]["stride"]
    _log(f"separate your own picture: lsalsa separate {mca / 'separation' / 'mixture.png'} "
         f"--model {mca / 'models' / f'lsalsa_T{T}.model'}{f' --stride {stride}' if stride else ''} --out separated/")
    _log(f"demo finished: open {Path(args.out) / 'demo' / 'report.html'} and {mca / 'report.html'}")
    return 0


def _cmd_separate(args) -> int:
    from .bundle import load_model
    from .separation import read_image, save_separation, separate_image

    model = load_model(args.model)
    picture = read_image(args.mixture)
    n_patches = _n_patches(picture.shape, model.patch_size, args.stride)
    t0 = time.perf_counter()
    sep = separate_image(picture, model, stride=args.stride, batch_size=args.batch_size,
                         progress=n_patches > args.batch_size or args.progress)
    elapsed = time.perf_counter() - t0
    paths = save_separation(sep, args.out, title=f"{Path(args.mixture).name}: {model.method} ({Path(args.model).name})")
    _log(f"separated {picture.shape[1]}x{picture.shape[0]} pixels ({n_patches} patches of "
         f"{model.patch_size}x{model.patch_size}) with {model.method} in {elapsed:.2f} s")
    for name, path in paths.items():
        _log(f"  {name:15s} {path}")
    return 0


def _n_patches(shape, patch_size: int, stride: int | None) -> int:
    from .separation import patch_grid

    if min(shape) < patch_size:
        return 0  # separate_image names the problem
    return len(patch_grid(shape, patch_size, stride or max(1, patch_size // 4)))


def _cmd_step(until: str):
    def run(args) -> int:
        _run_config(args.config, args.set, args.out, until, args.progress)
        return 0
    return run


def _cmd_report(args) -> int:
    from .experiments import config_from_dict, run_experiment
    from .files import read_json

    run_dir = Path(args.run_dir)
    cfg = run_dir / "config.json"
    if not cfg.is_file():
        raise LsalsaError(f"{run_dir}: not a run directory (no config.json)")
    config = config_from_dict(read_json(cfg))
    run_experiment(config, run_dir, until="report", progress=args.progress, log=_log)
    _log(f"report: {run_dir / 'report.html'}")
    return 0


def _cmd_configs(args) -> int:
    from .experiments import load_config, shipped_configs

    for name in shipped_configs():
        _log(f"{name:20s} {load_config(name).description}")
    return 0


def _cmd_data_list(args) -> int:
    from .data import list_sources

    for row in list_sources(args.data_dir):
        _log(f"{row['name']:14s} {row['location'] or 'not found'}\n{'':14s} {row['description']}")
    return 0


def _cmd_data_fetch(args) -> int:
    from .data import fetch

    for name, status in fetch(args.data_dir).items():
        _log(f"{name:14s} {status}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsalsa", description="Fast sparse coding and source separation "
                                     "with learned, unrolled solvers (LSALSA, LISTA, SALSA, FISTA).")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_run_args(p, config=True):
        if config:
            p.add_argument("config", help="a shipped config name (see `lsalsa configs`) or a TOML file")
            p.add_argument("--out", help="run directory (default runs/<name>)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set data.scale=0.1 --set methods.T=[1,5]")
        p.add_argument("--progress", action="store_true", help="show progress bars")

    demo = sub.add_parser("demo", help="run the demo (digits, and digits + photo separation) and write reports")
    demo.add_argument("--out", default="runs/demo", help="directory for the two demo runs (default runs/demo)")
    with_run_args(demo, config=False)
    demo.set_defaults(func=_cmd_demo)
    for name, until, text in (("run", "report", "run an experiment end to end and write its report"),
                              ("learn-dict", "dictionary", "steps data and dictionary"),
                              ("codes", "codes", "steps up to the optimal codes"),
                              ("train", "methods", "steps up to training (and evaluating) every method and T"),
                              ("evaluate", "methods", "same as train: each method is evaluated right after training")):
        p = sub.add_parser(name, help=text)
        with_run_args(p)
        p.set_defaults(func=_cmd_step(until))
    sep = sub.add_parser("separate", help="split a picture into its sources with a trained model file")
    sep.add_argument("mixture", help="the picture (PNG, JPEG, ...; colour is converted to gray)")
    sep.add_argument("--model", required=True, help="a model file (e.g. runs/demo/demo_mca/models/lsalsa_T5.model)")
    sep.add_argument("--stride", type=int, default=None, help="step between patches (default: patch size // 4)")
    sep.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="patches coded at once (bounds memory)")
    sep.add_argument("--out", required=True, help="directory for the source PNGs and the figure")
    sep.add_argument("--progress", action="store_true", help="always show the progress bar")
    sep.set_defaults(func=_cmd_separate)
    rep = sub.add_parser("report", help="(re)write figures and report of a run directory")
    rep.add_argument("run_dir")
    rep.add_argument("--progress", action="store_true")
    rep.set_defaults(func=_cmd_report)
    sub.add_parser("configs", help="list the shipped experiment configs").set_defaults(func=_cmd_configs)
    data = sub.add_parser("data", help="list or fetch data sets").add_subparsers(dest="data_command", required=True)
    for name, fn in (("list", _cmd_data_list), ("fetch", _cmd_data_fetch)):
        p = data.add_parser(name)
        p.add_argument("--data-dir", default=None, help="data directory (default $LSALSA_DATA or ./data)")
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LsalsaError as exc:
        print(f"lsalsa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lsalsa: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
