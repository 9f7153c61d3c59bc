"""The ``neutrosim`` command (also ``python -m sim``): thin, calls the modules below it."""

import argparse
import gc
import sys
import warnings
from pathlib import Path

from .argtypes import whole_number
from .calibration import command as calibrate
from .export import command as export
from .fitting import command as fit
from .config.errors import ParameterError

__all__ = ["main"]


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value (e.g. tumor.cycle_rate_per_min=0.001), got {text!r}")
    return key.strip(), value.strip()


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="simulate one tumor and write its time series, final state and manifest",
        description="Simulate one advanced mammary tumor with neutrophils, macrophages and "
        "vessels, and write timeseries.csv/.parquet, final_state.npz/.png and manifest.json "
        "into --out (written to a temporary folder and renamed when complete).",
    )
    p.add_argument("--days", type=float, default=None,
                   help="simulated days (default: time.days in the parameters, 21)")
    p.add_argument("--seed", type=_seed, default=None, help="random seed, a whole number >= 0 (default 1)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--params", type=Path, default=None, metavar="FILE",
                   help="TOML overlay on the default parameters")
    p.add_argument("--set", dest="sets", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="override one parameter, dotted key (repeatable)")
    p.add_argument("--scenario", default=None,
                   help="scenario from params/scenarios/ (control, the default, depletion, "
                   "cxcr2_inhibition, macrophage_depletion, contact_blockade)")
    p.add_argument("--stage", choices=("early", "advanced"), default=None,
                   help="disease stage at t=0 (initial.stage; default advanced): early is a "
                   "small nest with host vessels only and few neutrophils, run for five weeks")
    p.add_argument("--rules", type=Path, default=None, metavar="CSV",
                   help="rules table replacing params/rules.csv")
    p.add_argument("--grid", type=whole_number(1), nargs=2, metavar=("NX", "NY"), default=None,
                   help="grid size in voxels (20 um each by default)")
    p.add_argument("--record-every", type=float, default=None, metavar="HOURS",
                   help="hours between recorded time points (default 6)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads that solve the fields side by side, fixed (default: up to "
                        "NUMBA_NUM_THREADS if set, else all cores, or one alone where that "
                        "steps clearly faster, as on a loaded machine); results do not "
                        "depend on it")
    p.add_argument("--checkpoint-every", type=float, default=None, metavar="DAYS",
                   help="save the model's state every DAYS simulated days (from t=0), one "
                   "file per checkpoint, each written whole")
    p.add_argument("--checkpoint-dir", type=Path, default=None, metavar="CK",
                   help="folder of the checkpoints (default: OUT.checkpoints beside --out)")
    p.add_argument("--resume-from", type=Path, default=None, metavar="FILE",
                   help="continue the run saved in this checkpoint to --days (default its "
                   "time.days), with its parameters and seed (so no --params, --set, "
                   "--scenario, --stage, --rules, --grid, --record-every or --seed)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_run)


#: the options of ``run`` that set parameters or the seed, which a resumed run takes from
#: its checkpoint: (attribute, option)
_FROM_CHECKPOINT = (("params", "--params"), ("sets", "--set"), ("scenario", "--scenario"),
                    ("stage", "--stage"), ("rules", "--rules"), ("grid", "--grid"),
                    ("record_every", "--record-every"), ("seed", "--seed"))


def _checkpoint_plan(args):
    """The run's :class:`~sim.runs.checkpoint.CheckpointPlan` (None without
    --checkpoint-every); refuses a --checkpoint-dir that is a file or inside --out."""
    from .runs.checkpoint import CheckpointPlan

    if args.checkpoint_every is None:
        if args.checkpoint_dir is not None:
            raise ParameterError("--checkpoint-dir: give --checkpoint-every DAYS too")
        return None
    if not args.checkpoint_every > 0:
        raise ParameterError(f"--checkpoint-every {args.checkpoint_every:g}: must be > 0 days")
    folder = args.checkpoint_dir
    if folder is None:
        folder = args.out.with_name(args.out.name + ".checkpoints")
    label = f"--checkpoint-dir {folder}"
    out = args.out.absolute()
    if folder.absolute() == out or out in folder.absolute().parents:
        raise ParameterError(f"{label}: inside --out {args.out}, which is written whole at "
                             "the end; give a folder beside it")
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"{label}: exists and is not a folder")
    return CheckpointPlan(args.checkpoint_every, folder)


