"""Vessel turnover: with ``endothelial.perfusion = "anastomosis"`` a new sprout carries no
blood (supplies no oxygen) until its tip meets perfused vessel, and an unperfused cell
starved of VEGF for ``endothelial.regression_after_h`` regresses, never a perfused one;
with ("immediate", 0) every vessel is perfused and nothing regresses."""

import numpy as np
import pandas as pd
import pytest

from sim import readouts
from sim.cells import endothelial
from sim.cells.endothelial import STALK, TIP, Sprouts
from sim.config.params import load_params
from sim.fields.sources import Sources
from sim.runs.run import run_one
from tests.conftest import EMPTY, SMALL

ON = {"endothelial.perfusion": "anastomosis"}
OFF = {"endothelial.perfusion": "immediate", "endothelial.regression_after_h": 0.0}
TRUNK_Y, OTHER_Y, COL = 10, 20, 20  # two perfused trunks along x; a sprout climbs x = COL


def _trunk(m, y, x=np.arange(5, 36)):
    m.spawn(endothelial.KIND, x, np.full(x.size, y), state=STALK, born_min=-np.inf,
            perfused=True, sprout=0)


def _sprout(m, x, ys, parent=0, fed_min=0.0):
    """An unperfused sprout of ``parent`` at (x, ys), its tip at the last voxel."""
    sid = m.sprouts.new(parent, False)
    state = np.full(ys.size, STALK)
    state[-1] = TIP
    rows = m.spawn(endothelial.KIND, np.full(ys.size, x), ys, state=state, perfused=False,
                   sprout=sid, moves=np.arange(1, ys.size + 1), born_min=fed_min,
                   fed_min=fed_min, prev_x=x, prev_y=ys - 1)
    return sid, rows


def _supply(m) -> np.ndarray:
    src = Sources.zeros(m.fields["oxygen"].shape)
    endothelial.absorb(m, src)
    return src.supply_rate, src.uptake["proangiogenic"]


def _at(m, sid):
    e = m.endothelial
    return e["x"][e["sprout"] == sid], e["y"][e["sprout"] == sid]


def test_a_new_sprout_is_unperfused_until_its_tip_meets_perfused_vessel(empty_model):
    m = empty_model(seed=2, **ON)
    _trunk(m, TRUNK_Y)
    _trunk(m, OTHER_Y)
    sid, _ = _sprout(m, COL, np.arange(TRUNK_Y + 1, TRUNK_Y + 5))  # tip at y = 14
    # VEGF above threshold only up the sprout's column, rising toward the other trunk
    vegf = m.fields["proangiogenic"]
    vegf[:] = 0.0
    vegf[COL, TRUNK_Y + 1: OTHER_Y] = m.p.endothelial.sprout_threshold_ng_ml + np.arange(
        OTHER_Y - TRUNK_Y - 1)
    e = m.endothelial
    for _ in range(5000):
        supply, uptake = _supply(m)
        x, y = _at(m, sid)
        tip = e["state"][e["sprout"] == sid] == TIP
        if not tip.any():
            break
        assert not e["perfused"][e["sprout"] == sid].any()
        assert (supply[x, y] == 0).all() and (uptake[x, y] > 0).all()  # no flow; VEGF taken up
        assert 0 < readouts.perfused_vessel_fraction(m) < 1
        endothelial.extend(m)
    else:
        pytest.fail("the tip never reached the other trunk")
    x, y = _at(m, sid)
    assert sorted(y) == list(range(TRUNK_Y + 1, OTHER_Y))  # it grew up to the other trunk
    assert e["perfused"].all() and m.sprouts.perfused[sid]
    supply, _ = _supply(m)
    assert (supply[x, y] == m.p.oxygen.vessel_supply_per_min).all()
    assert readouts.perfused_vessel_fraction(m) == 1.0


