"""The ``neutrosim`` command (also ``python -m sim``): thin, calls the modules below it."""

import argparse
import sys
import warnings
from pathlib import Path

from .errors import ParameterError

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
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--params", type=Path, default=None, metavar="FILE",
                   help="TOML overlay on the default parameters")
    p.add_argument("--set", dest="sets", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="override one parameter, dotted key (repeatable)")
    p.add_argument("--scenario", default="control",
                   help="scenario from params/scenarios/ (control, depletion, cxcr2_inhibition, "
                   "macrophage_depletion, contact_blockade)")
    p.add_argument("--rules", type=Path, default=None, metavar="CSV",
                   help="rules table replacing params/rules.csv")
    p.add_argument("--grid", type=int, nargs=2, metavar=("NX", "NY"), default=None,
                   help="grid size in voxels (20 um each by default)")
    p.add_argument("--record-every", type=float, default=None, metavar="HOURS",
                   help="hours between recorded time points (default 6)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from .params import load_params
    from .run import run_one

    overrides = dict(args.sets)
    if args.grid is not None:
        overrides["domain.nx"], overrides["domain.ny"] = args.grid
    if args.record_every is not None:
        overrides["time.record_every_h"] = args.record_every
    if args.days is not None:
        overrides["time.days"] = args.days
    params = load_params(args.params, scenario=args.scenario, overrides=overrides, rules=args.rules)
    out = args.out
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise ParameterError(f"--out {out}: folder exists and is not empty (use --overwrite)")
    result = run_one(params, args.seed, progress=not args.quiet)
    result.meta["command"] = " ".join(["neutrosim", *sys.argv[1:]])
    result.write(out, overwrite=args.overwrite)
    if not args.quiet:
        last = result.timeseries.iloc[-1]
        print(f"wrote {out}/ in {result.wall_s:.1f} s: day {last['time_h'] / 24:.1f}, "
              f"{int(last['tumor_cells'])} viable tumor cells, {int(last['neutrophils'])} neutrophils "
              f"({int(last['neutrophil_tumor_pairs'])} bound), "
              f"vessel density {last['vessel_density_per_mm2']:.0f}/mm2")
    return 0


def _add_params(sub) -> None:
    p = sub.add_parser("params", help="print every parameter and rule with unit, value and source",
                       description="Print the parameter reference (Markdown) built from "
                       "params/default.toml and params/rules.csv.")
    p.set_defaults(func=_params)


def _params(args) -> int:
    from .paramdoc import render

    sys.stdout.write(render())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neutrosim",
        description="Agent-based simulation of neutrophil-tumor-vessel dynamics in advanced breast cancer.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_params(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning, module="mesa")
    try:
        return args.func(args)
    except ParameterError as exc:
        print(f"neutrosim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neutrosim: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
