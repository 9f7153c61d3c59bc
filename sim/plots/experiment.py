"""Figures of an ensemble of arms: growth curves, paired endpoint panels, final snapshots.

Each function takes the tidy run table (``arm``, ``replicate``, ``time_h``, readouts) or
final states, and returns a matplotlib ``Figure`` (no pyplot state), ready for PNG or SVG.
"""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from ..readouts import READOUTS, at_time
from .state import plot_final_state

__all__ = ["growth_curves", "endpoint_panels", "snapshots", "ARM_COLOURS"]

ARM_COLOURS = {
    "control": "#4d4d4d",
    "depletion": "#d62728",
    "cxcr2_inhibition": "#1f77b4",
    "contact_blockade": "#2ca02c",
    "macrophage_depletion": "#9467bd",
}
#: the four readouts of the main figure (growth, Ki67-like, CD31-like, neutrophils)
MAIN_READOUTS = ("tumor_cells", "proliferation_index", "vessel_density_per_mm2",
                 "neutrophils_in_tumor")


def _colour(arm: str, i: int) -> str:
    return ARM_COLOURS.get(arm, f"C{i}")


def _label(col: str) -> str:
    name, unit = READOUTS.get(col, (col.replace("_", " "), ""))
    return f"{name} [{unit}]" if unit else name


def growth_curves(runs: pd.DataFrame, start_day: float, *, arms=None,
                  readouts=MAIN_READOUTS) -> Figure:
    """Mean of each readout over time per arm, with a 95% CI band (t-based over replicates)."""
    arms = arms or list(dict.fromkeys(runs["arm"]))
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, (len(readouts) + 1) // 2, squeeze=False).ravel()
    for ax, col in zip(axes, readouts):
        for i, arm in enumerate(arms):
            g = runs[runs["arm"] == arm].groupby("time_h")[col]
            mean, sd, n = g.mean(), g.std(ddof=1), g.count()
            half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
            days = mean.index.to_numpy() / 24.0
            ax.plot(days, mean.to_numpy(), color=_colour(arm, i), lw=1.8,
                    label=f"{arm} (n={int(n.max())})")
            ax.fill_between(days, (mean - half).to_numpy(), (mean + half).to_numpy(),
                            color=_colour(arm, i), alpha=0.2, lw=0)
        ax.axvline(start_day, color="black", ls="--", lw=1)
        ax.annotate("treatment start", (start_day, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", fontsize=8)
        ax.set_xlabel("time [days]")
        ax.set_ylabel(_label(col))
        ax.grid(alpha=0.3)
    for ax in axes[len(readouts):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, 0.9))
    fig.suptitle("Mean and 95% confidence band over paired replicates")
    return fig


def endpoint_panels(runs: pd.DataFrame, time_h: float, *, arms=None,
                    readouts=tuple(READOUTS)) -> Figure:
    """One panel per readout at ``time_h``: every replicate a point, the same seed joined."""
    arms = arms or list(dict.fromkeys(runs["arm"]))
    snap = at_time(runs, time_h)
    ncol = 4 if len(readouts) > 4 else len(readouts)
    nrow = -(-len(readouts) // ncol)
    fig = Figure(figsize=(3.1 * ncol, 3.4 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    x = np.arange(len(arms))
    for ax, col in zip(axes, readouts):
        wide = snap.pivot(index="replicate", columns="arm", values=col).reindex(columns=arms)
        for _, row in wide.iterrows():
            ax.plot(x, row.to_numpy(), color="0.6", lw=0.8, zorder=1)
        for i, arm in enumerate(arms):
            ax.scatter(np.full(len(wide), x[i]), wide[arm], color=_colour(arm, i), s=22, zorder=2)
            ax.hlines(wide[arm].mean(), x[i] - 0.25, x[i] + 0.25, color="black", lw=2, zorder=3)
        ax.set_xticks(x, [a.replace("_", "\n") for a in arms], fontsize=8)
        ax.set_title(_label(col), fontsize=9)
        ax.set_xlim(-0.5, len(arms) - 0.5)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(readouts):]:
        ax.set_visible(False)
    fig.suptitle(f"Day {time_h / 24:.0f}: each point a replicate, lines join the same seed, "
                 "bars are means")
    return fig


def snapshots(finals: dict[str, dict], *, field: str = "proangiogenic", seed: int | None = None) -> Figure:
    """Final state of one replicate per arm, side by side, agents over ``field`` on one
    shared colour scale."""
    n = max(len(finals), 1)
    vmax = max((float(np.max(s[f"field_{field}"])) for s in finals.values()), default=None)
    fig = Figure(figsize=(5.6 * n, 6.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    for i, (ax, (arm, state)) in enumerate(zip(axes, finals.items())):
        plot_final_state(state, field, ax=ax, title=arm + (f", seed {seed}" if seed is not None else ""),
                         legend=(i == n // 2), vmax=vmax)
    return fig
