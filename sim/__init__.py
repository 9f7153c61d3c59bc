"""neutrosim: agent-based simulation of neutrophil-tumor-vessel dynamics in advanced breast cancer.

The data path, top to bottom: parameters (:mod:`sim.params`, :mod:`sim.rules`) ->
model (:mod:`sim.model`) -> fields (:mod:`sim.fields`) and agents (:mod:`sim.agents`) ->
recorders (:mod:`sim.recorders`) -> one run (:mod:`sim.run`) -> many runs
(:mod:`sim.ensemble`, :mod:`sim.executors`) -> experiments (:mod:`sim.depletion`,
:mod:`sim.sweep`) -> analysis and figures (:mod:`sim.stats`, :mod:`sim.sensitivity`,
:mod:`sim.figures`, :mod:`sim.experiment_figures`, :mod:`sim.report`); the browser view
is :mod:`sim.viz`.
"""

from .errors import ParameterError
from .params import Params, load_params, scenario_names
from .run import RunResult, run_one

__all__ = ["ParameterError", "Params", "load_params", "scenario_names", "run_one", "RunResult",
           "NeutroModel"]


def __getattr__(name):
    if name == "NeutroModel":  # imported lazily: it pulls in Mesa and numba
        from .model import NeutroModel

        return NeutroModel
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
