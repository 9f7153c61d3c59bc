"""The grid picture: one field as a heatmap with every agent painted into its voxel.

Everything is composed as one RGB array in numpy (no matplotlib figure per frame) and
encoded as one PNG, so a redraw of the default 200 x 200 grid costs a few milliseconds.
Colours and labels are those of the static figures (:mod:`sim.plots.state`).
"""

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from PIL import Image, ImageDraw, ImageFont

from ..config.field_registry import FIELDS, field_info
from ..plots.state import STYLE, agent_image
from ..runs.snapshot import AGENT_KINDS

__all__ = ["FIELD_CHOICES", "CMAP", "Picture", "render", "field_label"]

#: fields the view offers (key -> menu label); "none" leaves the tissue blank
FIELD_CHOICES = {**{f.name: f.menu for f in FIELDS if f.menu is not None}, "none": "none"}
CMAP = "Greys"  # as sim.plots.state.plot_final_state
TISSUE_RGB = (0.97, 0.97, 0.95)
#: immune cells painted over tumor and vessels, macrophages first (neutrophils on top)
IMMUNE = ("macrophages", "neutrophils")


@dataclass(frozen=True)
class Picture:
    """One frame: the PNG and what its colour bar needs.

    ``vmin``/``vmax`` are in the field's unit (None for "none"); ``scale`` is pixels per
    voxel; ``bar_px`` the length of the 1 mm scale bar in pixels.
    """

    png: bytes
    rgb: np.ndarray
    field: str
    vmin: float | None
    vmax: float | None
    scale: int
    bar_px: int


def field_label(field: str) -> str:
    """'oxygen [mmHg]'-style label (:class:`sim.config.field_registry.FieldInfo`)."""
    if field == "none":
        return "no field"
    return field_info(field).axis_label


@lru_cache(maxsize=4)
def lut(name: str = CMAP, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colour table of a matplotlib colormap."""
    return (colormaps[name](np.linspace(0.0, 1.0, n))[:, :3] * 255 + 0.5).astype(np.uint8)


def _field_rgb(data: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Heatmap (ny, nx, 3) float in [0, 1] of a (nx, ny) field, with its range."""
    vmin, vmax = float(data.min()), float(data.max())
    span = vmax - vmin if vmax > vmin else 1.0
    idx = ((data.T - vmin) * (255.0 / span)).astype(np.intp)
    np.clip(idx, 0, 255, out=idx)
    return lut()[idx] / 255.0, vmin, vmax


def compose(state: dict, field: str) -> tuple[np.ndarray, float | None, float | None]:
    """RGB uint8 (ny, nx, 3), row 0 at y=0, of a :func:`sim.runs.snapshot.final_state` dict."""
    if field == "none":
        nx, ny = state["field_oxygen"].shape
        rgb = np.empty((ny, nx, 3))
        rgb[:] = TISSUE_RGB
        vmin = vmax = None
    else:
        data = np.asarray(state[f"field_{field}"])
        nx, ny = data.shape
        rgb, vmin, vmax = _field_rgb(data)
    over = agent_image(state, (nx, ny))  # tumor and vessels, RGBA, as the static figure
    a = over[..., 3:4]
    rgb = rgb * (1.0 - a) + over[..., :3] * a
    kind, x, y, st = state["agent_kind"], state["agent_x"], state["agent_y"], state["agent_state"]
    for name in IMMUNE:
        k = AGENT_KINDS.index(name)
        for (kname, s), (_, colour) in STYLE.items():
            if kname == name:
                sel = (kind == k) & (st == s)
                rgb[y[sel], x[sel]] = to_rgb(colour)
    return (rgb * 255 + 0.5).astype(np.uint8), vmin, vmax


@lru_cache(maxsize=2)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _scale_bar(img: Image.Image, bar_px: int, scale: int) -> None:
    """A 1 mm bar with its label in the lower right corner, painted into ``img``."""
    w, h = img.size
    thick = max(2 * scale, 4)
    x1, y1 = w - 12, h - 12
    x0, y0 = x1 - bar_px, y1 - thick
    draw = ImageDraw.Draw(img)
    font = _font(max(12, 5 * scale))
    tw = draw.textlength("1 mm", font=font)
    draw.rectangle((x0 - 6, y0 - 8 - 5 * scale - 4, x1 + 6, y1 + 6), fill=(255, 255, 255))
    draw.rectangle((x0, y0, x1, y1), fill=(0, 0, 0))
    draw.text(((x0 + x1 - tw) / 2, y0 - 6 - 5 * scale), "1 mm", fill=(0, 0, 0), font=font)


def render(state: dict, field: str = "oxygen", *, scale: int = 3) -> Picture:
    """The frame of ``state`` (:func:`sim.runs.snapshot.final_state`) over ``field``.

    ``scale`` pixels per voxel (integer upscaling, no smoothing: one voxel stays one
    block). The PNG is written at compression level 1 (fast; 17-50 kB for 600 px).
    """
    if field not in FIELD_CHOICES:
        raise ValueError(f"unknown field {field!r}; allowed: {', '.join(FIELD_CHOICES)}")
    rgb, vmin, vmax = compose(state, field)
    rgb = rgb[::-1]  # y up, as imshow(origin="lower") in the static figures
    if scale > 1:
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    voxel_mm = float(state["voxel_um"]) / 1000.0
    bar_px = int(round(scale / voxel_mm))
    img = Image.fromarray(rgb)
    _scale_bar(img, bar_px, scale)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return Picture(buf.getvalue(), np.asarray(img), field, vmin, vmax, scale, bar_px)
