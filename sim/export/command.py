"""``neutrosim export RUN_DIR``: a run folder as AnnData (``--anndata OUT.h5ad``) and a
virtual single-cell experiment on it (``--scrna N``).

Every file is written to a temporary sibling and renamed into place once all of them are
written, so an interrupted or failed export leaves no partial file. Bad input is one
message naming the path or option, exit status 2.
"""

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..argtypes import number_in, whole_number
from ..config.errors import ParameterError

__all__ = ["add_parser", "main", "destinations"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to ``subparsers`` (``func``: :func:`main`)."""
    p = subparsers.add_parser(
        "export",
        help="a run folder as AnnData (.h5ad), optionally with a virtual single-cell "
             "RNA-seq experiment on it",
        description="Turn a run's output folder (neutrosim run --out) into AnnData: one row "
        "per agent, positions in obsm['spatial'] (um), cell type and state in obs, the fields "
        "at each cell in X, neutrophil-tumor bonds in obsp['bonds']. With --scrna N, also draw "
        "a virtual single-cell RNA-seq experiment of N cells (integer counts, PIC-seq-like "
        "neutrophil-tumor doublets) and the mapping file neutrosim calibrate reads with it. "
        "Files are written whole or not at all. Formats: docs/export.md.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run's output folder")
    p.add_argument("--anndata", type=Path, default=None, metavar="OUT.h5ad",
                   help="write the agents as AnnData here")
    p.add_argument("--scrna", type=whole_number(1), default=None, metavar="N",
                   help="also draw a virtual single-cell experiment of N cells (at most the "
                        "run's living cells)")
    p.add_argument("--out-counts", type=Path, default=None, metavar="FILE.h5ad",
                   help="where the experiment's counts go (default: beside --anndata, "
                        "OUT.scrna.h5ad); its mapping file goes beside it as "
                        "FILE.mapping.toml (the name without .h5ad)")
    p.add_argument("--seed", type=whole_number(0), default=0,
                   help="random seed of the virtual experiment (default 0)")
    p.add_argument("--touch-doublets", type=number_in(0.0, 1.0, "a probability"), default=0.0, metavar="P",
                   help="probability that a sampled unbound neutrophil touching a viable "
                        "tumor cell comes out as a doublet with it (default 0: only bound "
                        "pairs are doublets)")
    p.add_argument("--window", action="store_true",
                   help="dissociate the whole window (default: the tumor and --margin-um "
                        "around it, as a resected tumor)")
    p.add_argument("--margin-um", type=number_in(0.0, math.inf, "a distance in um"), default=None, metavar="UM",
                   help="tissue taken around the viable tumor cells, um (default 100)")
    p.add_argument("--expression", type=Path, default=None, metavar="TOML",
                   help="expression model (default params/calibration/expression.toml)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=main)
    return p


def destinations(args) -> dict[str, Path]:
    """The files ``args`` asks for: "anndata", and with --scrna "counts" and "mapping";
    a ParameterError when the options ask for nothing or contradict each other."""
    if args.scrna is None:
        extra = [o for o, v in (("--out-counts", args.out_counts),
                                ("--expression", args.expression),
                                ("--margin-um", args.margin_um)) if v is not None]
        if args.window:
            extra.append("--window")
        if args.touch_doublets:
            extra.append("--touch-doublets")
        if extra:
            raise ParameterError(f"{', '.join(extra)}: only with --scrna N")
        if args.anndata is None:
            raise ParameterError("nothing to write: give --anndata OUT.h5ad (and/or --scrna N)")
        return {"anndata": args.anndata}
    out = {} if args.anndata is None else {"anndata": args.anndata}
    counts = args.out_counts
    if counts is None:
        if args.anndata is None:
            raise ParameterError(f"--scrna {args.scrna}: give --out-counts FILE.h5ad (or "
                                 "--anndata OUT.h5ad, beside which the counts go)")
        counts = args.anndata.with_name(_stem(args.anndata) + ".scrna.h5ad")
    out["counts"] = counts
    out["mapping"] = counts.with_name(_stem(counts) + ".mapping.toml")
    return out


def _stem(path: Path) -> str:
    """The file name without a final .h5ad."""
    return path.name[:-len(".h5ad")] if path.name.endswith(".h5ad") else path.name


def check_destinations(files: dict[str, Path], overwrite: bool) -> None:
    """Refuse, before any work, files that exist (without ``overwrite``), folders, and one
    file asked for twice."""
    seen: dict[Path, str] = {}
    for what, path in files.items():
        key = path.absolute()
        if key in seen:
            raise ParameterError(f"{path}: both the {seen[key]} and the {what} file; give "
                                 "different names")
        seen[key] = what
        if path.is_dir():
            raise ParameterError(f"{path}: is a folder, expected a file name")
        if path.exists() and not overwrite:
            raise ParameterError(f"{path}: exists (use --overwrite to replace it)")
        if path.parent.exists() and not path.parent.is_dir():
            raise ParameterError(f"{path}: {path.parent} is not a folder")


def write_together(files: dict[Path, Callable[[Path], None]]) -> None:
    """Call each ``write(tmp)`` on a temporary sibling of its path; once all succeeded,
    rename each into place. On any error every temporary is removed."""
    from ..runs.temporaries import remove_stale, temporary

    temps: list[tuple[Path, Path]] = []
    try:
        for path, write in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale(path.absolute().parent, path.name)
            temps.append((temporary(path, "tmp"), path))
            write(temps[-1][0])
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise


def main(args) -> int:
    """Run ``neutrosim export`` with parsed ``args``; returns the exit status (2: bad input,
    with one message; 1: the system refused to write)."""
    try:
        return _export(args)
    except ParameterError as exc:
        print(f"neutrosim: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"neutrosim: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


def _export(args) -> int:
    from ..config.extras import require

    require("scrna", "export")
    from .anndata import read_run, to_anndata

    if args.scrna is not None and (isinstance(args.scrna, bool) or not isinstance(args.scrna, int)
                                   or args.scrna < 1):
        raise ParameterError(f"--scrna {args.scrna}: expected a whole number >= 1")
    files = destinations(args)
    check_destinations(files, args.overwrite)
    run = read_run(args.run_dir)
    writers: dict[Path, Callable[[Path], None]] = {}
    said: dict[Path, str] = {}  # what each file holds, for the summary
    if "anndata" in files:
        agents = to_anndata(run)
        writers[files["anndata"]] = agents.write_h5ad
        said[files["anndata"]] = (f"{agents.n_obs} agents x {agents.n_vars} fields at "
                                  f"{run.time_h:g} h")
    if "counts" in files:
        from .scrna import load_expression, mapping_toml, virtual_experiment

        if args.window and args.margin_um is not None:
            raise ParameterError("--margin-um: not with --window (which takes every cell)")
        margin = {} if args.margin_um is None else {"margin_um": args.margin_um}
        cells = virtual_experiment(run, args.scrna, args.seed, touch_doublets=args.touch_doublets,
                                   expression=load_expression(args.expression),
                                   window=args.window, **margin)
        writers[files["counts"]] = cells.write_h5ad
        writers[files["mapping"]] = lambda p: p.write_text(mapping_toml())
        said[files["counts"]] = (f"{cells.n_obs} cells x {cells.n_vars} genes, "
                                 f"{cells.uns['virtual_scrna']['doublets']} neutrophil-tumor "
                                 "doublets")
        said[files["mapping"]] = "the mapping for neutrosim calibrate"
    write_together(writers)
    if not args.quiet:
        for path, what in said.items():
            print(f"wrote {path}: {what}")
    return 0
