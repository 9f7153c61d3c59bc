"""Each rule does what the biology says, on planted layouts (no whole-model runs)."""

import numpy as np
import pytest

from sim.cells import endothelial, macrophage, neutrophil, tumor
from sim.cells.lattice import DX, DY, box_sum, count_around, pick_around, walk
from sim.fields import Sources


def _neutrophils(m, xs, ys, state=neutrophil.NAIVE):
    n = len(xs)
    return m.spawn(neutrophil.KIND, xs, ys, state=state, partner=-1, heading=np.zeros(n, np.int8),
                   death_min=np.full(n, 1e9))


def test_walk_kernel_moves_up_a_gradient_on_average():
    rng = np.random.default_rng(0)
    nx, ny, n = 200, 200, 400
    field = np.tile(np.arange(nx, dtype=float)[:, None], (1, ny))  # rises along x
    own = np.full((nx, ny), -1, np.int32)
    other = np.full((nx, ny), -1, np.int32)
    flat = rng.choice((nx // 4) * ny, size=n, replace=False)
    x, y = (np.array(v, np.int32) for v in np.unravel_index(flat, (nx // 4, ny)))
    x += nx // 3
    own[x, y] = np.arange(n)
    x0 = x.copy()
    moves = np.full(n, 3, np.int64)
    for bias, sign in ((0.5, 1), (0.0, 0)):
        xs, ys = x0.copy(), y.copy()
        o = own.copy()
        heading = rng.integers(0, 8, n).astype(np.int8)
        walk(rng.permutation(n), xs, ys, heading, moves, np.full(n, bias),
             np.full(n, 0.3), field, o, other, rng.random((n, 3, 3)))
        dx = (xs - x0).mean()
        if sign:
            assert dx > 1.0  # 3 moves with bias 0.5: about +1.5 voxels
        else:
            assert abs(dx) < 0.3  # unbiased: no drift (SE of the mean ~0.1)
        assert len(np.unique(xs.astype(np.int64) * ny + ys)) == n  # one per voxel


def test_neighbourhood_kernels_agree_with_whole_grid_numpy():
    """count_around is box_sum at the listed voxels (edges and corners included);
    pick_around picks, from the same uniforms, what an argmax over the 3x3 box picks, and
    -1 where the box holds nothing."""
    rng = np.random.default_rng(11)
    at = np.where(rng.random((9, 7)) < 0.3, rng.integers(0, 50, (9, 7)), -1).astype(np.int32)
    x, y = np.meshgrid(np.arange(9), np.arange(7), indexing="ij")
    x, y = x.ravel().astype(np.int32), y.ravel().astype(np.int32)
    np.testing.assert_array_equal(count_around(at, x, y), box_sum(at >= 0)[x, y])
    rows = np.arange(x.size)
    u = rng.random((rows.size, 9))
    cx = x[:, None] + np.concatenate(([0], DX))[None, :]
    cy = y[:, None] + np.concatenate(([0], DY))[None, :]
    inside = (cx >= 0) & (cx < 9) & (cy >= 0) & (cy < 7)
    cand = np.where(inside, at[np.clip(cx, 0, 8), np.clip(cy, 0, 6)], -1)
    score = np.where(cand >= 0, u + 1.0, 0.0)
    expected = np.where((cand >= 0).any(axis=1), cand[rows, score.argmax(axis=1)], -1)
    got = pick_around(at, x, y, rows, u)
    np.testing.assert_array_equal(got, expected)
    assert (got == -1).any() and (got >= 0).any()


def test_neutrophils_chemotax_up_the_chemokine_in_the_model(empty_model):
    m = empty_model(seed=1)
    nx, ny = m.grid.dimensions
    m.fields["chemoattractant"][:] = np.linspace(0, 8, nx)[:, None]
    xs = np.repeat(np.arange(30, 50, 2), 10)
    ys = np.tile(np.arange(20, 60, 4), 10)
    _neutrophils(m, xs, ys)
    x0 = m.neutrophils["x"].astype(float).copy()
    for _ in range(5):
        sig = neutrophil.signals(m, neutrophil.viable_tumor_map(m))
        neutrophil.move(m, sig)
    assert (m.neutrophils["x"] - x0).mean() > 2.0


def test_contact_binds_and_activates(empty_model):
    m = empty_model(seed=2)
    rows = m.spawn(tumor.KIND, [40], [40], state=tumor.NORMOXIC)
    _neutrophils(m, [41, 10], [40, 10])  # one touching the tumor cell, one far away
    for _ in range(200):
        va = neutrophil.viable_tumor_map(m)
        neutrophil.bind_and_activate(m, neutrophil.signals(m, va), va)
    st = m.neutrophils["state"]
    assert st[0] == neutrophil.BOUND and m.neutrophils["partner"][0] == rows[0]
    assert st[1] == neutrophil.NAIVE  # no contact, no tumor signal: stays naive


def test_tumor_divides_only_into_free_space(empty_model):
    m = empty_model(seed=3, **{"tumor.cycle_rate_per_min": 0.5})
    reach = int(m.p.tumor.push_distance_um / m.p.domain.voxel_um)
    assert reach == 2
    # a cell boxed in (within its reach) by tumor cells and a vessel does not enter the cycle,
    # and one planted at the end of its cycle cannot divide and returns to quiescence
    ring = [(40 + dx, 40 + dy) for dx in range(-reach, reach + 1) for dy in range(-reach, reach + 1)
            if (dx, dy) != (0, 0)]
    boxed = m.spawn(tumor.KIND, [40], [40], state=tumor.NORMOXIC)
    m.spawn(endothelial.KIND, [ring[0][0]], [ring[0][1]], state=endothelial.STALK, born_min=0.0)
    xs, ys = zip(*ring[1:])
    m.spawn(tumor.KIND, xs, ys, state=tumor.NECROTIC)
    m.fields["oxygen"][:] = 38.0
    n0 = m.tumor.n
    for _ in range(20):
        tumor.enter_cycle(m, tumor.signals(m))
    assert m.tumor["cycle_end_min"][boxed[0]] == tumor.QUIESCENT
    m.tumor["cycle_end_min"][boxed] = m.time_min
    tumor.divide(m)
    assert m.tumor.n == n0 and m.tumor["cycle_end_min"][boxed[0]] == tumor.QUIESCENT
    # a free cell enters the cycle (0.5/min: within a step with probability 1 - e^-3), then
    # divides at the end of its phase, only into voxels that held no tumor cell and no vessel
    free = m.spawn(tumor.KIND, [10], [10], state=tumor.NORMOXIC)
    m.spawn(endothelial.KIND, [11], [10], state=endothelial.STALK, born_min=0.0)
    for _ in range(5):
        tumor.enter_cycle(m, tumor.signals(m))
    end = m.tumor["cycle_end_min"][free[0]]
    assert end == m.time_min + m.p.tumor.ki67_positive_h * 60.0
    tumor.divide(m)  # not before the phase ends
    assert m.tumor.n == n0 + 1
    before = {(int(x), int(y)) for x, y in zip(m.tumor["x"], m.tumor["y"])}
    m.tumor["cycle_end_min"][free] = m.time_min
    tumor.divide(m)
    after = {(int(x), int(y)) for x, y in zip(m.tumor["x"], m.tumor["y"])}
    born = after - before
    assert len(born) == 1 and (11, 10) not in born
    assert len(after) == m.tumor.n  # never two in one voxel
    assert (m.tumor["cycle_end_min"][-2:] == tumor.QUIESCENT).all() or \
        m.tumor["cycle_end_min"][free[0]] == tumor.QUIESCENT


def test_hypoxia_raises_the_proangiogenic_factor(empty_model):
    out = {}
    for o2 in (5.0, 30.0):
        m = empty_model(seed=4)
        xs, ys = np.meshgrid(np.arange(30, 50), np.arange(30, 50))
        m.spawn(tumor.KIND, xs.ravel(), ys.ravel(), state=tumor.NORMOXIC)
        m.fields["oxygen"][:] = o2
        src = Sources.zeros(m.grid.dimensions)
        sig = tumor.signals(m)
        tumor.update_oxygen_state(m, sig)
        tumor.secrete(m, sig, src)
        out[o2] = src.release["proangiogenic"].sum()
        assert (m.tumor["state"] == (tumor.HYPOXIC if o2 < 15 else tumor.NORMOXIC)).all()
    assert out[30.0] == 0.0 and out[5.0] > 0.0


def test_new_vessel_only_where_factor_above_threshold(empty_model):
    m = empty_model(seed=5, **{"endothelial.sprouting_per_min": 0.05})
    nx, ny = m.grid.dimensions
    vx = np.full(ny, 40)
    m.spawn(endothelial.KIND, vx, np.arange(ny), state=endothelial.STALK, born_min=-np.inf)
    thr = m.p.endothelial.sprout_threshold_ng_ml
    vegf = m.fields["proangiogenic"]
    vegf[:] = 0.5 * thr
    vegf[:, 50:] = 3.0 * thr  # only the upper part of the vessel sits above threshold
    for _ in range(50):
        endothelial.sprout(m)
        endothelial.extend(m)
    e = m.endothelial
    new = e["born_min"] > -np.inf
    assert new.sum() > 5
    assert (e["y"][new] >= 50).all(), "vessel grew where the factor is below threshold"


def test_depletion_removes_the_stated_fraction_and_cuts_recruitment(empty_model):
    m = empty_model(seed=6, scenario="depletion", **{"intervention.start_day": 0.0})
    flat = m.rng.choice(80 * 80, size=2000, replace=False)
    _neutrophils(m, *np.unravel_index(flat, (80, 80)))
    m.treatment.apply(m)
    eff = m.p.intervention.neutrophil_depletion
    kept = m.neutrophils.n / 2000
    assert abs(kept - (1 - eff)) < 4 * np.sqrt(eff * (1 - eff) / 2000)
    assert m.treatment.recruitment == pytest.approx(1 - eff)

    # recruitment: same vessels and chemokine, control vs depletion
    counts = {}
    for scen in ("control", "depletion"):
        mm = empty_model(seed=7, scenario=scen, **{"intervention.start_day": 0.0,
                                                   "neutrophil.extravasation_per_min": 0.002})
        mm.spawn(endothelial.KIND, np.arange(80), np.full(80, 40), state=endothelial.STALK,
                 born_min=-np.inf)
        mm.treatment.apply(mm)
        for _ in range(200):
            neutrophil.recruit(mm)
        counts[scen] = mm.neutrophils.n
    ratio = counts["depletion"] / counts["control"]
    assert abs(ratio - (1 - eff)) < 0.06, counts


@pytest.mark.parametrize("scenario", ["control", "depletion", "cxcr2_inhibition",
                                      "macrophage_depletion", "contact_blockade"])
def test_each_scenario_changes_what_it_claims_and_nothing_else(empty_model, scenario):
    m = empty_model(seed=8, scenario=scenario, **{"intervention.start_day": 0.0})
    m.spawn(tumor.KIND, [40], [40], state=tumor.NORMOXIC)
    flat = m.rng.choice(80 * 80, size=1200, replace=False)
    fx, fy = np.unravel_index(flat, (80, 80))
    _neutrophils(m, fx[:600], fy[:600], state=neutrophil.BOUND)
    m.neutrophils["partner"][:] = 0
    m.spawn(macrophage.KIND, fx[600:], fy[600:], state=macrophage.RESTING,
            heading=np.zeros(600, np.int8))
    m.treatment.apply(m)
    iv = m.p.intervention
    removed_n = 600 - m.neutrophils.n
    removed_m = 600 - m.macrophages.n
    freed = int((m.neutrophils["state"] != neutrophil.BOUND).sum())
    effects = {
        "neutrophils_removed": removed_n > 0,
        "macrophages_removed": removed_m > 0,
        "bonds_released": freed > 0,
        "recruitment_cut": m.treatment.recruitment < 1,
        "chemotaxis_cut": m.treatment.chemotaxis < 1,
        "contact_cut": m.treatment.contact < 1,
        "macrophage_recruitment_cut": m.treatment.macrophage_recruitment < 1,
    }
    claims = {
        "control": set(),
        "depletion": {"neutrophils_removed", "recruitment_cut"},
        "cxcr2_inhibition": {"recruitment_cut", "chemotaxis_cut"},
        "macrophage_depletion": {"macrophages_removed", "macrophage_recruitment_cut"},
        "contact_blockade": {"bonds_released", "contact_cut"},
    }[scenario]
    assert {k for k, v in effects.items() if v} == claims
    if scenario == "contact_blockade":
        assert abs(freed / 600 - iv.contact_blockade) < 0.06
    if scenario == "macrophage_depletion":
        assert abs(removed_m / 600 - iv.macrophage_depletion) < 0.06


def test_nothing_acts_before_the_start_day(empty_model):
    m = empty_model(seed=9, scenario="depletion", **{"intervention.start_day": 1.0})
    _neutrophils(m, np.arange(10), np.arange(10))
    m.treatment.apply(m)
    assert m.neutrophils.n == 10 and m.treatment.recruitment == 1.0 and not m.treatment.started


def test_contact_blockade_cuts_binding_by_exactly_its_efficiency_once(empty_model):
    """e = 0.9: the binding rate falls by exactly 90% (the factor enters once), and the
    tumor's count of bound neutrophils is the count of bonds (not scaled again)."""
    from sim.cells import neutrophil as nb_mod
    from sim.cells import tumor as tumor_mod

    m = empty_model(seed=2)
    xs = np.arange(30, 40)
    t_rows = m.spawn(tumor_mod.KIND, xs, np.full(xs.size, 40), state=tumor_mod.NORMOXIC)
    m.spawn(nb_mod.KIND, xs, np.full(xs.size, 41), state=nb_mod.BOUND, partner=t_rows,
            heading=np.zeros(xs.size), death_min=np.full(xs.size, np.inf))
    m.spawn(nb_mod.KIND, xs[:4], np.full(4, 39), state=nb_mod.NAIVE, partner=-1,
            heading=np.zeros(4), death_min=np.full(4, np.inf))
    viable_at = nb_mod.viable_tumor_map(m)
    free = nb_mod.binding_rate(m, nb_mod.signals(m, viable_at))
    bonds = tumor_mod.signals(m)["bound_neutrophils"]
    contact = tumor_mod.signals(m)["neutrophil_contact"]
    m.treatment.contact = 1 - 0.9
    blocked = nb_mod.binding_rate(m, nb_mod.signals(m, viable_at))
    assert free.min() > 0
    np.testing.assert_allclose(blocked, 0.1 * free, rtol=1e-12)
    np.testing.assert_array_equal(tumor_mod.signals(m)["bound_neutrophils"], bonds)
    assert bonds.sum() == xs.size
    np.testing.assert_allclose(tumor_mod.signals(m)["neutrophil_contact"], 0.1 * contact,
                               rtol=1e-12)
