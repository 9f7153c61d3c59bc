"""``neutrosim calibrate``: single-cell data -> a parameter overlay, a rules table, the
derived values, a report and provenance, written into one folder at once."""

import argparse
import math
import sys
from pathlib import Path

__all__ = ["add_parser", "main", "OUTPUTS"]

#: what a calibration folder holds (an existing one is replaced only with --overwrite)
OUTPUTS = ("params.toml", "rules.csv", "derived.json", "report.md", "figures",
           "provenance.json", "manifest.json")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="derive parameters from single-cell RNA-seq (and PIC-seq) data",
        description="Read single-cell counts (.h5ad, a 10x folder or .h5, or genes x cells "
        "UMI tables with a metadata table), map their labels to the model with MAP.toml, "
        "and write params.toml (an overlay for neutrosim run --params), rules.csv, "
        "derived.json, report.md, figures/ and provenance.json into --out. Needs the "
        "scrna extra: pip install 'neutrosim[scrna]'. Equations: docs/calibration.md.")
    p.add_argument("data", type=Path, nargs="+", metavar="DATA",
                   help="an .h5ad, a 10x folder, a 10x .h5, or one or more UMI tables")
    p.add_argument("--mapping", type=Path, required=True, metavar="MAP.toml",
                   help="how the data's labels map to the model (see docs/calibration.md)")
    p.add_argument("--metadata", type=Path, default=None, metavar="TABLE",
                   help="cell metadata table (first column: cell id); needed for 10x and "
                   "UMI-table input, joined to an .h5ad's own")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--axes", type=Path, default=None, metavar="FILE",
                   help="ligand-receptor axes (default params/calibration/axes.toml)")
    p.add_argument("--programmes", type=Path, default=None, metavar="FILE",
                   help="gene programmes (default params/calibration/programmes.toml)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=main)


def sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, in name order)."""
    import hashlib

    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for pkg in ("neutrosim", "numpy", "pandas", "scipy", "anndata", "scanpy", "h5py",
                "scikit-learn", "liana"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _json_safe(obj):
    """NaN and infinity as null (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def main(args) -> int:
    from ..config.extras import require

    require("scrna", "calibrate")
    from ..config.params import load_params
    from ..runs.destination import check_out
    from .counts import read_counts
    from .derive import derive
    from .genesets import genes_of, load_axes, load_programmes
    from .liana_check import check_pairs
    from .mapping import label_cells, load_mapping
    from .parameters import calibrate_params
    from .report import write_outputs

    mapping = load_mapping(args.mapping)
    axes = load_axes(args.axes)
    programmes = load_programmes(args.programmes)
    check_out(args.out, replace=args.overwrite, ours=OUTPUTS)  # fail before the reading
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    counts = read_counts(args.data, genes_of(axes, programmes), metadata=args.metadata,
                         progress=not args.quiet)
    data_name = ", ".join(str(p) for p in args.data)
    cells = label_cells(mapping, counts.obs, data_name)
    derived = derive(counts, cells, axes, programmes, mapping)
    hashes = {str(p): sha256(p) for p in [*args.data, *([args.metadata] if args.metadata else [])]}
    n_samples = sum(len(v) for v in derived.samples.values())
    first = next(iter(hashes.values()))
    more = f" and {len(args.data) - 1} more files" if len(args.data) > 1 else ""
    source = (f"calibrated from {args.data[0].name}{more} (sha256 {first[:12]}), "
              f"{sum(derived.cells.values())} cells in {n_samples} "
              f"sample{'s' if n_samples != 1 else ''}")
    params = load_params()
    cal = calibrate_params(derived, params, axes, programmes, source)
    liana = check_pairs(axes)
    provenance = {"inputs": hashes, "format": counts.fmt, "mapping": mapping.as_dict(),
                  "mapping_file": str(args.mapping),
                  "axes_file": str(args.axes or "params/calibration/axes.toml"),
                  "programmes_file": str(args.programmes or "params/calibration/programmes.toml"),
                  "versions": _versions(), "methods": cal.method,
                  "liana": liana, "command": sys.argv}
    out = write_outputs(args.out, derived=_json_safe(derived.as_dict()), cal=cal,
                        params=params, provenance=_json_safe(provenance), axes=axes,
                        programmes=programmes, source=source, liana=liana,
                        overwrite=args.overwrite, ours=OUTPUTS)
    say(f"neutrosim calibrate: {sum(derived.cells.values())} cells in {n_samples} "
        f"sample{'s' if n_samples != 1 else ''}, stages {', '.join(derived.stages)}; "
        f"{len(cal.rows())} values calibrated -> {out}")
    return 0


def _parser() -> argparse.ArgumentParser:  # for tests that call main() directly
    ap = argparse.ArgumentParser(prog="neutrosim")
    add_parser(ap.add_subparsers())
    return ap
