"""Killing and apoptosis: neutrophils kill only on contact, at the rate the rules give;
apoptotic cells hold their voxel for their duration, then free it; with every rate 0
nothing is drawn (so the default model is unchanged)."""

import numpy as np
import pytest

from sim.cells import neutrophil, tumor
from sim.config.params import load_params
from sim.model.model import NeutroModel
from tests.conftest import EMPTY, KILL_RULE, planted_rules

KILL = 0.05  # 1/min, the planted saturation of the kill rule


@pytest.fixture
def killing_model(tmp_path):
    """An empty model whose rules let naive neutrophils kill at up to KILL per minute."""
    rules = planted_rules(tmp_path, **{KILL_RULE: KILL})
    return NeutroModel(load_params(overrides=EMPTY, rules=rules), rng=5)


def _pairs(m, xs, ys, state=neutrophil.NAIVE):
    """A tumor cell at each (x, y) and a neutrophil beside it at (x + 1, y)."""
    t = m.spawn(tumor.KIND, xs, ys, state=np.zeros(xs.size))
    m.spawn(neutrophil.KIND, xs + 1, ys, state=np.full(xs.size, state), partner=-1,
            heading=np.zeros(xs.size), death_min=np.full(xs.size, np.inf))
    return t


def test_neutrophils_kill_only_on_contact_at_the_rules_rate(killing_model):
    m = killing_model
    gx, gy = np.meshgrid(np.arange(2, 58, 4), np.arange(2, 78, 3), indexing="ij")
    pairs = _pairs(m, gx.ravel(), gy.ravel())  # each neutrophil touches exactly one cell
    far = np.arange(66, 78, 2)  # neutrophils with no tumor cell within reach
    m.spawn(neutrophil.KIND, np.repeat(far, 10), np.tile(np.arange(5, 75, 7), far.size),
            state=neutrophil.NAIVE, partner=-1, heading=0, death_min=np.inf)
    viable_at = neutrophil.viable_tumor_map(m)
    sig = neutrophil.signals(m, viable_at)
    rate = m.behaviour("neutrophil", "kill", sig, m.neutrophils.n)
    touching = np.arange(m.neutrophils.n) < pairs.size
    # Hill with half-max 1, power 1, one cell in contact: U = 1/2 of the saturation
    np.testing.assert_allclose(rate[touching], KILL / 2, rtol=1e-12)
    assert (rate[~touching] == 0).all()
    neutrophil.kill(m, sig, viable_at)
    killed = m.tumor["state"] == tumor.APOPTOTIC
    p = 1 - np.exp(-KILL / 2 * m.p.time.dt_min)
    n = pairs.size
    assert m.killed == killed.sum()
    assert abs(killed.sum() - p * n) < 4 * np.sqrt(n * p * (1 - p))  # 4 SD of a binomial
    assert (viable_at[m.tumor["x"][killed], m.tumor["y"][killed]] == -1).all()


def test_educated_neutrophils_barely_kill(killing_model):
    m = killing_model
    _pairs(m, np.arange(2, 70, 4), np.full(17, 10), state=neutrophil.ACTIVATED)
    sig = neutrophil.signals(m, neutrophil.viable_tumor_map(m))
    rate = m.behaviour("neutrophil", "kill", sig, m.neutrophils.n)
    # the decreasing rule on `activated` (half-max 0.5, power 4): D = 16/17 of the way to 0
    np.testing.assert_allclose(rate, KILL / 2 / 17, rtol=1e-12)


