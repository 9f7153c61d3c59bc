"""The model as a whole: reproducibility, arrays agreeing with Mesa agents, batch_run."""

import numpy as np
import pandas as pd
import pytest

from sim import run_one
from sim.config.params import load_params
from sim.model.mirror import AGENT_CLASSES
from sim.model.model import NeutroModel
from tests.conftest import SMALL


def assert_arrays_match_agents(m: NeutroModel) -> None:
    """Every population row has its Mesa agent in the right cell, and nothing else exists."""
    total = 0
    for kind, pop in m.populations.items():
        agents = m.mirror.agents[kind]
        assert len(agents) == pop.n
        for i, agent in enumerate(agents):
            assert type(agent) is AGENT_CLASSES[kind]
            assert agent.slot == i
            assert agent.cell.coordinate == (pop["x"][i], pop["y"][i])
        occupied = np.argwhere(pop.at >= 0)
        assert len(occupied) == pop.n
        assert np.all(pop.at[pop["x"], pop["y"]] == np.arange(pop.n))
        total += pop.n
    assert len(m.agents) == total
    occupied_any = np.logical_or.reduce([pop.at >= 0 for pop in m.populations.values()])
    np.testing.assert_array_equal(m.grid.empty.data, ~occupied_any)  # Mesa's own layer
    in_cells = sum(len(c.agents) for c in m.grid.all_cells.cells)
    assert in_cells == total
    immune = (m.neutrophils.at >= 0) & (m.macrophages.at >= 0)
    tissue = (m.tumor.at >= 0) & (m.endothelial.at >= 0)
    assert not immune.any(), "two immune cells share a voxel"
    # a vessel may run through a tumor voxel only where it grew in or was co-opted
    assert tissue.sum() <= m.endothelial.n


def test_arrays_and_mesa_agents_agree_after_every_step(small_params):
    m = NeutroModel(small_params.replace({"intervention.start_day": 0.5}), rng=3)
    assert_arrays_match_agents(m)
    for _ in range(300):  # 30 h, through an intervention-free control
        m.step()
        assert_arrays_match_agents(m)
    assert m.neutrophils.n > 0 and m.tumor.n > 0


def test_arrays_and_agents_agree_through_depletion(small_params):
    p = load_params(scenario="depletion", overrides={**SMALL, "intervention.start_day": 0.25})
    m = NeutroModel(p, rng=4)
    for _ in range(100):
        m.step()
        assert_arrays_match_agents(m)
    assert m.treatment.started


def test_mesa_side_built_when_first_read_gives_the_same_run(small_params):
    """mesa="lazy" (the default): no Mesa grid or agent exists until something reads them;
    read at any step, they equal the arrays then (as an eager model's always do), the
    grid's property layers are the fields themselves, and from then on they follow every
    step. The simulation is the same as the eager model's, step by step."""
    lazy, eager = NeutroModel(small_params, rng=5), NeutroModel(small_params, rng=5, mesa="eager")
    assert eager.mesa_built and len(eager.agents) > 0
    for _ in range(40):
        lazy.step()
        eager.step()
    assert not lazy.mesa_built and len(lazy._all_agents) == 0  # Mesa's own registry: empty
    assert_arrays_match_agents(lazy)  # the first read builds the grid and the agents
    assert lazy.mesa_built and len(lazy.agents) == len(eager.agents)
    for name, field in lazy.fields.items():
        layer = getattr(lazy.grid, name)
        assert layer.data is field
    cell = lazy.grid[(7, 9)]
    for _ in range(40):
        lazy.step()
        eager.step()
        assert_arrays_match_agents(lazy)
        assert cell.oxygen == lazy.fields["oxygen"][7, 9]  # a cell reads the live field
    for kind, pop in lazy.populations.items():
        for col in ("x", "y", "state"):
            np.testing.assert_array_equal(pop[col], eager.populations[kind][col])
    pd.testing.assert_frame_equal(lazy.datacollector.get_model_vars_dataframe(),
                                  eager.datacollector.get_model_vars_dataframe(), check_exact=True)
    with pytest.raises(ValueError, match="mesa"):
        NeutroModel(small_params, rng=5, mesa="never")


