"""Macrophage turnover: death at the planted rate, entry from the blood at vessel voxels at
the rules' rate (raised by the tumor signal), cut by exactly 1 - e under macrophage
depletion; switched off (the defaults) nothing is drawn."""

import numpy as np
import pytest

from sim import readouts
from sim.cells import endothelial, macrophage, neutrophil
from sim.config.params import load_params
from sim.model.model import NeutroModel
from tests.conftest import EMPTY, planted_rules
from tests.test_model import assert_arrays_match_agents

E0 = 0.005  # 1/min per vessel voxel, the planted base of extravasation
EMAX = 0.045  # 1/min per vessel voxel, the planted saturation of the tumor_signal rule
HALF = 0.3  # half-max of that rule in params/rules.csv (power 2)
ENTRY_RULE = "macrophage__tumor_signal__increases__extravasation"
ROWS = np.arange(1, 80, 3)  # y of the planted vessels, along x
LEFT = np.arange(2, 38)  # x of the vessels left of the gap (no tumor signal)
RIGHT = np.arange(42, 78)  # x of those right of it (tumor signal at the half-max)


def _model(tmp_path, seed=5, scenario=None, **overrides):
    """An empty model whose rules let the tumor signal raise macrophage entry to EMAX."""
    rules = planted_rules(tmp_path, **{ENTRY_RULE: EMAX})
    assert f"{ENTRY_RULE.replace('__', ',')},{EMAX},{HALF},2," in rules.read_text()
    p = load_params(scenario=scenario, rules=rules,
                    overrides={**EMPTY, "macrophage.extravasation_per_min": E0, **overrides})
    return NeutroModel(p, rng=seed)


def _vessels(m, xs=np.concatenate((LEFT, RIGHT))):
    """Vessel voxels along the rows ROWS at the given x; returns their (x, y)."""
    vx, vy = (a.ravel() for a in np.meshgrid(xs, ROWS, indexing="ij"))
    m.spawn(endothelial.KIND, vx, vy, state=endothelial.STALK, born_min=-np.inf, perfused=True)
    return vx, vy


def _uniforms(m, n):
    """The next ``n`` uniforms the model's generator will give (from a copy of it)."""
    g = np.random.Generator(type(m.rng.bit_generator)())
    g.bit_generator.state = m.rng.bit_generator.state
    return g.random(n)


def _rate(signal):
    """The rule's extravasation rate (1/min) at a tumor signal (Hill, power 2)."""
    u = (signal / HALF) ** 2
    return E0 + (EMAX - E0) * u / (1 + u)


def test_macrophages_die_at_the_planted_rate(empty_model):
    rate, steps = 0.01, 5  # 1/min; a survival of exp(-0.3) over the 30 min
    m = empty_model(seed=2, **{"macrophage.death_rate_per_min": rate})
    n = 2000
    flat = m.rng.choice(80 * 80, size=n, replace=False)
    mx, my = np.unravel_index(flat, (80, 80))
    m.spawn(macrophage.KIND, mx, my, state=macrophage.RESTING, heading=np.zeros(n, np.int8))
    for _ in range(steps):
        m.step()
    p = np.exp(-rate * steps * m.p.time.dt_min)
    assert abs(m.macrophages.n - p * n) < 4 * np.sqrt(n * p * (1 - p))  # 4 SD of a binomial
    assert m.macrophages_recruited == 0  # no vessels, no entry
    assert_arrays_match_agents(m)


