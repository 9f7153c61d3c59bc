"""Sensitivity analysis of a finished sweep, read from its folder (``neutrosim analyze``).

Reads each run's endpoint from its Parquet part one at a time (only the needed columns),
so memory does not grow with the number of time points; builds the per-point outcome
table (control values and treatment effects, :func:`sim.experiments.sweep.outcome_table`); and
computes indices with SALib: Sobol first-order and total with bootstrap CIs (``sobol``),
Morris mu*, mu and sigma with a CI for mu* (``morris``), RBD-FAST first-order (``lhs``).
A ``grid`` gets its response table and, for two factors, a heatmap per outcome.

Writes into ``DIR/analysis/``: ``outcomes.csv`` (one row per design point), ``indices.csv``
(one row per outcome and factor), and figures (PNG and SVG).
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from ..config.errors import ParameterError
from ..runs.ensemble import load_failures
from ..runs.output import replace_into, save_figure, write_json
from .sweep import SweepSpec, outcome_table, read_record

__all__ = ["analyze", "read_endpoints", "indices"]


def read_endpoints(out: str | Path, columns: list[str]) -> pd.DataFrame:
    """The last row of every run part in ``out/runs/`` (columns point, arm, replicate + ``columns``)."""
    rows = []
    for path in sorted((Path(out) / "runs").glob("*.parquet")):
        t = pq.read_table(path, columns=["point", "arm", "replicate", "time_h", *columns])
        last = t.slice(t.num_rows - 1, 1).to_pylist()[0]
        rows.append(last)
    return pd.DataFrame(rows, columns=["point", "arm", "replicate", "time_h", *columns])


def indices(spec: SweepSpec, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Sensitivity indices of one outcome ``y`` over the design ``x`` (rows = points)."""
    from SALib.analyze import morris, rbd_fast, sobol

    prob = spec.problem()
    names = prob["names"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if spec.design == "sobol":
            r = sobol.analyze(prob, y, calc_second_order=False, seed=spec.seed)
            return pd.DataFrame({"parameter": names, "S1": r["S1"], "S1_conf": r["S1_conf"],
                                 "ST": r["ST"], "ST_conf": r["ST_conf"]})
        if spec.design == "morris":
            r = morris.analyze(prob, x, y, num_levels=spec.levels, seed=spec.seed)
            return pd.DataFrame({"parameter": names, "mu_star": r["mu_star"],
                                 "mu_star_conf": r["mu_star_conf"], "mu": r["mu"],
                                 "sigma": r["sigma"]})
        if spec.design == "lhs":
            r = rbd_fast.analyze(prob, x, y, seed=spec.seed)
            return pd.DataFrame({"parameter": names, "S1": r["S1"], "S1_conf": r["S1_conf"]})
    # grid: main effects (range of the level means of each factor)
    rows = []
    for j, name in enumerate(names):
        means = pd.Series(y).groupby(x[:, j]).mean()
        rows.append({"parameter": name, "main_effect_range": float(means.max() - means.min())})
    return pd.DataFrame(rows)


def _ranking_column(design: str) -> tuple[str, str | None]:
    return {"sobol": ("ST", "ST_conf"), "morris": ("mu_star", "mu_star_conf"),
            "lhs": ("S1", "S1_conf")}.get(design, ("main_effect_range", None))


def plot_indices(table: pd.DataFrame, outcome: str, design: str) -> Figure:
    """Horizontal bars of each factor's index with its CI (error bars), largest on top."""
    fig = Figure(figsize=(7, 0.35 * len(table) + 1.6), layout="constrained")
    ax = fig.subplots()
    if design == "sobol":
        t = table.sort_values("ST")
        pos = np.arange(len(t))
        ax.barh(pos - 0.2, t["S1"], 0.4, xerr=t["S1_conf"], label="first order S1", color="#1f77b4")
        ax.barh(pos + 0.2, t["ST"], 0.4, xerr=t["ST_conf"], label="total ST", color="#ff7f0e")
        ax.legend(fontsize=8)
        ax.set_xlabel("Sobol index (95% CI)")
    else:
        col, conf = _ranking_column(design)
        t = table.sort_values(col)
        pos = np.arange(len(t))
        ax.barh(pos, t[col], xerr=t[conf] if conf else None, color="#1f77b4")
        ax.set_xlabel({"mu_star": "Morris mu* (95% CI)", "S1": "RBD-FAST first-order index",
                       "main_effect_range": "range of level means"}[col])
    ax.set_yticks(pos, t["parameter"], fontsize=8)
    ax.set_title(outcome, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_heatmap(outcomes: pd.DataFrame, spec: SweepSpec, outcome: str) -> Figure:
    """Response surface of a two-factor grid: the outcome over the level pairs."""
    a, b = (f.name for f in spec.factors)
    grid = outcomes.pivot_table(index=f"x:{b}", columns=f"x:{a}", values=outcome)
    fig = Figure(figsize=(6, 4.8), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [f"{v:.3g}" for v in grid.columns], fontsize=8)
    ax.set_yticks(range(grid.shape[0]), [f"{v:.3g}" for v in grid.index], fontsize=8)
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    fig.colorbar(im, ax=ax).set_label(outcome)
    return fig


def read_spec(out: str | Path) -> SweepSpec:
    path = Path(out) / "sweep.json"
    if not path.is_file():
        raise ParameterError(f"{path} not found: is {out} a sweep folder (neutrosim sweep --out)?")
    record = read_record(path)
    try:
        return SweepSpec.from_dict(record)
    except (KeyError, TypeError, ValueError):
        raise ParameterError(f"{path}: not a readable sweep record (its spec lacks keys or "
                             "has values of the wrong type)") from None


def analyze(out: str | Path) -> pd.DataFrame:
    """Indices of every outcome of the sweep in ``out``; writes ``out/analysis/``."""
    out = Path(out)
    spec = read_spec(out)
    x = spec.design_matrix()
    ends = read_endpoints(out, list(spec.outcomes))
    if ends.empty:
        raise ParameterError(f"{out}: no finished runs to analyse")
    table = outcome_table(spec, ends)
    for j, f in enumerate(spec.factors):
        table.insert(j, f"x:{f.name}", x[:, j])
    dest = out / "analysis"
    dest.mkdir(exist_ok=True)
    replace_into(dest / "outcomes.csv", lambda p: table.to_csv(p))
    outcome_cols = [c for c in table.columns if not c.startswith("x:")]
    rows, skipped = [], {}
    for col in outcome_cols:
        y = table[col].to_numpy(dtype=float)
        if not np.isfinite(y).all():
            skipped[col] = int((~np.isfinite(y)).sum())
            continue
        ind = indices(spec, x, y)
        ind.insert(0, "outcome", col)
        rows.append(ind)
        figs = {f"indices_{_safe(col)}": plot_indices(ind, col, spec.design)}
        if spec.design == "grid" and len(spec.factors) == 2:
            figs[f"heatmap_{_safe(col)}"] = plot_heatmap(table, spec, col)
        for name, fig in figs.items():
            save_figure(fig, dest / name, dpi=130)
    result = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    replace_into(dest / "indices.csv", lambda p: result.to_csv(p, index=False))
    notes = {"skipped_outcomes": skipped, "failed_runs": list(load_failures(out)),
             "runs_finished": len(ends), "design_points": len(x)}
    write_json(dest / "analysis.json", notes)
    if skipped:
        warnings.warn(f"{out}: outcomes with missing runs were not analysed: {skipped} "
                      "(finish the sweep: re-run the same command)", stacklevel=2)
    return result


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
