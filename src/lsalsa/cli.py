"""The ``lsalsa`` command: a thin argparse layer over library calls.

Errors in configs, paths and values, damaged run files and failed writes (a full disk, a
read-only directory) end the command with a one-line message and exit code 2.
"""
from __future__ import annotations

import argparse
import errno
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

from .errors import LsalsaConvergenceWarning, LsalsaError

DEMO_CONFIGS = ("demo", "demo_mca")
DEFAULT_BATCH = 2048  # = lsalsa.separation.DEFAULT_BATCH, without importing torch for --help
DEFAULT_CHUNK_ROWS = 16384  # = lsalsa.distributed._session.DEFAULT_CHUNK_ROWS, likewise


def _log(msg: str) -> None:
    print(msg, flush=True)


def _progress(args) -> bool:
    """``--progress`` / ``--no-progress``, else bars when stderr (where they go) is a terminal."""
    return sys.stderr.isatty() if args.progress is None else args.progress


def _overrides(args) -> list[str]:
    """``--set`` values, then ``--device`` (a quoted TOML string, so that ``cuda:0`` stays one)."""
    return list(args.set) + ([f'device="{args.device}"'] if args.device else [])


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
    keys = ("method", "T", "rmse", "time_s", "sparsity", "class_error",
            *dict.fromkeys(k for r in rows for k in r if k.startswith(("class_error_", "psnr_"))))
    cols = [k for k in keys if any(k in r for r in rows)]
    _log("  ".join(f"{c:>11s}" for c in cols))
    for r in rows:
        _log("  ".join(f"{r[c]:>11.4g}" if isinstance(r.get(c), float) else f"{str(r.get(c, '-')):>11s}" for c in cols))


def _cmd_demo(args) -> int:
    from .experiments import load_config
    from .experiments.context import is_rows, read_step_json
    from .experiments.runner import SEPARATION_NUMBERS

    for name in DEMO_CONFIGS:
        _run_config(name, _overrides(args), str(Path(args.out) / name), "report", _progress(args))
    mca = Path(args.out) / "demo_mca"
    sep = read_step_json(mca / "results" / "separation.json", lambda v: is_rows(v, SEPARATION_NUMBERS) and v,
                         "separation results")
    _log("whole-picture separation (MNIST test digits over a held-out photo), PSNR [dB]:")
    for r in sep:
        _log(f"  {r['method']:>6s} T={r['T']:<3d} digits {r['psnr_digits']:6.2f}  photo {r['psnr_photo']:6.2f}  "
             f"({r['time_s']:.3f} s)")
    T = max(r["T"] for r in sep)
    stride = load_config("demo_mca", args.set).separation.stride  # the run's: _claim checked they agree
    _log(f"separate your own picture: {_this_command()} separate {mca / 'separation' / 'mixture.png'} "
         f"--model {mca / 'models' / f'lsalsa_T{T}.model'}{f' --stride {stride}' if stride else ''} "
         f"--out {mca / 'separated'}")
    _log(f"demo finished: open {Path(args.out) / 'demo' / 'report.html'} and {mca / 'report.html'}")
    return 0


def _this_command() -> str:
    """How this process was started, to repeat in a hint: the ``lsalsa`` script by the path it
    was called with (a bare ``lsalsa`` is not on the PATH outside the venv), else ``python -m``."""
    script = Path(sys.argv[0])
    return str(script) if script.name == "lsalsa" else f"{sys.executable} -m lsalsa"


def _at_least_one(value: int | None, option: str) -> None:
    if value is not None and value < 1:
        raise LsalsaError(f"{option}: expected an integer >= 1, got {value}")


