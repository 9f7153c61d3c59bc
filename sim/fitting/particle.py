"""One particle of the fit: parameter values -> every arm x replicate run -> outcomes.

:class:`ParticleModel` is what pyabc calls (``model(parameters) -> outcomes``): a
top-level class holding the spec, so process pools and Dask workers can unpickle it.
Replicate r runs with seed ``seed + r`` in every arm and at every particle (common random
numbers, as in sweeps: particles differ by their parameters, not by seed noise). Each run
is :func:`sim.runs.ensemble.simulate_model` (``run_one`` on one thread; the arms of a
replicate share the days before the intervention, simulated once) unless another
``simulate(RunSpec) -> (table, final)`` is given (tests plant an analytic model).
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from ..config.params import Params
from ..runs.ensemble import RunSpec, branch_groups, simulate_branches, simulate_model
from .outcomes import compute_outcomes
from .spec import FitSpec

__all__ = ["ParticleModel", "simulate_particle", "model_values"]

#: the arms' parameters without the particle's values, per process: (spec digest, arm) ->
#: Params (reading the TOML files once per worker, not once per particle)
_BASE: dict[tuple[str, str], Params] = {}


def model_values(spec: FitSpec, abc_values: Mapping[str, float]) -> dict[str, float | int]:
    """The ABC's parameter values (log10 for log-uniform priors) in the model's units."""
    return {p.name: p.to_model(abc_values[p.name]) for p in spec.priors}


def _base(spec: FitSpec, arm: str) -> Params:
    key = (spec.digest(), arm)
    if key not in _BASE:
        _BASE[key] = spec.base_params(arm)
    return _BASE[key]


def simulate_particle(spec: FitSpec, values: Mapping[str, Any], *, seed: int | None = None,
                      simulate: Callable = simulate_model) -> pd.DataFrame:
    """The tidy table (arm, replicate, seed, time_h, readouts) of every arm x replicate at
    ``values`` (model units); replicate r uses seed ``seed + r`` (default the spec's)."""
    sim = spec.simulation
    first = sim.seed if seed is None else seed
    runs = []
    for arm in sim.arms:
        params = _base(spec, arm).replace(dict(values), origin="fitted parameters")
        runs += [RunSpec(f"{arm}-r{r:02d}", params, first + r, {"arm": arm, "replicate": r},
                         days=sim.days) for r in range(sim.replicates)]
    tables = _simulate_runs(runs, simulate)
    parts = []
    for run in runs:
        table = tables[run.key].copy()
        table.insert(0, "arm", run.labels["arm"])
        table.insert(1, "replicate", run.labels["replicate"])
        table.insert(2, "seed", run.seed)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def _simulate_runs(runs: list[RunSpec], simulate: Callable) -> dict[str, pd.DataFrame]:
    """Each run's table by key. With the neutrosim model, the arms of a replicate share
    the days before their intervention starts (:func:`sim.runs.ensemble.branch_groups`:
    simulated once, bit for bit the same results)."""
    if simulate is not simulate_model:
        return {run.key: simulate(run)[0] for run in runs}
    out = {}
    for group in branch_groups(runs):
        results = simulate_branches(group) if len(group) > 1 else [simulate_model(group[0])]
        out.update({run.key: table for run, (table, _) in zip(group, results)})
    return out


class ParticleModel:
    """``model(parameters) -> {target: outcome}``: what pyabc calls for each particle.

    ``parameters`` are the ABC's values (log10 for log-uniform priors). Non-finite
    outcomes (a percent change against a control mean of 0) come back as +-inf, which no
    epsilon accepts; NaN never does."""

    def __init__(self, spec: FitSpec, simulate: Callable = simulate_model):
        self.spec = spec
        self.simulate = simulate
        self.__name__ = "neutrosim"  # pyabc names the model after its callable

    def __call__(self, parameters: Mapping[str, float]) -> dict[str, float]:
        return self.outcomes(model_values(self.spec, parameters))

    def outcomes(self, values: Mapping[str, Any], seed: int | None = None) -> dict[str, float]:
        """The outcomes at ``values`` in model units (``seed``: of replicate 0)."""
        table = simulate_particle(self.spec, values, seed=seed, simulate=self.simulate)
        out = compute_outcomes(table, self.spec.targets, self.spec.simulation.arms)
        return {k: (v if not math.isnan(v) else math.inf) for k, v in out.items()}


def predictive(job: tuple["ParticleModel", dict[str, Any], int]) -> dict[str, float]:
    """One posterior predictive draw: ``(model, values in model units, seed)`` -> outcomes
    (a top-level function, for the executors)."""
    model, values, seed = job
    return model.outcomes(values, seed=seed)