def test_entry_at_vessels_at_the_rules_rate_entering_resting(tmp_path):
    m = _model(tmp_path)
    vx, vy = _vessels(m)
    ts = m.fields["tumor_signal"]
    ts[:40, :] = 0.0  # left of the gap: the base rate E0
    ts[40:, :] = HALF  # right: U = 1/2, halfway to EMAX
    # a neutrophil on every vessel voxel: newcomers take a free voxel beside their vessel
    m.spawn(neutrophil.KIND, vx, vy, state=neutrophil.NAIVE, partner=-1, heading=0,
            death_min=np.inf)
    u = _uniforms(m, m.endothelial.n)
    rate = np.where(vx < 40, _rate(0.0), _rate(HALF))
    np.testing.assert_allclose(rate[vx > 40], (E0 + EMAX) / 2, rtol=1e-12)
    expected = u < m.scales.prob(rate)
    macrophage.recruit(m, neutrophil.viable_tumor_map(m))
    mc = m.macrophages
    left = mc["x"] < 40  # the gap keeps each newcomer on its vessel's side
    assert left.sum() == expected[vx < 40].sum() > 0
    assert (~left).sum() == expected[vx > 40].sum() > left.sum()
    assert m.macrophages_recruited == mc.n == readouts.REPORTERS["macrophages_recruited"](m)
    assert (mc["state"] == macrophage.RESTING).all()
    vessel = np.zeros((80, 80), bool)
    vessel[vx, vy] = True
    near = np.zeros_like(vessel)  # the vessel voxels and their 8 neighbours
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            near |= np.roll(np.roll(vessel, dx, 0), dy, 1)
    assert near[mc["x"], mc["y"]].all()
    assert not (m.neutrophils.at[mc["x"], mc["y"]] >= 0).any()
    assert_arrays_match_agents(m)
    # binomial check of the rate itself, over many independent vessel-steps
    p = m.scales.prob(np.array([_rate(0.0), _rate(HALF)]))
    for side, pk in zip((vx < 40, vx > 40), p):
        k = side.sum()
        assert abs(expected[side].sum() - pk * k) < 4 * np.sqrt(k * pk * (1 - pk))


def test_macrophage_depletion_cuts_entry_by_exactly_one_minus_e(tmp_path):
    m = _model(tmp_path, scenario="macrophage_depletion", **{"intervention.start_day": 0.0})
    e = m.p.intervention.macrophage_depletion
    assert 0 < e < 1
    vx, _ = _vessels(m)
    m.fields["tumor_signal"][:] = HALF
    viable_at = neutrophil.viable_tumor_map(m)
    assert m.treatment.macrophage_recruitment == 1.0  # before the start
    m.treatment.apply(m)
    assert m.treatment.macrophage_recruitment == 1 - e
    u = _uniforms(m, vx.size)
    full = (u < m.scales.prob(_rate(HALF))).sum()
    cut = (u < m.scales.prob(_rate(HALF) * (1 - e))).sum()
    assert 0 < cut < full
    macrophage.recruit(m, viable_at)
    assert m.macrophages_recruited == m.macrophages.n == cut


def test_full_depletion_stops_entry_without_a_draw(tmp_path):
    m = _model(tmp_path, scenario="macrophage_depletion",
               **{"intervention.start_day": 0.0, "intervention.macrophage_depletion": 1.0})
    _vessels(m)
    m.fields["tumor_signal"][:] = HALF
    m.treatment.apply(m)
    before = m.rng.bit_generator.state
    macrophage.recruit(m, neutrophil.viable_tumor_map(m))
    assert m.rng.bit_generator.state == before and m.macrophages.n == 0


@pytest.mark.parametrize("on", [False, True])
def test_turnover_off_draws_nothing(tmp_path, on):
    """Death rate, entry base and the entry rule's saturation 0: no death, no entry, and
    the random stream untouched; any one rate above 0 switches its event on."""
    rates = {"macrophage.death_rate_per_min": 0.01 if on else 0.0,
             "macrophage.extravasation_per_min": 0.0}
    rules = planted_rules(tmp_path, **{ENTRY_RULE: 0.0})
    m = NeutroModel(load_params(overrides={**EMPTY, **rates}, rules=rules), rng=3)
    _vessels(m)
    m.fields["tumor_signal"][:] = 1.0
    m.spawn(macrophage.KIND, np.arange(10, 20), np.full(10, 40), state=macrophage.ACTIVATED,
            heading=0)
    before = m.rng.bit_generator.state
    viable_at = neutrophil.viable_tumor_map(m)
    macrophage.die(m, viable_at)
    macrophage.recruit(m, viable_at)
    assert (m.rng.bit_generator.state != before) == on
    if not on:
        assert m.macrophages.n == 10 and m.macrophages_recruited == 0