def test_apoptotic_cells_hold_their_voxel_for_the_duration_then_free_it(empty_model):
    m = empty_model(seed=1)
    xs = np.arange(10, 20)
    t = m.spawn(tumor.KIND, xs, np.full(10, 10), state=np.zeros(10))
    m.spawn(neutrophil.KIND, xs, np.full(10, 11), state=neutrophil.BOUND, partner=t,
            heading=0, death_min=np.inf)
    dying = np.array([2, 5, 9])
    tumor.start_apoptosis(m, dying)
    steps = round(m.p.tumor.apoptosis_duration_h * 60 / m.p.time.dt_min)
    m.steps = steps - 1  # one step short of the duration: all still there
    tumor.clear_apoptotic(m)
    assert m.tumor.n == 10 and (m.tumor.at[xs, 10] >= 0).all()
    m.steps = steps
    tumor.clear_apoptotic(m)
    assert m.tumor.n == 7
    assert (m.tumor.at[xs[dying], 10] == -1).all() and (m.tumor.at[np.delete(xs, dying), 10] >= 0).all()
    nb = m.neutrophils
    released = np.isin(nb["x"], xs[dying])
    assert (nb["state"][released] == neutrophil.ACTIVATED).all()
    assert (m.tumor["x"][nb["partner"][~released]] == nb["x"][~released]).all()


def test_with_every_rate_zero_nothing_is_drawn(tmp_path):
    """Kill saturation and apoptosis rate 0: no killing, no apoptosis, and the random stream
    is untouched."""
    rules = planted_rules(tmp_path, **{KILL_RULE: 0.0})
    m = NeutroModel(load_params(overrides={**EMPTY, "tumor.apoptosis_rate_per_min": 0.0},
                                rules=rules), rng=1)
    _pairs(m, np.arange(2, 70, 4), np.full(17, 10))
    before = m.rng.bit_generator.state
    viable_at = neutrophil.viable_tumor_map(m)
    neutrophil.kill(m, neutrophil.signals(m, viable_at), viable_at)
    tumor.apoptosis(m, tumor.signals(m))
    assert m.rng.bit_generator.state == before and m.killed == 0
    assert (m.tumor["state"] != tumor.APOPTOTIC).all()


def test_the_base_apoptosis_rate(empty_model):
    rate = 0.01  # 1/min
    m = empty_model(seed=4, **{"tumor.apoptosis_rate_per_min": rate})
    n = 2000
    xs, ys = np.divmod(np.arange(n), 50)
    m.spawn(tumor.KIND, xs + 5, ys + 5, state=np.zeros(n))
    tumor.apoptosis(m, tumor.signals(m))
    p = 1 - np.exp(-rate * m.p.time.dt_min)
    went = (m.tumor["state"] == tumor.APOPTOTIC).sum()
    assert abs(went - p * n) < 4 * np.sqrt(n * p * (1 - p))


def test_education_moves_naive_neutrophils_at_the_planted_rate():
    """Naive neutrophils bathed in the tumor signal at its half-max are educated
    (activated) within one step with probability 1 - exp(-rate dt), rate half the planted
    saturation; without the signal or contact they stay naive. Binding is switched off so
    that the activation rule alone acts."""
    sat = 0.04  # 1/min, planted saturation of the activation rules
    m = NeutroModel(load_params(overrides={**EMPTY, "rules.neutrophil.activation.increases": sat,
                                           "rules.neutrophil.binding.increases": 0.0}), rng=9)
    half = next(r.half_max for r in m.p.rules.rules
                if r.behaviour == "activation" and r.signal == "tumor_signal"
                and r.cell_type == "neutrophil")
    gx, gy = np.meshgrid(np.arange(0, 80), np.arange(0, 80, 2), indexing="ij")
    x, y = gx.ravel(), gy.ravel()
    m.spawn(neutrophil.KIND, x, y, state=neutrophil.NAIVE, partner=-1, heading=0,
            death_min=np.inf)
    bathed = x < 40
    m.fields["tumor_signal"][:40] = half  # U = 1/2 on the left half, 0 on the right
    viable_at = neutrophil.viable_tumor_map(m)
    neutrophil.bind_and_activate(m, neutrophil.signals(m, viable_at), viable_at)
    educated = m.neutrophils["state"] == neutrophil.ACTIVATED
    p = 1 - np.exp(-sat / 2 * m.p.time.dt_min)
    n = int(bathed.sum())
    assert abs(educated[bathed].sum() - p * n) < 4 * np.sqrt(n * p * (1 - p))
    assert not educated[~bathed].any()
    # educated cells draw the longer lifespan of activated neutrophils
    assert np.median(m.neutrophils["death_min"][educated]) > 24 * 60