def _resume(args, plan) -> int:
    """``run --resume-from FILE``: continue a checkpoint to --days and write --out."""
    from .config.units import MIN_PER_DAY
    from .runs.checkpoint import model_steps, read_checkpoint
    from .runs.destination import check_out
    from .runs.run import RUN_FILES, resume_one

    given = [opt for attr, opt in _FROM_CHECKPOINT if getattr(args, attr) not in (None, [])]
    if given:
        raise ParameterError(f"--resume-from takes the parameters and seed from the "
                             f"checkpoint; drop {', '.join(given)}")
    ck = read_checkpoint(args.resume_from)
    days = args.days if args.days is not None else ck.params.time.days
    if model_steps(ck.params, days * MIN_PER_DAY) <= ck.step:
        raise ParameterError(f"--days {days:g}: not after the checkpoint's time (day "
                             f"{ck.time_h / 24:g}) of {ck.label}")
    if plan is not None:
        plan.every_steps(ck.params)
    out = check_out(args.out, replace=args.overwrite, ours=RUN_FILES)  # before the work
    result = resume_one(ck, days=days, progress=not args.quiet, threads=args.threads,
                        checkpoints=plan)
    return _write_run(args, out, result)


def _write_run(args, out: Path, result) -> int:
    """Write a run's folder and say what it holds (unless --quiet)."""
    result.meta["command"] = _command_line()
    result.write(out, overwrite=args.overwrite)
    if not args.quiet:
        last = result.timeseries.iloc[-1]
        print(f"wrote {out}/ in {result.wall_s:.1f} s: day {last['time_h'] / 24:.3g}, "
              f"{int(last['tumor_cells'])} viable tumor cells, {int(last['neutrophils'])} neutrophils "
              f"({int(last['neutrophil_tumor_pairs'])} bound), "
              f"vessel density {last['vessel_density_per_mm2']:.0f}/mm2")
    return 0


def _run(args) -> int:
    if args.owns_process:  # imported with the collector paused (sim.runs.warm): first what
        # the parameters need, then (once --out is checked) what the run needs
        from .runs.warm import PARAMS_MODULES, warm

        warm(PARAMS_MODULES)
    from .config.params import load_params
    from .runs.destination import check_out
    from .runs.run import RUN_FILES, run_one

    plan = _checkpoint_plan(args)
    if args.resume_from is not None:
        return _resume(args, plan)
    options = []  # each labelled as typed, so a bad value is blamed on its option
    if args.stage is not None:
        options.append((f"--stage {args.stage}", {"initial.stage": args.stage}))
    if args.grid is not None:
        options.append((f"--grid {args.grid[0]} {args.grid[1]}",
                        {"domain.nx": args.grid[0], "domain.ny": args.grid[1]}))
    if args.record_every is not None:
        options.append((f"--record-every {args.record_every:g}",
                        {"time.record_every_h": args.record_every}))
    if args.days is not None:
        options.append((f"--days {args.days:g}", {"time.days": args.days}))
    params = load_params(args.params, scenario=args.scenario or "control",
                         overrides=dict(args.sets), rules=args.rules, options=options)
    if plan is not None:
        plan.every_steps(params)
    out = check_out(args.out, replace=args.overwrite, ours=RUN_FILES)  # before the work
    if args.owns_process:
        from .runs.warm import RUN_MODULES, WRITE_MODULES

        warm((*RUN_MODULES, *WRITE_MODULES))
    seed = 1 if args.seed is None else args.seed
    result = run_one(params, seed, progress=not args.quiet, threads=args.threads,
                     checkpoints=plan)
    return _write_run(args, out, result)