def _cmd_separate(args) -> int:
    from .bundle import load_model
    from .experiments.context import resolve_device
    from .separation import read_image, save_separation, separate_image

    _at_least_one(args.stride, "--stride")
    _at_least_one(args.batch_size, "--batch-size")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LsalsaError(f"--out: {out} is a file, not a directory")
    model = load_model(args.model, device=resolve_device(args.device or "cpu"))
    picture = read_image(args.mixture)
    n_patches = _n_patches(picture.shape, model.patch_size, args.stride)
    t0 = time.perf_counter()
    progress = n_patches > args.batch_size if args.progress is None else args.progress
    sep = separate_image(picture, model, stride=args.stride, batch_size=args.batch_size,
                         progress=progress and (args.progress or sys.stderr.isatty()))
    elapsed = time.perf_counter() - t0
    paths = save_separation(sep, args.out, title=f"{Path(args.mixture).name}: {model.method} ({Path(args.model).name})")
    _log(f"separated {picture.shape[1]}x{picture.shape[0]} pixels ({n_patches} patches of "
         f"{model.patch_size}x{model.patch_size}) with {model.method} in {elapsed:.2f} s")
    clipped = paths.pop("clipped")
    for name, path in paths.items():
        _log(f"  {name:15s} {path}")
    _log("sources are written in the picture's units (they add up to reconstruction.png)" + "".join(
        f"; {name}: {100 * f:.1f}% of pixels clipped to [0, 1]" for name, f in clipped.items() if f > 0))
    return 0


