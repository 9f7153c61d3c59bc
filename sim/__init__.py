"""neutrosim: agent-based simulation of neutrophil-tumor-vessel dynamics in advanced breast cancer.

The data path, top to bottom: parameters (:mod:`sim.params`, :mod:`sim.rules`) ->
model (:mod:`sim.model`) -> fields (:mod:`sim.fields`) and agents (:mod:`sim.agents`) ->
recorders (:mod:`sim.recorders`) -> one run (:mod:`sim.run`) -> figures (:mod:`sim.figures`).
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