def _arms(text: str) -> tuple[str, ...]:
    arms = tuple(a.strip() for a in text.split(",") if a.strip())
    if not arms:
        raise argparse.ArgumentTypeError("expected a comma-separated list of scenarios")
    return arms


def _command_line() -> str:
    """The command as the user typed it (recorded in manifests)."""
    return " ".join(["neutrosim", *sys.argv[1:]])


def _port(text: str) -> int:
    value = whole_number(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, got {value}")
    return value


_positive_int = whole_number(1)
_seed = whole_number(0)  # numpy's generators refuse negative seeds


def _add_deplete(sub) -> None:
    p = sub.add_parser(
        "deplete",
        help="the depletion experiment: control vs neutrophil-targeting arms, paired replicates, "
        "statistics, figures and report",
        description="Run control versus anti-Ly6G-like neutrophil depletion (or other arms) "
        "with paired replicates (replicate r uses seed SEED + r in every arm), in parallel, and "
        "write runs.parquet/.csv, summary.csv, figures (PNG and SVG), report.md and "
        "manifest.json. Each run is written as it finishes; --resume finishes an interrupted "
        "folder. Options left out on --resume are taken from the folder's experiment.json.",
    )
    p.add_argument("--arms", type=_arms, default=None, metavar="A,B,...",
                   help="comma-separated scenarios from params/scenarios/, including control "
                   "(default control,depletion; also cxcr2_inhibition, contact_blockade, "
                   "macrophage_depletion)")
    p.add_argument("--replicates", type=_positive_int, default=None, metavar="N",
                   help="paired replicates per arm (default 8)")
    p.add_argument("--days", type=float, default=None, help="simulated days (default 21)")
    p.add_argument("--stage", choices=("early", "advanced"), default=None,
                   help="disease stage at t=0 (initial.stage; default advanced)")
    p.add_argument("--start-day", type=float, default=None, metavar="DAY",
                   help="treatment start day (default intervention.start_day, 7)")
    p.add_argument("--efficiency", type=float, default=None, metavar="F",
                   help="strength in [0, 1] of every treated arm's intervention "
                   "(default: the scenario's, e.g. 0.9 for depletion)")
    p.add_argument("--params", type=Path, default=None, metavar="FILE",
                   help="TOML overlay on the default parameters, for every arm")
    p.add_argument("--set", dest="sets", type=_key_value, action="append", default=None,
                   metavar="KEY=VALUE", help="override one parameter in every arm (repeatable)")
    p.add_argument("--rules", type=Path, default=None, metavar="CSV",
                   help="rules table replacing params/rules.csv, for every arm")
    p.add_argument("--seed", type=_seed, default=None, help="seed of replicate 0, >= 0 (default 1)")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="worker processes (default: one per core)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="results folder (default results/depletion/<timestamp>/)")
    p.add_argument("--resume", action="store_true",
                   help="finish the runs missing from --out (default: the newest folder in "
                   "results/depletion/) and redo the analysis")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_deplete)


def _deplete(args) -> int:
    import dataclasses
    import time as _time

    from .experiments.depletion import (
        DepletionSetup,
        main_summary,
        read_setup,
        run_depletion,
    )

    given = {"arms": args.arms, "replicates": args.replicates, "days": args.days,
             "start_day": args.start_day, "efficiency": args.efficiency,
             "params_file": str(args.params.resolve()) if args.params else None,
             "rules_file": str(args.rules.resolve()) if args.rules else None,
             "stage": args.stage,
             "sets": tuple(args.sets) if args.sets is not None else None, "seed": args.seed}
    out = args.out
    stored = None
    if args.resume:
        if out is None:
            folders = sorted(p for p in Path("results/depletion").glob("*") if p.is_dir())
            if not folders:
                raise ParameterError("--resume: no --out given and no folder in results/depletion/")
            out = folders[-1]
            if not args.quiet:
                print(f"resuming {out}", file=sys.stderr)
        stored = read_setup(out)
    elif out is None:
        out = Path("results/depletion") / _time.strftime("%Y%m%d-%H%M%S")
    given = {k: v for k, v in given.items() if v is not None}
    setup = dataclasses.replace(stored, **given) if stored else DepletionSetup(**given)
    result = run_depletion(setup, out, workers=args.workers, resume=args.resume,
                           progress=not args.quiet,
                           command=_command_line())
    if not args.quiet:
        print(main_summary(result, setup))
    return 1 if result.failures else 0