def test_which_fusions_carry_blood():
    """A loop carries blood when it hangs off perfused vessel at both ends."""
    t = Sprouts()
    a, b = t.new(0, False), t.new(0, False)
    assert t.fuse(a, a) == [] and not t.perfused[a]  # a loop within one blind sprout
    assert sorted(t.fuse(a, b)) == [a, b]  # parent - a - b - parent: both carry blood
    c = t.new(0, False)
    d, f = t.new(c, False), t.new(c, False)  # two branches of the blind sprout c
    assert t.fuse(d, f) == [] and not any(t.perfused[s] for s in (c, d, f))
    assert sorted(t.fuse(c, a)) == [c, d, f]  # c connects: the loop d - f carries blood too
    g = t.new(a, False)
    assert t.fuse(g, a) == [g]  # back into its own (perfused) parent
    assert t.pending == []


def test_a_starved_unperfused_sprout_regresses_after_exactly_the_duration(empty_model):
    hours = 2.0
    m = empty_model(seed=3, **ON, **{"endothelial.regression_after_h": hours})
    _trunk(m, TRUNK_Y)
    first, _ = _sprout(m, COL, np.arange(TRUNK_Y + 1, TRUNK_Y + 6))  # laid at t = 0
    steps = round(hours * 60 / m.p.time.dt_min)
    e = m.endothelial
    later = None
    for _ in range(2 * steps):
        m.step()
        assert (m.fields["proangiogenic"] < m.p.endothelial.sprout_threshold_ng_ml).all()
        assert e["perfused"][e["sprout"] == 0].sum() == 31  # the starved trunk stays
        n_first = (e["sprout"] == first).sum()
        assert n_first == (5 if m.steps < steps else 0), m.steps
        if m.steps == 5:
            later, _ = _sprout(m, COL + 5, np.arange(TRUNK_Y + 1, TRUNK_Y + 4),
                               fed_min=m.time_min)
        if later is not None:
            assert (e["sprout"] == later).sum() == (3 if m.steps < 5 + steps else 0), m.steps
    assert e.n == 31 and (e.at >= 0).sum() == 31


def test_regression_off_and_immediate_perfusion_remove_nothing(empty_model):
    for overrides in ({**ON, "endothelial.regression_after_h": 0.0},
                      {**OFF, "endothelial.regression_after_h": 1.0}):
        m = empty_model(seed=3, **overrides)
        _trunk(m, TRUNK_Y)
        _sprout(m, COL, np.arange(TRUNK_Y + 1, TRUNK_Y + 6))
        before = m.rng.bit_generator.state
        m.steps = 1000
        endothelial.regress(m)
        assert m.endothelial.n == 36 and m.rng.bit_generator.state == before


def test_immediate_perfusion_perfuses_every_vessel(empty_model):
    m = empty_model(seed=1, **OFF)
    _trunk(m, TRUNK_Y)
    x, y = COL, np.arange(TRUNK_Y + 1, TRUNK_Y + 6)
    _sprout(m, x, y)  # planted unperfused: "immediate" perfuses it all the same
    supply, _ = _supply(m)
    assert (supply[x, y] > 0).all() and readouts.perfused_vessel_fraction(m) == 1.0
    assert readouts.perfused_vessel_fraction(empty_model(seed=1)) == 0.0  # no vessels


def test_the_vessels_of_t0_are_perfused_and_the_mechanism_draws_nothing():
    """With no sprouting, "anastomosis" and regression change nothing: the vessels of t=0
    carry blood, and neither rule draws a random number."""
    off = run_one(load_params(overrides={**SMALL, **OFF}), 4, days=1.0)
    on = run_one(load_params(overrides={**SMALL, **ON, "endothelial.regression_after_h": 6.0}),
                 4, days=1.0)
    assert (off.timeseries["tip_cells"] == 0).all()  # the premise: no sprout in one day
    assert (on.timeseries["perfused_vessel_fraction"] == 1.0).all()
    assert on.final["vessel_perfused"].all() and on.final["vessel_perfused"].size > 0
    pd.testing.assert_frame_equal(off.timeseries, on.timeseries, check_exact=True)


def test_the_perfusion_choice_is_checked():
    from sim.config.params import ParameterError

    with pytest.raises(ParameterError, match="endothelial.perfusion"):
        load_params(overrides={**EMPTY, "endothelial.perfusion": "always"})
    with pytest.raises(ParameterError, match="regression_after_h"):
        load_params(overrides={**EMPTY, "endothelial.regression_after_h": -1})
