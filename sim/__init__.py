"""neutrosim: agent-based simulation of neutrophil-tumor-vessel dynamics in advanced breast cancer.

The package follows the data path, one folder a layer: :mod:`sim.config` (parameters,
rules, units) -> :mod:`sim.model` (the Mesa model, its populations and tissue) ->
:mod:`sim.cells` (each cell type's rules) and :mod:`sim.fields` (the secreted factors) ->
:mod:`sim.readouts` (what is measured) -> :mod:`sim.runs` (one run, ensembles, executors)
-> :mod:`sim.experiments` (depletion, sweeps, their statistics and report) ->
:mod:`sim.plots` (figures); :mod:`sim.viz` is the browser view and :mod:`sim.cli` the
``neutrosim`` command.
"""

from .config.errors import ParameterError
from .config.params import Params, load_params, scenario_names
from .runs.run import RunResult, run_one

__all__ = ["ParameterError", "Params", "load_params", "scenario_names", "run_one", "RunResult",
           "NeutroModel"]


def __getattr__(name):
    if name == "NeutroModel":  # imported lazily: it pulls in Mesa and numba
        from .model.model import NeutroModel

        return NeutroModel
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
