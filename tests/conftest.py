"""Shared fixtures: small configurations that keep the suite fast on CI's 2 cores."""

import warnings

import pytest

from sim.params import load_params

#: a 1.6 x 1.6 mm window with a 300 um tumor: same rules, ~6x cheaper than the default
SMALL = {
    "domain.nx": 80,
    "domain.ny": 80,
    "initial.tumor_radius_um": 300.0,
    "initial.host_vessels": 4,
    "time.warmup_steps": 5,
}

#: nothing placed at t=0: tests put agents where they want them
EMPTY = {
    **SMALL,
    "initial.tumor_packing": 0.0,
    "initial.host_vessels": 0,
    "initial.tumor_vessel_density_per_mm2": 0.0,
    "initial.macrophages_per_mm2": 0.0,
    "initial.neutrophils_per_mm2_tumor": 0.0,
    "time.warmup_steps": 0,
}


@pytest.fixture
def small_params():
    return load_params(overrides=SMALL)


@pytest.fixture
def empty_model():
    """A model with no cells, built from any extra overrides."""
    from sim.model import NeutroModel

    def make(seed=0, scenario=None, **overrides):
        p = load_params(scenario=scenario, overrides={**EMPTY, **overrides})
        return NeutroModel(p, rng=seed)

    return make


@pytest.fixture(autouse=True)
def _quiet_mesa():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="mesa")
        yield
