"""``neutrosim fit TARGETS.toml --out DIR``: ABC-SMC of model parameters to targets, on a
local process pool, a local Dask cluster or an existing one; resumable."""

import argparse
import sys
from pathlib import Path

from ..argtypes import whole_number

__all__ = ["add_parser", "main"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="fit parameters to target outcomes by ABC-SMC (pyabc), resumable",
        description="Fit the parameters named in TARGETS.toml (priors) to its targets (outcomes "
        "of the runs each particle makes: a readout of an arm, or an arm's change against "
        "control) by ABC-SMC (pyabc). Writes history.db (resumable: the same command "
        "continues an interrupted fit, or a finished one to more generations), "
        "posterior.parquet, figures/, ppc.csv (posterior predictive check), params.toml "
        "(an overlay at the posterior median) and report.md into --out. Needs the fit extra: "
        "pip install 'neutrosim[fit]'. Format and method: docs/fitting.md.")
    p.add_argument("targets", type=Path, metavar="TARGETS.toml", help="the targets file")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="fit folder")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=whole_number(1), default=None, metavar="N",
                       help="local worker processes (default: one per core; 1: in this "
                       "process, reproducibly)")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="send the particles to an existing Dask distributed scheduler")
    where.add_argument("--dask-local", type=whole_number(1), default=None, metavar="N",
                       help="start a local Dask cluster with N single-threaded workers")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing fit folder instead of continuing it")
    p.add_argument("--quiet", action="store_true", help="no progress lines or summary")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..config.extras import require

    require("fit", "fit")
    from contextlib import nullcontext

    from ..runs.executors import DaskExecutor
    from .fit import check_fit_folder, run_fit
    from .spec import load_spec

    spec = load_spec(args.targets)  # every refusal before any particle runs
    run_id = check_fit_folder(spec, args.out, overwrite=args.overwrite)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    if run_id is not None:
        say(f"neutrosim fit: continuing the fit in {args.out} (run {run_id} of its history)")
    dask = None
    if args.scheduler or args.dask_local:
        dask = DaskExecutor(args.scheduler, local_workers=args.dask_local)
    with dask or nullcontext():
        result = run_fit(spec, args.out, dask, workers=args.workers, overwrite=args.overwrite,
                         progress=not args.quiet, command=" ".join(["neutrosim", *sys.argv[1:]]),
                         run_id=run_id)
    if not args.quiet:
        parts = [f"{r.parameter} {r.median:.4g} [{r.ci90_low:.4g}, {r.ci90_high:.4g}]"
                 for r in result.summary.itertuples()]
        say(f"wrote {args.out}/: {len(result.generations)} generations; posterior median "
            f"[90% CI]: {'; '.join(parts)}")
    return 0


def _parser() -> argparse.ArgumentParser:  # for tests and tries that call main() directly
    ap = argparse.ArgumentParser(prog="neutrosim")
    add_parser(ap.add_subparsers())
    return ap
