"""A process made ready for runs: the modules a run imports and the compiled kernels
numba loads on a run's first steps, paid once per process instead of on its first run.

:func:`warm` imports modules (and, asked, loads the kernels by stepping a tiny model) with
Python's cyclic garbage collector paused, then freezes everything alive
(:func:`gc.freeze`): modules, classes and compiled kernels live as long as the process,
so later collections, and the interpreter's teardown, no longer walk them. That is a
change to the whole process, for the processes that exist to run neutrosim: the
``neutrosim`` command, and the fork server of the worker pool (:mod:`.preload`), whose
workers are forked from it warm (:class:`sim.runs.executors.ProcessExecutor`).

Warming changes no result: the model draws every random number from its own generator,
and a kernel loaded here is the same machine code a run would load itself.
"""

import gc
import importlib
import sys
from collections.abc import Iterable

__all__ = ["PARAMS_MODULES", "RUN_MODULES", "WRITE_MODULES", "WORKER_MODULES", "warm",
           "load_kernels", "loaded_kernels"]

#: what reading the parameters and checking the output folder import (numba and pandas,
#: by the rules table), before a run's modules: the ``neutrosim run`` command imports
#: them first, so that a bad parameter or ``--out`` is reported without the rest
PARAMS_MODULES = ("sim.config.params", "sim.runs.destination")
#: what a run imports: the model (numba, Mesa with pandas, scipy and networkx)
RUN_MODULES = ("sim.runs.run", "sim.model.model")
#: what writing a run's folder imports (:meth:`sim.runs.run.RunResult.write`): the figure
#: (matplotlib, its Agg canvas and Pillow's PNG writer) and the Parquet table (pyarrow)
WRITE_MODULES = ("sim.plots.state", "matplotlib.backends.backend_agg", "PIL.PngImagePlugin",
                 "pyarrow.parquet")
#: what an ensemble's worker imports: the model and the ensemble runner (pyarrow)
WORKER_MODULES = (*RUN_MODULES, "sim.runs.ensemble")

#: the tiny model of :func:`load_kernels`: default parameters on a 0.8 x 0.8 mm window,
#: stepped long enough that every kind of cell acts (each kernel's every signature loads)
_TINY = {"domain.nx": 40, "domain.ny": 40, "initial.tumor_radius_um": 300.0}
_TINY_STEPS = 30


def warm(modules: Iterable[str], *, kernels: bool = False) -> None:
    """Import ``modules``, and with ``kernels`` call :func:`load_kernels`, with the cyclic
    garbage collector paused; then freeze what is alive (:func:`gc.freeze`).

    For a process that exists to run neutrosim (see the module's docstring), not for a
    library caller: frozen objects are never collected again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in modules:
            importlib.import_module(name)
        if kernels:
            load_kernels()
            gc.collect()  # the tiny model's cycles, so that they are not frozen with the rest
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


def load_kernels() -> None:
    """Step a tiny model (default parameters, 40 x 40 voxels) on one thread, so that numba
    loads from its cache (or compiles, on the first run after an install) the kernels a run
    calls. A kernel it misses is loaded by the first run that calls it, as without this."""
    from ..config.params import load_params
    from .run import build_model

    model = build_model(load_params(overrides=_TINY), 0, threads=1)
    for _ in range(_TINY_STEPS):
        model.step()


def loaded_kernels() -> dict[str, int]:
    """``{module.function: compiled signatures}`` of this process's numba kernels in
    neutrosim's modules that have at least one (loaded from the cache or compiled)."""
    dispatcher = getattr(sys.modules.get("numba.core.dispatcher"), "Dispatcher", None)
    if dispatcher is None:  # numba not imported: nothing is loaded
        return {}
    out = {}
    for name, module in list(sys.modules.items()):
        if name != "sim" and not name.startswith("sim."):
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, dispatcher) and obj.overloads:
                fn = obj.py_func
                out[f"{fn.__module__}.{fn.__qualname__}"] = len(obj.overloads)
    return out