def _add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a parameter sweep (grid, LHS, Sobol, Morris) locally or on Dask",
        description="Run every (design point, arm, replicate) of a sweep spec (see "
        "params/sweeps/ and docs/sweeps.md). Each run is written as its own Parquet part under "
        "DIR/runs/ as it finishes; re-running the same command skips finished runs and retries "
        "failed ones. Analyse with `neutrosim analyze DIR`.")
    p.add_argument("spec", type=Path, metavar="SPEC.toml", help="the sweep spec")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="sweep folder")
    p.add_argument("--rules", type=Path, default=None, metavar="CSV",
                   help="rules table replacing params/rules.csv (and the spec's own `rules`)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="local worker processes (default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="send the runs to an existing Dask distributed scheduler")
    where.add_argument("--dask-local", type=_positive_int, default=None, metavar="N",
                       help="start a local Dask cluster with N single-threaded workers")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_sweep)


def _sweep(args) -> int:
    from contextlib import nullcontext

    from .experiments.sweep import load_spec, run_sweep
    from .runs.executors import DaskExecutor

    spec = load_spec(args.spec, rules=args.rules)
    dask = None
    if args.scheduler or args.dask_local:
        dask = DaskExecutor(args.scheduler, local_workers=args.dask_local)
    with dask or nullcontext():  # without Dask, run_sweep runs its own process pool
        report = run_sweep(spec, args.out, dask, workers=args.workers, progress=not args.quiet,
                           command=_command_line())
    if not args.quiet:
        n = len(report.done) + len(report.skipped) + len(report.failed)
        print(f"wrote {args.out}/: {len(report.done)} runs now, {len(report.skipped)} already "
              f"done, {len(report.failed)} failed (of {n}); next: neutrosim analyze {args.out}")
    return 1 if report.failed else 0


def _add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze", help="sensitivity indices (Sobol, Morris, RBD-FAST) of a finished sweep",
        description="Read the runs of a sweep folder from disk and write DIR/analysis/: "
        "outcomes.csv, indices.csv and figures (indices with error bars; heatmaps for "
        "two-factor grids).")
    p.add_argument("out", type=Path, metavar="DIR", help="sweep folder")
    p.add_argument("--top", type=whole_number(1), default=5, help="factors to list per outcome (default 5)")
    p.set_defaults(func=_analyze)


def _analyze(args) -> int:
    from .experiments.sensitivity import analyze

    table = analyze(args.out)
    if table.empty:
        print(f"{args.out}: nothing to analyse yet")
        return 1
    rank = next(c for c in ("ST", "mu_star", "S1", "main_effect_range") if c in table)
    for outcome, t in table.groupby("outcome", sort=False):
        top = t.sort_values(rank, ascending=False).head(args.top)
        print(f"{outcome} (by {rank}): " + ", ".join(
            f"{r.parameter} {getattr(r, rank):.3g}" for r in top.itertuples()))
    print(f"wrote {args.out}/analysis/")
    return 0


def _add_params(sub) -> None:
    p = sub.add_parser("params", help="print every parameter and rule with unit, value and source",
                       description="Print the parameter reference (Markdown) built from "
                       "params/default.toml and params/rules.csv.")
    p.set_defaults(func=_params)


def _params(args) -> int:
    from .config.paramdoc import render

    sys.stdout.write(render())
    return 0


