"""Live plots as small inline SVG: a few hundred microseconds per plot per step.

A matplotlib figure per plot per step would cost ~60 ms each (see benchmarks/README.md);
these are plain polylines with ticks from matplotlib's locator, time in days on x, and a
dashed line at the treatment start.
"""

from dataclasses import dataclass
from html import escape

import numpy as np
from matplotlib.ticker import MaxNLocator

__all__ = ["PLOTS", "Plot", "line_plot", "plots_html"]

MAX_POINTS = 600  # longer series are thinned (every k-th point, the last kept)


@dataclass(frozen=True)
class Plot:
    """One panel: title, y unit, and the DataCollector columns drawn (column, label, colour)."""

    title: str
    unit: str
    series: tuple[tuple[str, str, str], ...]


#: the panels of the view, from sim.readouts' reporter names
PLOTS = (
    Plot("Cell counts", "cells", (("tumor_cells", "tumor", "#e6550d"),
                                  ("neutrophils", "neutrophils", "#1f3fff"),
                                  ("macrophages", "macrophages", "#8c564b"),
                                  ("endothelial_cells", "vessels", "#d62728"))),
    Plot("Proliferation index (Ki67-like)", "fraction",
         (("proliferation_index", "proliferation index", "#e6550d"),)),
    Plot("Vessel density (CD31-like)", "1/mm²",
         (("vessel_density_per_mm2", "vessel density", "#d62728"),)),
    Plot("Neutrophil-tumor pairs (PIC-seq-like)", "pairs",
         (("neutrophil_tumor_pairs", "bound neutrophils", "#00a000"),)),
)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size <= MAX_POINTS:
        return x, y
    k = -(-x.size // MAX_POINTS)
    idx = np.r_[np.arange(0, x.size - 1, k), x.size - 1]
    return x[idx], y[idx]


def line_plot(days: np.ndarray, series: list[tuple[str, str, np.ndarray]], *, title: str,
              unit: str, x_max: float, mark_day: float | None, mark_label: str = "",
              width: int = 290, height: int = 200) -> str:
    """An SVG line plot of ``series`` [(label, colour, values)] against ``days``.

    ``mark_day`` (day) draws the treatment start as a dashed vertical line.
    """
    left, right, top, bottom = 48, 8, 22, 44
    pw, ph = width - left - right, height - top - bottom
    ys = [np.asarray(v, float) for _, _, v in series]
    y_hi = max([float(v.max()) for v in ys if v.size] + [0.0])
    y_lo = min([float(v.min()) for v in ys if v.size] + [0.0])
    if y_hi <= y_lo:
        y_hi = y_lo + 1.0
    yticks = [t for t in MaxNLocator(4).tick_values(y_lo, y_hi) if y_lo - 1e-12 <= t <= y_hi * 1.0001]
    xticks = [t for t in MaxNLocator(6, integer=True).tick_values(0, x_max) if 0 <= t <= x_max]

    def sx(d):
        return left + pw * np.asarray(d, float) / x_max

    def sy(v):
        return top + ph * (1.0 - (np.asarray(v, float) - y_lo) / (y_hi - y_lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'class="neutrosim-plot" data-points="{days.size}" '
           f'style="width: calc(50% - 4px); height: auto; font: 11px sans-serif; background: white">',
           f'<text x="6" y="14" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>']
    for t in yticks:
        y = float(sy(t))
        out.append(f'<line x1="{left - 4}" x2="{left}" y1="{y:.1f}" y2="{y:.1f}" stroke="#888"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in xticks:
        x = float(sx(t))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#888"/>'
                   f'<text x="{x:.1f}" y="{top + ph + 15}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 18}" text-anchor="middle">time [day]</text>')
    out.append(f'<text transform="translate(12 {top + ph / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(unit)}</text>')
    if mark_day is not None and 0 <= mark_day <= x_max:
        x = float(sx(mark_day))
        right_half = x > left + pw / 2
        tx, anchor = (x - 3, "end") if right_half else (x + 3, "start")
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#444" '
                   f'stroke-dasharray="4 3" class="treatment-start"/>'
                   f'<text x="{tx:.1f}" y="{top + 11}" fill="#444" text-anchor="{anchor}">'
                   f'{escape(mark_label)}</text>')
    lx = 6
    for (label, colour, _), v in zip(series, ys):
        if days.size:
            tx, tv = _thin(days, v)
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(sx(tx), sy(tv)))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        if len(series) > 1:
            out.append(f'<rect x="{lx}" y="{height - 9}" width="10" height="3" fill="{colour}"/>'
                       f'<text x="{lx + 13}" y="{height - 5}">{escape(label)}</text>')
            lx += 13 + 5.8 * len(label) + 8
    out.append("</svg>")
    return "".join(out)


def plots_html(columns: dict[str, list], *, start_day: float | None, treated: bool,
               days_total: float) -> str:
    """Every panel of :data:`PLOTS` from DataCollector columns (``time_h`` in hours).

    The x axis spans at least to the treatment start so its marker is always in view; in
    the control scenario the same day is marked as untreated.
    """
    days = np.asarray(columns.get("time_h", []), float) / 24.0
    now = float(days[-1]) if days.size else 0.0
    x_max = max(now, (start_day or 0.0) * 1.1, 0.5)
    x_max = min(x_max, max(days_total, now)) if days_total else x_max
    if start_day is None:
        label = ""
    else:
        label = f"treatment day {start_day:g}" if treated else f"day {start_day:g} (control: untreated)"
    panels = []
    for plot in PLOTS:
        series = [(lab, colour, np.asarray(columns.get(col, []), float)) for col, lab, colour in plot.series]
        panels.append(line_plot(days, series, title=plot.title, unit=plot.unit, x_max=x_max,
                                mark_day=start_day, mark_label=label))
    return ('<div class="neutrosim-plots" style="display: flex; flex-wrap: wrap; gap: 8px 6px">'
            + "".join(panels) + "</div>")
