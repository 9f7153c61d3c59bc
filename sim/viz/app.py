"""The browser view as a Solara app: ``neutrosim viz``, or ``solara run sim/viz/app.py``.

Mesa's SolaraViz with the project's own components: Step, Play/Pause and Reset come from
Mesa; the controls are :func:`sim.viz.controls.model_params` and apply on Reset. Each
browser tab gets its own model. ``--params FILE`` reaches the app as $NEUTROSIM_VIZ_PARAMS.
"""

import warnings

import solara
from mesa.visualization import SolaraViz

# absolute imports: Solara executes this file by path, outside the package
from sim.viz.components import GridView, PlotsView
from sim.viz.controls import ViewModel, initial_controls, model_params, params_file

warnings.filterwarnings("ignore", category=FutureWarning, module="mesa")

#: milliseconds between steps while playing (a step plus redraw takes longer anyway)
PLAY_INTERVAL_MS = 10


def make_view(model=None, params: dict | None = None):
    """The SolaraViz element for ``model`` (default: a new model from the defaults)."""
    params = params if params is not None else model_params(params_file())
    model = model if model is not None else ViewModel(**initial_controls(params))
    return SolaraViz(model, components=[(GridView, 0), (PlotsView, 0)], model_params=params,
                     name="neutrosim: neutrophils, tumor, macrophages and vessels",
                     play_interval=PLAY_INTERVAL_MS)


@solara.component
def Page():
    params = solara.use_memo(lambda: model_params(params_file()), [])
    model = solara.use_memo(lambda: ViewModel(**initial_controls(params)), [])
    return make_view(model, params)