def test_batched_relocation_matches_mesa_cell_setter():
    """MesaMirror.moved leaves cells, agents and the empty layer as the setter does."""
    from mesa import Model
    from mesa.discrete_space import CellAgent, OrthogonalMooreGrid

    from sim.model.mirror import MesaMirror

    def world():
        model = Model(rng=0)
        grid = OrthogonalMooreGrid((6, 5), torus=False, capacity=None, random=model.random)
        agents = [CellAgent(model) for _ in range(4)]
        for a, xy in zip(agents, [(0, 0), (1, 1), (1, 1), (2, 3)]):  # two share a voxel
            a.cell = grid[xy]
        return grid, agents

    moves = [(0, (1, 1)), (1, (0, 0)), (3, (5, 4))]  # a swap into a shared voxel, and a long hop
    g1, a1 = world()
    for i, xy in moves:
        a1[i].cell = g1[xy]
    g2, a2 = world()
    mirror = MesaMirror(a2[0].model, g2)
    mirror.agents["tumor"] = a2
    old = [a2[i].cell.coordinate[0] * 5 + a2[i].cell.coordinate[1] for i, _ in moves]
    new = [x * 5 + y for _, (x, y) in moves]  # flat index x * 5 + y
    mirror.moved("tumor", np.array([i for i, _ in moves]), np.array(old), np.array(new))
    np.testing.assert_array_equal(g1.empty.data, g2.empty.data)
    for b1, b2 in zip(a1, a2):
        assert b1.cell.coordinate == b2.cell.coordinate
    for c1, c2 in zip(g1.all_cells.cells, g2.all_cells.cells):
        assert [a.unique_id for a in c1.agents] == [a.unique_id for a in c2.agents]
        assert c1.is_empty == c2.is_empty


def test_same_seed_identical_different_seed_differs(small_params):
    a = run_one(small_params, 7, days=1.0)
    b = run_one(small_params, 7, days=1.0)
    c = run_one(small_params, 8, days=1.0)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries, check_exact=True)
    for k in a.final:
        np.testing.assert_array_equal(a.final[k], b.final[k])
    assert not a.timeseries.equals(c.timeseries)


def test_timeseries_columns_and_cadence(small_params):
    r = run_one(small_params, 1, days=1.0)
    ts = r.timeseries
    need = ["time_h", "tumor_cells", "neutrophils", "macrophages", "endothelial_cells",
            "proliferation_index", "vessel_density_per_mm2", "neutrophils_in_contact",
            "neutrophil_tumor_pairs", "educated_neutrophils", "activated_macrophages",
            "hypoxic_fraction", "necrotic_cells", "invasive_cells", "mean_oxygen",
            "mean_chemoattractant", "mean_proangiogenic", "mean_proinvasive", "mean_tumor_signal"]
    assert set(need) <= set(ts.columns)
    np.testing.assert_allclose(ts["time_h"], np.arange(0, 24.1, 6.0))
    assert ((ts["proliferation_index"] >= 0) & (ts["proliferation_index"] <= 1)).all()


def test_batch_run_drives_the_model_with_plain_keywords():
    import mesa

    res = mesa.batch_run(
        NeutroModel,
        parameters={"width": 60, "height": 60, "initial__tumor_radius_um": 250.0,
                    "scenario": ["control", "depletion"], "time__warmup_steps": 2},
        rng=[1], max_steps=5, number_processes=1, data_collection_period=-1,
        display_progress=False,
    )
    df = pd.DataFrame(res)
    assert sorted(df["scenario"]) == ["control", "depletion"]
    assert (df["tumor_cells"] > 0).all()
    assert "neutrophil_tumor_pairs" in df


def test_model_keywords_are_validated():
    from sim.config.errors import ParameterError

    with pytest.raises(ParameterError, match="tumor.cycle_rate_per_min"):
        NeutroModel(rng=1, width=60, height=60, initial__tumor_radius_um=200.0,
                    tumor__cycle_rate_per_min=-1.0)


