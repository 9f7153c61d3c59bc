"""All fields of a step in one compiled call per thread (sim.fields.stepper), and how the
model couples its cells to the fields (time.source_lag_steps)."""

import copy
import threading

import numpy as np
import pytest
from numba import njit

from sim.config.field_registry import FIELD_NAMES
from sim.config.params import load_params
from sim.fields import FieldSolver, FieldSpec, FieldSystem, Sources
from sim.fields.multigrid import SteadySolver
from sim.fields.simd import atomic_fetch_add
from sim.fields.stepper import FieldStepper
from sim.model.model import NeutroModel
from tests.conftest import SMALL

SHAPE = (61, 45)  # 45 columns: not a multiple of 8 (the padded layout's edge case)
DX, DT = 20.0, 6.0
OX = dict(decay=0.05, blood=40.0, diffusion=1e5, boundary=38.0)


@njit(nogil=True)
def _claim_all(counter, seen, n):
    while True:
        i = atomic_fetch_add(counter, 0, 1)
        if i >= n:
            return
        seen[i] += 1


def test_atomic_counter_hands_out_every_number_exactly_once():
    counter, seen = np.zeros(1, np.int64), np.zeros(400_000, np.int64)
    threads = [threading.Thread(target=_claim_all, args=(counter, seen, seen.size))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (seen == 1).all()  # no number lost or given twice
    assert counter[0] == seen.size + 2  # each thread's last claim overshoots by one


def _specs():
    return [FieldSpec("chemo", 5e4, 0.01, "dirichlet", 0.0, 1.0),
            FieldSpec("vegf", 2500.0, 0.015, "noflux", 0.0, 2.0),
            FieldSpec("still", 0.0, 0.02, "dirichlet", 0.0, 6.0)]  # does not diffuse


def _setup(rng):
    names = ["oxygen"] + [s.name for s in _specs()]
    fields = {n: rng.random(SHAPE) * (38.0 if n == "oxygen" else 1.0) for n in names}
    src = Sources({n: np.zeros(SHAPE) for n in names}, {n: np.zeros(SHAPE) for n in names},
                  np.zeros(SHAPE))
    idx = rng.choice(SHAPE[0] * SHAPE[1], 300, replace=False)
    x, y = np.divmod(idx, SHAPE[1])
    src.add_release("chemo", x[:100], y[:100], rng.random(100))
    src.add_uptake("vegf", x[100:200], y[100:200], rng.random(100))
    src.add_uptake("oxygen", x, y, 0.2 * rng.random(300))
    src.set_supply(x[:20], y[:20], 0.5)
    src.add_release("still", x[200:], y[200:], rng.random(100))
    return fields, src


def _stepper(threads):
    oxygen = SteadySolver(SHAPE, DX, OX["diffusion"], "dirichlet", OX["boundary"], tol=1e-8)
    return FieldStepper(SHAPE, DX, DT, oxygen=oxygen, oxygen_decay_per_min=OX["decay"],
                        oxygen_blood=OX["blood"], transient=_specs(), threads=threads)


def _one_by_one(fields, src):
    """The same step with the solvers called one field at a time."""
    out = {n: v.copy() for n, v in fields.items()}
    solver = FieldSolver(_specs(), SHAPE, DX, DT)
    for spec in _specs():
        solver.advance(spec.name, out[spec.name], release=src.written(src.release[spec.name]),
                       uptake=src.written(src.uptake[spec.name]))
    c = src.uptake["oxygen"] + src.supply_rate + OX["decay"]
    f = src.supply_rate * OX["blood"] + src.release["oxygen"]
    SteadySolver(SHAPE, DX, OX["diffusion"], "dirichlet", OX["boundary"], tol=1e-8).solve(
        out["oxygen"], c, f)
    return out


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_stepper_equals_the_solvers_called_one_by_one(threads):
    fields, src = _setup(np.random.default_rng(5))
    expected = _one_by_one(fields, src)
    stepper = _stepper(threads)
    assert stepper.names == ["chemo", "vegf", "still"]  # most sub-steps first
    for _ in range(2):  # the second call reuses the scratch and the oxygen warm start
        stepper.advance(fields, src)
        for n in fields:
            np.testing.assert_array_equal(fields[n], expected[n], err_msg=n)
        expected = _one_by_one(expected, src)


def test_fields_stay_as_they_were_until_finish():
    fields, src = _setup(np.random.default_rng(6))
    before = {n: v.copy() for n, v in fields.items()}
    expected = _one_by_one(fields, src)
    stepper = _stepper(2)
    stepper.start(fields, src)
    threading.Event().wait(0.05)  # the helper has solved by now; the caller still sees...
    for n in fields:
        np.testing.assert_array_equal(fields[n], before[n], err_msg=n)  # ...the old fields
    stepper.finish(fields)
    for n in fields:
        np.testing.assert_array_equal(fields[n], expected[n], err_msg=n)


@pytest.mark.parametrize("threads", [1, 2])
def test_solves_can_zero_the_sources_they_read(threads):
    fields, src = _setup(np.random.default_rng(8))
    x, y = np.divmod(np.arange(SHAPE[0] * SHAPE[1]), SHAPE[1])
    src.add_uptake("chemo", x, y, 1e-3)  # every voxel: cleared by a fill, not voxel by voxel
    expected = _one_by_one(fields, src)
    stepper = _stepper(threads)
    stepper.start(fields, src, zero_sources=True)
    stepper.finish(fields)
    for n in fields:
        np.testing.assert_array_equal(fields[n], expected[n], err_msg=n)
    arrays = [*src.release.values(), *src.uptake.values(), src.supply_rate]
    assert all(not a.any() for a in arrays)  # every source read is zero again...
    assert src.written(src.uptake["chemo"]) is None  # ...and the record of writes is empty


@pytest.mark.parametrize("threads", [1, 2])
def test_bad_sources_raise_and_leave_every_field_unchanged(threads):
    fields, src = _setup(np.random.default_rng(7))
    before = {n: v.copy() for n, v in fields.items()}
    src.release["vegf"][3, 4] = -1.0
    src._track(src.release["vegf"], 0)  # mark the array as written (so it is read)
    stepper = _stepper(threads)
    with pytest.raises(ValueError, match="field 'vegf': 1 source values are negative"):
        stepper.advance(fields, src)
    for n in fields:
        np.testing.assert_array_equal(fields[n], before[n], err_msg=n)
    src.release["vegf"][3, 4] = 0.0
    stepper.advance(fields, src)  # and the stepper still works
    src.uptake["oxygen"][0, 0] = np.nan
    with pytest.raises(ValueError, match="c must be >= 0"):
        stepper.advance(fields, src)


# ------------------------------------------------------------------ the model's coupling
@pytest.mark.parametrize("lag", [0, 1])
def test_fields_of_a_step_use_the_sources_of_the_stated_step(lag):
    """lag 1: the fields over step n come from the sources the cells wrote in step n - 1;
    lag 0: from those of step n itself."""
    m = NeutroModel(load_params(overrides={**SMALL, "time.source_lag_steps": lag}), rng=4,
                    threads=2)
    for _ in range(30):
        m.step()
    for _ in range(3):
        before = {n: v.copy() for n, v in m.fields.items()}
        previous = copy.deepcopy(m.fields.pending)  # (the copy keeps which arrays were written)
        m.step()
        used = previous if lag else m.fields.sources  # lag 0: this step's sources, kept
        shadow = FieldSystem(m.p.replace({"time.source_lag_steps": 0}), before, threads=1)
        shadow.sources = used
        shadow.end_step()  # lag 0: the fields over one step from ``used``
        for n in FIELD_NAMES:
            np.testing.assert_array_equal(m.fields[n], shadow[n], err_msg=n)


def test_an_error_among_the_cells_leaves_the_model_usable(monkeypatch):
    m = NeutroModel(load_params(overrides=SMALL), rng=2, threads=2)
    m.step()
    fields = {n: v.copy() for n, v in m.fields.items()}

    def broken(stage, model):
        if stage.name == "immune cells":
            raise RuntimeError("a stage failed")
        stage.run(model)

    monkeypatch.setattr(m, "stage_timer", broken)
    with pytest.raises(RuntimeError, match="a stage failed"):
        m.step()
    for n in FIELD_NAMES:  # the started solves were waited for and dropped
        np.testing.assert_array_equal(m.fields[n], fields[n], err_msg=n)
    monkeypatch.undo()
    m.step()  # the pool is free again