def _add_viz(sub) -> None:
    p = sub.add_parser(
        "viz", help="the browser view: watch and steer a run (Mesa SolaraViz)",
        description="Serve the browser view (Mesa's SolaraViz with the project's grid and "
        "plots) and print its URL. Scenario, treatment start and efficiency, the main rates "
        "and the seed are set in the page and apply on Reset. Same as `solara run "
        "sim/viz/app.py` with --params passed as $NEUTROSIM_VIZ_PARAMS.",
    )
    p.add_argument("--host", default="localhost", help="interface to listen on (default localhost)")
    p.add_argument("--port", type=_port, default=8765, help="port, 1 to 65535 (default 8765)")
    p.add_argument("--params", type=Path, default=None, metavar="FILE",
                   help="TOML overlay on the default parameters (checked before starting)")
    p.set_defaults(func=_viz)


def _viz(args) -> int:
    import os

    from .config.params import load_params

    load_params(args.params)  # a bad file stops here with the usual one-line error
    _check_listen(args.host, args.port)
    try:
        import solara  # noqa: F401
    except ImportError:
        raise ParameterError("the browser view needs solara: pip install 'mesa[viz]==3.5.1'") from None
    from .viz.controls import ENV_PARAMS

    env = dict(os.environ, SOLARA_TELEMETRY_MIXPANEL_ENABLE="false")
    if args.params is not None:
        env[ENV_PARAMS] = str(args.params.resolve())
    app = Path(__file__).resolve().parent / "viz" / "app.py"
    cdn = Path(os.environ.get("SOLARA_ASSETS_PROXY_CACHE_DIR")
               or Path(sys.prefix) / "share" / "solara" / "cdn")
    if not (cdn.is_dir() and any(cdn.iterdir())):
        print(f"neutrosim viz: note: no local front-end files in {cdn}; the page fetches them "
              "from a CDN (on a machine without internet: pip install 'neutrosim[offline]')",
              file=sys.stderr)
    print(f"neutrosim viz: serving http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    cmd = [sys.executable, "-m", "solara", "run", str(app), "--host", args.host,
           "--port", str(args.port), "--no-open"]
    os.execve(sys.executable, cmd, env)  # the server replaces this process (Ctrl-C goes to it)
    return 0


def _check_listen(host: str, port: int) -> None:
    """Refuse a host or port the server could not listen on (unknown host, port in use or
    reserved), instead of a server that never comes up."""
    import os
    import socket

    try:
        family, *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.create_server(address[:2], family=family):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ParameterError(f"--host {host} --port {port}: cannot listen there ({reason}); "
                             "choose another --port (or --host)") from None


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line like every other error of the command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neutrosim",
        description="Agent-based simulation of neutrophil-tumor-vessel dynamics in advanced breast cancer.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_deplete(sub)
    _add_sweep(sub)
    _add_analyze(sub)
    _add_params(sub)
    _add_viz(sub)
    calibrate.add_parser(sub)
    export.add_parser(sub)
    fit.add_parser(sub)
    return parser


def _check_environment() -> None:
    """Environment variables neutrosim reads, checked before numba reads them itself."""
    import os

    from .config.threads import env_threads

    text = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if text:
        env_threads(text)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv``; None: this process's own arguments, and then this
    process is the command itself (the ``neutrosim`` script, ``python -m sim``), which also
    tunes its garbage collector (:mod:`sim.runs.warm`). Returns the exit status."""
    args = build_parser().parse_args(argv)
    args.owns_process = argv is None
    warnings.filterwarnings("ignore", category=FutureWarning, module="mesa")
    try:
        _check_environment()
        return args.func(args)
    except ParameterError as exc:
        print(f"neutrosim: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine's refusal (permissions, full disk), not a bug of ours
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"neutrosim: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("neutrosim: interrupted. A single run writes nothing; an experiment or sweep "
              "keeps every finished run (continue with the same command; deplete: --resume)",
              file=sys.stderr)
        return 130
    finally:
        if args.owns_process:  # the interpreter's teardown then frees what is alive without
            gc.freeze()        # the collector first walking all of it


if __name__ == "__main__":
    sys.exit(main())