def test_sources_clear_zeroes_exactly_what_was_written():
    from sim.fields import Sources

    rng = np.random.default_rng(2)
    src = Sources.zeros((40, 30))
    all_voxels = np.arange(40 * 30)
    for _ in range(3):  # the record's buffer grows and is reused
        few = rng.choice(all_voxels, 50, replace=False)  # scattered zeroing
        many = rng.choice(all_voxels, 900, replace=False)  # more than a quarter: filled
        src.add_release("chemoattractant", few // 30, few % 30, rng.random(50))
        src.add_uptake("oxygen", many // 30, many % 30, 2.0)
        src.add_release("chemoattractant", many[:10] // 30, many[:10] % 30, 1.0)
        src.set_supply(few // 30, few % 30, 0.5)
        assert src.release["chemoattractant"].reshape(-1)[few].all()
        assert (src.supply_rate.reshape(-1)[few] == 0.5).all()
        src.clear()
        arrays = [*src.release.values(), *src.uptake.values(), src.supply_rate]
        assert not any(a.any() for a in arrays)


def test_field_boundary_is_a_parameter_per_field():
    """A closed (no-flux) window edge keeps the chemokine the open one drains; the choice
    reaches that field's solver only."""
    closed = {**SMALL, "chemoattractant.boundary": "noflux"}
    m_open = NeutroModel(load_params(overrides=SMALL), rng=3)
    m_closed = NeutroModel(load_params(overrides=closed), rng=3)
    specs = {m: {n: s.boundary for n, s in m.fields.specs.items()} for m in (m_open, m_closed)}
    assert specs[m_open] == dict.fromkeys(specs[m_open], "dirichlet")
    assert specs[m_closed] == {**specs[m_open], "chemoattractant": "noflux"}
    for m in (m_open, m_closed):
        for _ in range(30):
            m.step()
    mass = {k: m.fields["chemoattractant"].sum() for k, m in (("open", m_open), ("closed", m_closed))}
    assert mass["closed"] > 1.05 * mass["open"]
    edge = m_closed.fields["chemoattractant"]
    assert edge[0].mean() > 0.5 * edge[1].mean()  # no drain at the edge: no steep drop there
    assert m_open.fields["chemoattractant"][0].max() < 0.5 * m_open.fields["chemoattractant"][1].max()
    with pytest.raises(ValueError, match=r"chemoattractant.boundary = 'open'.*'dirichlet', 'noflux'"):
        load_params(overrides={"chemoattractant.boundary": "open"})


def test_the_stage_hook_sees_every_stage_in_order_and_changes_nothing(small_params):
    """A step is the stages of sim.model.stages.STAGES, in order; running them through the
    stage_timer hook gives the same model, bit for bit."""
    from sim.model.stages import STAGES

    plain, timed = NeutroModel(small_params, rng=5), NeutroModel(small_params, rng=5)
    seen = []

    def timer(stage, model):
        seen.append(stage.name)
        stage.run(model)

    timed.stage_timer = timer
    for _ in range(12):
        plain.step()
        timed.step()
    assert seen == [s.name for s in STAGES] * 12
    assert seen[:7] == ["treatment", "fields: begin", "vessels", "tumor cells", "immune cells",
                        "fields: end", "record"]
    for name in plain.fields:
        np.testing.assert_array_equal(plain.fields[name], timed.fields[name], err_msg=name)
    pd.testing.assert_frame_equal(plain.datacollector.get_model_vars_dataframe(),
                                  timed.datacollector.get_model_vars_dataframe(), check_exact=True)


def test_composition_readouts_count_the_planted_cells(empty_model):
    """3 viable + 1 necrotic tumor cells, 4 neutrophils (1 bound), 2 macrophages, 6 vessel
    voxels: the fractions are the planted counts' ratios."""
    from sim import readouts
    from sim.cells import endothelial, macrophage, neutrophil, tumor

    m = empty_model(seed=1)
    assert readouts.neutrophil_fraction(m) == readouts.bound_neutrophil_fraction(m) == 0.0
    t = m.spawn(tumor.KIND, np.array([10, 11, 12, 13]), np.full(4, 10),
                state=np.array([0, 0, 1, 2]))
    m.spawn(neutrophil.KIND, np.array([10, 11, 30, 31]), np.full(4, 11),
            state=np.array([2, 1, 0, 0]), partner=np.array([t[0], -1, -1, -1]),
            heading=np.zeros(4), death_min=np.full(4, np.inf))
    m.spawn(macrophage.KIND, np.array([40, 41]), np.full(2, 40), state=np.zeros(2))
    m.spawn(endothelial.KIND, np.arange(50, 56), np.full(6, 50), state=np.zeros(6),
            born_min=np.full(6, -np.inf))
    viable = 3 + 4 + 2 + 6
    assert readouts.neutrophil_fraction(m) == 4 / viable
    assert readouts.endothelial_fraction(m) == 6 / viable
    assert readouts.neutrophil_share_of_microenvironment(m) == 4 / (4 + 2 + 6)
    assert readouts.bound_neutrophil_fraction(m) == 1 / 4


def test_removing_tumor_cells_keeps_every_bond_on_its_cell(empty_model):
    """Swap-remove renumbers tumor rows: a bound neutrophil still points at the same cell
    (same voxel) afterwards, and one whose cell was removed is released."""
    from sim.cells import neutrophil, tumor

    m = empty_model(seed=3)
    xs = np.arange(10, 30)
    t = m.spawn(tumor.KIND, xs, np.full(xs.size, 10), state=np.zeros(xs.size))
    m.spawn(neutrophil.KIND, xs, np.full(xs.size, 11), state=np.full(xs.size, neutrophil.BOUND),
            partner=t, heading=np.zeros(xs.size), death_min=np.full(xs.size, np.inf))
    removed = np.array([3, 19, 7, 18])  # including the last row and the one before it
    m.discard(m.tumor, removed)
    nb, tu = m.neutrophils, m.tumor
    assert tu.n == xs.size - removed.size
    released = np.isin(nb["x"], xs[removed])
    assert (nb["state"][released] == neutrophil.ACTIVATED).all()
    assert (nb["partner"][released] == -1).all()
    kept = ~released
    assert (nb["state"][kept] == neutrophil.BOUND).all()
    np.testing.assert_array_equal(tu["x"][nb["partner"][kept]], nb["x"][kept])
    assert (tu.at[tu["x"], tu["y"]] == np.arange(tu.n)).all()