def _n_patches(shape, patch_size: int, stride: int | None) -> int:
    from .separation import patch_grid

    if min(shape) < patch_size:
        return 0  # separate_image names the problem
    return len(patch_grid(shape, patch_size, stride or max(1, patch_size // 4)))


def _cmd_step(until: str):
    def run(args) -> int:
        if getattr(args, "scheduler", None) is None and getattr(args, "workers", None) is None:
            _run_config(args.config, _overrides(args), args.out, until, _progress(args))
            return 0
        from .distributed import use_cluster

        _at_least_one(args.workers, "--workers")
        _at_least_one(args.chunk_rows, "--chunk-rows")
        with use_cluster(scheduler=args.scheduler, workers=args.workers, chunk_rows=args.chunk_rows):
            _run_config(args.config, _overrides(args), args.out, until, _progress(args))
        return 0
    return run


def _with_dask_args(p: argparse.ArgumentParser) -> None:
    """``lsalsa codes``' options to compute the optimal codes on a Dask cluster."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="compute the codes on the Dask cluster of this scheduler (e.g. tcp://host:8786); "
                            "the run directory must be on storage its workers share")
    where.add_argument("--workers", type=int, metavar="K",
                       help="compute the codes on a local Dask cluster of K worker processes (one thread each)")
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, metavar="R",
                   help=f"signals per Dask task (default {DEFAULT_CHUNK_ROWS})")


def _cmd_report(args) -> int:
    from .experiments import run_experiment
    from .experiments.runner import read_run_config

    run_dir = Path(args.run_dir)
    cfg = run_dir / "config.json"
    if not cfg.is_file():
        raise LsalsaError(f"{run_dir}: not a run directory (no config.json)")
    config = read_run_config(cfg, "write it again: `lsalsa run CONFIG --out RUN_DIR` with the run's config "
                                  "reuses its cached steps")
    if args.device:
        config.device = args.device
    run_experiment(config, run_dir, until="report", progress=_progress(args), log=_log)
    _log(f"report: {run_dir / 'report.html'}")
    return 0


def _cmd_reproduce(args) -> int:
    from .experiments.reproduce import reproduce

    if args.scale is not None and not args.scale > 0:
        raise LsalsaError(f"--scale: expected a number > 0, got {args.scale}")
    md = reproduce(args.only or None, out=args.out, scale=args.scale, overrides=_overrides(args),
                   progress=_progress(args), log=_log)
    _log(f"reproduction: {md} (and {md.with_suffix('.html').name})")
    return 0


def _cmd_analyze(args) -> int:
    from .experiments.learned import analyze_path

    analyze_path(args.path, log=_log)
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


def _version() -> str:
    """lsalsa's and torch's versions, from the installed metadata (importing torch takes a
    second; ``--version`` should not)."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"lsalsa {version('lsalsa')} (torch {version('torch')}, Python {sys.version.split()[0]})"


def _with_compute_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that computes: where, and whether to show progress bars."""
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="cpu, cuda, cuda:<index>, mps or auto (default: the config's device, else cpu)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show progress bars (default: when stderr is a terminal)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsalsa", description="Fast sparse coding and source separation "
                                     "with learned, unrolled solvers (LSALSA, LISTA, SALSA, FISTA).")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    def with_run_args(p, config=True):
        if config:
            p.add_argument("config", help="a shipped config name (see `lsalsa configs`) or a TOML file")
            p.add_argument("--out", help="run directory (default runs/<name>)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set data.scale=0.1 --set methods.T=[1,5]")
        _with_compute_args(p)

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
        if name == "codes":
            _with_dask_args(p)
    sep = sub.add_parser("separate", help="split a picture into its sources with a trained model file")
    sep.add_argument("mixture", help="the picture (PNG, JPEG, ...; colour is converted to gray)")
    sep.add_argument("--model", required=True, help="a model file (e.g. runs/demo/demo_mca/models/lsalsa_T5.model)")
    sep.add_argument("--stride", type=int, default=None, help="step between patches (default: patch size // 4)")
    sep.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="patches coded at once (bounds memory)")
    sep.add_argument("--out", required=True, help="directory for the source PNGs and the figure")
    _with_compute_args(sep)
    sep.set_defaults(func=_cmd_separate)
    rep = sub.add_parser("report", help="(re)write figures and report of a run directory")
    rep.add_argument("run_dir")
    _with_compute_args(rep)
    rep.set_defaults(func=_cmd_report)
    rep6 = sub.add_parser("reproduce", help="run the paper's six experiments and compare with its numbers "
                          "(reproduction.md)")
    rep6.add_argument("--scale", type=float, default=None, help="data.scale of every experiment (default: each "
                      "config's own, the paper's size)")
    rep6.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments (e.g. mnist_sc)")
    rep6.add_argument("--out", default="runs/reproduce", help="directory of the runs and the reproduction "
                      "(default runs/reproduce)")
    with_run_args(rep6, config=False)
    next(a for a in rep6._actions if a.dest == "set").help = (
        "override a config value of every experiment (e.g. --set methods.T=[1,5]), or of one: NAME:KEY=VALUE "
        "(e.g. --set mnist_cifar_mca:train.epochs=5)")
    rep6.set_defaults(func=_cmd_reproduce)
    ana = sub.add_parser("analyze", help="what a trained LSALSA learned (Section 5): learned curvature, Theorem 1 "
                         "and 2, Eq. 30's descent")
    ana.add_argument("path", metavar="MODEL_OR_RUN_DIR",
                     help="a run directory (every trained LSALSA) or its models/lsalsa_T<T>.pt or .model")
    ana.set_defaults(func=_cmd_analyze)
    sub.add_parser("configs", help="list the shipped experiment configs").set_defaults(func=_cmd_configs)
    data = sub.add_parser("data", help="list or fetch data sets").add_subparsers(dest="data_command", required=True)
    for name, fn in (("list", _cmd_data_list), ("fetch", _cmd_data_fetch)):
        p = data.add_parser(name)
        p.add_argument("--data-dir", default=None, help="data directory (default $LSALSA_DATA or ./data)")
        p.set_defaults(func=fn)
    return parser


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _os_error(exc: OSError) -> str:
    """One line: the file, what failed, and for a full disk what to do."""
    what = f"{exc.filename}: {exc.strerror or exc}" if exc.filename else str(exc)
    if exc.errno in _NO_SPACE:
        return f"{what}; free some space (or raise the limit) and run the same command again to resume"
    return what


def _one_line_warning(default):
    """A ``warnings.showwarning`` that prints lsalsa's own warnings (its convergence warning, or
    any raised from inside the package) as ``lsalsa: warning: <message>``, one line on stderr
    like the errors; other packages' warnings are shown by ``default``."""
    package = str(Path(__file__).resolve().parent)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, LsalsaConvergenceWarning) or str(Path(filename).resolve()).startswith(package):
            print(f"lsalsa: warning: {message}", file=sys.stderr if file is None else file)
        else:
            default(message, category, filename, lineno, file, line)
    return show


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # the library's own display is restored on return
        warnings.showwarning = _one_line_warning(warnings.showwarning)
        try:
            return args.func(args)
        except LsalsaError as exc:
            print(f"lsalsa: error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # a failed read or write of the machine's files: no traceback, say what failed
            print(f"lsalsa: error: {_os_error(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("lsalsa: interrupted; run the same command again to resume", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
