"""Figures of a model state: agents over a field, with legend, mm scale bar and colour bar."""

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.offsetbox import AnchoredOffsetbox, AuxTransformBox, TextArea, VPacker
from matplotlib.patches import Patch, Rectangle

from ..config.field_registry import field_info

__all__ = ["plot_final_state", "agent_image", "STYLE"]

#: (kind, state) -> (label, colour); tumor and vessels are painted per voxel,
#: immune cells drawn as markers on top.
STYLE = {
    ("tumor", 0): ("tumor, normoxic", "#f2c4a0"),
    ("tumor", 1): ("tumor, hypoxic", "#9b7fc0"),
    ("tumor", 2): ("tumor, necrotic", "#4a4a4a"),
    ("tumor", 3): ("tumor, apoptotic", "#e377c2"),
    ("tumor", "invasive"): ("tumor, invasive", "#ff7f0e"),
    ("endothelial", 0): ("vessel (stalk)", "#d62728"),
    ("endothelial", 1): ("vessel (tip)", "#ff00aa"),
    ("neutrophils", 0): ("neutrophil, naive", "#17becf"),
    ("neutrophils", 1): ("neutrophil, activated", "#1f3fff"),
    ("neutrophils", 2): ("neutrophil, bound", "#00ff00"),
    ("macrophages", 0): ("macrophage, resting", "#bcbd22"),
    ("macrophages", 1): ("macrophage, activated", "#8c564b"),
}


def agent_image(state: dict, shape: tuple[int, int]) -> np.ndarray:
    """RGBA image (ny, nx, 4) with tumor cells and vessels painted into their voxels."""
    kinds = [str(k) for k in state["kind_names"]]
    img = np.zeros((shape[1], shape[0], 4))
    kind, x, y, st = state["agent_kind"], state["agent_x"], state["agent_y"], state["agent_state"]
    t = kind == kinds.index("tumor")
    for s in (0, 1, 2, 3):
        sel = t & (st == s)
        img[y[sel], x[sel]] = to_rgba(STYLE[("tumor", s)][1], 0.9)
    inv = np.asarray(state["invasive"], dtype=bool)
    tx, ty = x[t][inv], y[t][inv]
    img[ty, tx] = to_rgba(STYLE[("tumor", "invasive")][1], 1.0)
    e = kind == kinds.index("endothelial")
    for s in (0, 1):
        sel = e & (st == s)
        img[y[sel], x[sel]] = to_rgba(STYLE[("endothelial", s)][1], 1.0)
    return img


def plot_final_state(state: dict, field: str = "proangiogenic", *, ax=None, title: str = "",
                     legend: bool = True, vmax: float | None = None):
    """Agents over one field; returns the figure. ``state`` is ``sim.runs.snapshot.final_state``;
    ``vmax`` fixes the top of the colour scale (to compare panels), else the field's max."""
    data = np.asarray(state[f"field_{field}"])
    nx, ny = data.shape
    voxel_mm = float(state["voxel_um"]) / 1000.0
    if ax is None:
        fig = Figure(figsize=(7.2, 8.0), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    extent = (0, nx, 0, ny)
    im = ax.imshow(data.T, origin="lower", cmap="Greys", extent=extent, interpolation="nearest",
                   vmin=0.0 if vmax is not None else None, vmax=vmax)
    cb = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
    cb.set_label(field_info(field).axis_label)
    ax.imshow(agent_image(state, (nx, ny)), origin="lower", extent=extent, interpolation="nearest")
    kinds = [str(k) for k in state["kind_names"]]
    kind, x, y, st = state["agent_kind"], state["agent_x"], state["agent_y"], state["agent_state"]
    for name, marker, size in (("macrophages", "^", 9), ("neutrophils", "o", 6)):
        for s in sorted({k[1] for k in STYLE if k[0] == name}):
            sel = (kind == kinds.index(name)) & (st == s)
            ax.scatter(x[sel] + 0.5, y[sel] + 0.5, s=size, marker=marker, c=STYLE[(name, s)][1],
                       linewidths=0.2, edgecolors="black")
    if legend:
        _legend(ax)
    ax.add_artist(_scale_bar(ax, 1.0 / voxel_mm, "1 mm", height=max(nx / 200, 1)))
    ax.set_xticks([])
    ax.set_yticks([])
    t_day = float(state["time_h"]) / 24.0
    ax.set_title(f"{title}  —  day {t_day:.1f}" if title else f"day {t_day:.1f}")
    return fig


def _scale_bar(ax, length: float, label: str, height: float) -> AnchoredOffsetbox:
    """A filled black bar ``length`` x ``height`` in data units with ``label`` centred
    under it, framed, in the axes' lower right corner (the layout of mpl_toolkits'
    ``AnchoredSizeBar``, from matplotlib's own offset boxes)."""
    bar = AuxTransformBox(ax.transData)
    bar.add_artist(Rectangle((0, 0), length, height, fill=True, facecolor="black",
                             edgecolor="black"))
    box = VPacker(children=[bar, TextArea(label, textprops={"color": "black"})],
                  align="center", pad=0, sep=2)
    return AnchoredOffsetbox("lower right", pad=0.1, borderpad=0.1, child=box, frameon=True)


def _legend(ax) -> None:
    """One legend entry per (kind, state) of STYLE, below the axes."""
    handles = []
    for (kname, s), (label, colour) in STYLE.items():
        if kname in ("macrophages", "neutrophils"):
            marker = "^" if kname == "macrophages" else "o"
            handles.append(Line2D([], [], ls="", marker=marker, color=colour, mec="black",
                                  mew=0.3, label=label))
        else:
            handles.append(Patch(color=colour, label=label))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3,
              fontsize=8, frameon=False)
