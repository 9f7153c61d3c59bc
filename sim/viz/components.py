"""Solara components of the view: the grid picture (with field selector, time, legend,
colour bar and Save) and the live plots. Each takes the model and draws what it holds;
none changes it."""

import hashlib
from dataclasses import fields

import solara
from mesa.visualization.utils import update_counter

from ..plots.state import STYLE
from ..runs.snapshot import final_state
from .controls import RATES
from .picture import FIELD_CHOICES, Picture, field_label, lut, render
from .plots import plots_html
from .save import save_snapshot

__all__ = ["GridView", "PlotsView", "format_time", "legend_html", "colorbar_html"]


def format_time(time_h: float) -> str:
    """'day 2, 6.3 h' from hours since t=0."""
    day = int(time_h // 24.0 + 1e-9)
    return f"day {day}, {time_h - 24.0 * day:.1f} h"


def legend_html() -> str:
    """One swatch per (kind, state) of :data:`sim.plots.state.STYLE`; every agent is one voxel."""
    items = "".join(
        f'<span style="white-space: nowrap; margin-right: 10px">'
        f'<span style="display: inline-block; width: 10px; height: 10px; background: {colour}; '
        f'border: 1px solid #555; margin-right: 3px"></span>{label}</span> '
        for label, colour in STYLE.values())
    return f'<div class="neutrosim-legend" style="font: 12px sans-serif; line-height: 1.6">{items}</div>'


def colorbar_html(pic: Picture) -> str:
    """A horizontal colour bar with the field's range and unit (empty for 'none')."""
    if pic.vmin is None:
        return '<div style="font: 12px sans-serif; color: #555">no field shown</div>'
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in lut()[::32].tolist() + [lut()[-1].tolist()])
    return (f'<div class="neutrosim-colorbar" style="font: 12px sans-serif">'
            f'<div style="height: 12px; border: 1px solid #555; background: linear-gradient(to right, {stops})"></div>'
            f'<div style="display: flex; justify-content: space-between">'
            f'<span>{pic.vmin:.3g}</span><span>{field_label(pic.field)}</span>'
            f'<span>{pic.vmax:.3g}</span></div></div>')


@solara.component
def GridView(model):
    """The grid over a chosen field, with time, legend, colour bar, scale bar and Save."""
    update_counter.get()
    field, set_field = solara.use_state("oxygen")
    saved, set_saved = solara.use_state("")
    pic = render(final_state(model), field)
    digest = hashlib.sha1(pic.png).hexdigest()[:12]
    seed = getattr(model, "seed", "")

    def save():
        set_saved(str(save_snapshot(model, field)))

    with solara.Column(gap="4px", style={"padding": "4px"}):
        with solara.Row(gap="8px", style={"align-items": "center"}):
            solara.Select("Field", value=field, values=list(FIELD_CHOICES), on_value=set_field)
            solara.Button("Save picture + time series", on_click=save, outlined=True)
        solara.HTML(tag="div", classes=["neutrosim-time"], attributes={"data-frame": digest},
                    unsafe_innerHTML=(f"<b>Simulated time: {format_time(model.time_h)}</b> "
                                      f"({model.time_h:.1f} h, step {model.steps}) &mdash; "
                                      f"{model.p.scenario}, seed {seed}"))
        solara.Image(pic.png, width="100%", classes=["neutrosim-grid"])
        solara.HTML(tag="div", unsafe_innerHTML=colorbar_html(pic))
        solara.HTML(tag="div", unsafe_innerHTML=legend_html())
        if saved:
            solara.Success(f"saved to {saved}/")


@solara.component
def PlotsView(model):
    """Cell counts, proliferation index, vessel density and neutrophil-tumor pairs over time,
    with the treatment start marked."""
    update_counter.get()
    iv = model.p.intervention
    treated = any(getattr(iv, f.name) > 0 for f in fields(iv) if f.name != "start_day")
    html = plots_html(model.datacollector.model_vars, start_day=iv.start_day, treated=treated,
                      days_total=model.p.time.days)
    solara.HTML(tag="div", unsafe_innerHTML=html)
    solara.HTML(tag="div", classes=["neutrosim-run"], unsafe_innerHTML=run_summary_html(model),
                style="font: 12px sans-serif; margin-top: 6px")


def run_summary_html(model) -> str:
    """The parameters the shown run was built with (the sliders apply on Reset)."""
    p = model.p
    iv = p.intervention
    strengths = [f"{f.name.replace('_', ' ')} {getattr(iv, f.name):g}" for f in fields(iv)
                 if f.name != "start_day" and getattr(iv, f.name) > 0]
    treatment = (f"{', '.join(strengths)} from day {iv.start_day:g}" if strengths
                 else "no treatment")
    rates = "; ".join(f"{r.label.split(' [')[0].lower()} {_value(p, r.key):g} "
                      f"{r.label.split(' [')[1].rstrip(']')}" for r in RATES.values())
    return (f"<b>This run</b> (controls apply on Reset): {p.scenario}, {treatment}; "
            f"seed {getattr(model, 'seed', '?')}; {rates}.")


def _value(p, key: str) -> float:
    section, name = key.split(".")
    return getattr(getattr(p, section), name)
