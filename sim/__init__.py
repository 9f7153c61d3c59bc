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

__all__ = ["ParameterError", "Params", "load_params", "scenario_names", "run_one", "RunResult",
           "NeutroModel"]

# imported on first use: they pull in numba and Mesa, and the command line must check its
# environment (NUMBA_NUM_THREADS) before numba reads it
_LAZY = {"Params": "config.params", "load_params": "config.params",
         "scenario_names": "config.params", "run_one": "runs.run", "RunResult": "runs.run",
         "NeutroModel": "model.model"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
