"""Fields of a step solved side by side on threads (sim.fields.threads): every task runs
once, errors reach the caller, and the model's results do not depend on the threads."""

import multiprocessing
import threading
import warnings

import numpy as np
import pytest

from sim.config.errors import ParameterError
from sim.config.params import load_params
from sim.config.threads import default_threads
from sim.fields.threads import TaskPool, ThreadChooser
from sim.model.model import NeutroModel
from tests.conftest import SMALL


def test_pool_runs_every_task_once_and_in_parallel():
    pool = TaskPool(2)
    met = threading.Barrier(2, timeout=10)  # two tasks that can only finish together
    ran = []

    def meet(tag):
        def task(k):
            met.wait()
            ran.append((tag, k))
        return task

    def plain(tag):
        return lambda k: ran.append((tag, k))

    pool.run([meet("a"), meet("b"), plain("c"), plain("d"), plain("e")])
    assert sorted(t for t, _ in ran) == ["a", "b", "c", "d", "e"]
    assert {k for t, k in ran if t in "ab"} == {0, 1}  # one on the caller, one on the helper
    for _ in range(3):  # the helper is reused
        met.reset()
        ran.clear()
        pool.run([meet("a"), meet("b")])
        assert sorted(ran) == [("a", 0), ("b", 1)] or sorted(ran) == [("a", 1), ("b", 0)]


def test_runs_from_two_threads_take_turns():
    pool = TaskPool(2)
    in_use, clashes = set(), []

    def task(k):
        if k in in_use:
            clashes.append(k)
        in_use.add(k)
        threading.Event().wait(0.002)
        in_use.discard(k)

    callers = [threading.Thread(target=pool.run, args=([task] * 6,)) for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(30)
    assert not clashes  # no two tasks ever ran on the same thread index at once


@pytest.mark.parametrize("where", ["caller", "helper"])
def test_pool_reraises_a_task_error_after_all_threads_stop(where):
    pool = TaskPool(2)
    done = []
    started = threading.Event()

    def slow(k):
        started.set()
        threading.Event().wait(0.05)
        done.append(k)

    def bad(k):
        started.wait(10)
        raise ValueError(f"task failed on thread {k}")

    tasks = [slow, bad] if where == "caller" else [bad, slow]
    with pytest.raises(ValueError, match="task failed"):
        pool.run(tasks)
    assert len(done) == 1  # the other task had finished before run() raised
    ran = []
    pool.run([lambda k: ran.append(k)] * 4)  # still usable
    assert len(ran) == 4


def test_pool_and_thread_count_are_validated(monkeypatch):
    assert TaskPool(np.int64(2)).threads == 2
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            TaskPool(bad)
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")
    assert default_threads() == 3
    for bad in ("two", "0", "-1"):
        monkeypatch.setenv("NUMBA_NUM_THREADS", bad)
        with pytest.raises(ParameterError, match=f"NUMBA_NUM_THREADS={bad!r}: expected a whole"):
            default_threads()
    for bad in (0, "2"):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            NeutroModel(load_params(overrides=SMALL), rng=1, threads=bad)


def _run_in_child(queue):
    pool = _FORKED_POOL
    out = []
    pool.run([lambda k: out.append(k)] * 3)
    queue.put(len(out))


_FORKED_POOL = None


def test_pool_works_in_a_forked_child():
    global _FORKED_POOL
    _FORKED_POOL = TaskPool(2)
    _FORKED_POOL.run([lambda k: None] * 2)  # its helper thread exists in the parent
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        child = ctx.Process(target=_run_in_child, args=(queue,))
        child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
        pytest.fail("the pool deadlocked in a forked child")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 3


def _state(m: NeutroModel) -> dict[str, np.ndarray]:
    out = {f"field_{k}": v.copy() for k, v in m.fields.items()}
    for kind, pop in m.populations.items():
        for col in pop.dtypes:
            out[f"{kind}_{col}"] = pop[col].copy()
    return out


def test_model_results_do_not_depend_on_the_field_threads():
    p = load_params(overrides=SMALL)
    one, two = NeutroModel(p, rng=3, threads=1), NeutroModel(p, rng=3, threads=2)
    assert one.field_threads == 1 and two.field_threads == 2
    for _ in range(60):
        one.step()
        two.step()
    a, b = _state(one), _state(two)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ta = one.datacollector.get_model_vars_dataframe()
    tb = two.datacollector.get_model_vars_dataframe()
    assert ta.equals(tb)


def test_model_results_do_not_depend_on_switching_threads_step_by_step(monkeypatch):
    """The default setting switches between all threads and one as the machine's load
    changes; a chooser that switches at every step gives the one-thread run exactly."""
    p = load_params(overrides=SMALL)
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    one, switching = NeutroModel(p, rng=3, threads=1), NeutroModel(p, rng=3)
    switching.fields.chooser = ThreadChooser(2, block=1, hold=1, max_hold=1)
    for _ in range(60):
        one.step()
        switching.step()
    steps_on = switching.fields.chooser.steps_on
    assert steps_on[1] >= 20 and steps_on[2] >= 20  # it did switch, both ways
    a, b = _state(one), _state(switching)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert one.datacollector.get_model_vars_dataframe().equals(
        switching.datacollector.get_model_vars_dataframe())


class _Machine:
    """A planted machine: a step on ``threads`` takes ``cost[threads]`` seconds, or (with
    ``preempted`` > 0, a loaded machine) that many times longer with that probability."""

    def __init__(self, cost, preempted: float = 0.0, seed: int = 0):
        self.cost, self.now = dict(cost), 0.0
        self.preempted, self.rng = preempted, np.random.default_rng(seed)

    def run(self, chooser: ThreadChooser, steps: int) -> list[int]:
        used = []
        for _ in range(steps):
            k = chooser.next()
            used.append(k)
            slow = self.preempted and self.rng.random() < self.preempted
            took = self.cost[k] * (4.0 if slow else 1.0)
            self.now += took
            chooser.took(took)
        return used


@pytest.mark.parametrize("faster", [2, 1])
def test_chooser_settles_on_the_faster_setting(faster):
    machine = _Machine({2: 1.0, 1: 1.5} if faster == 2 else {2: 2.0, 1: 1.5})
    chooser = ThreadChooser(2, block=2, hold=50, max_hold=400)
    used = machine.run(chooser, 2000)
    assert chooser.chosen == faster
    assert used.count(faster) / len(used) > 0.95  # trials grow rarer as the choice holds
    assert used[:16] == [2, 2, 1, 1, 1, 1, 2, 2] * 2  # the first trial: blocks in turn


def test_chooser_follows_a_change_of_load():
    """Quiet, then two competing processes make the helper thread a liability: within a
    hold and a trial the chooser falls back to one thread, and returns when they stop."""
    machine = _Machine({2: 1.0, 1: 1.4})
    chooser = ThreadChooser(2, block=2, hold=50, max_hold=100)
    machine.run(chooser, 500)
    assert chooser.chosen == 2
    machine.cost = {2: 3.0, 1: 2.0}
    used = machine.run(chooser, 500)
    assert chooser.chosen == 1 and used[-300:].count(1) >= 270
    machine.cost = {2: 1.0, 1: 1.4}
    machine.run(chooser, 500)
    assert chooser.chosen == 2


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cost", [{2: 1.4, 1: 1.0}, {2: 1.0, 1: 1.15}],
                         ids=["starved-helper", "helper-helps"])
def test_chooser_under_noisy_load_runs_about_as_fast_as_the_faster_setting(cost, seed):
    """A loaded machine: a third of the steps take 4x longer at random. A helper thread
    that gets no core (all threads 40% slower) sends the model to one thread; a helper
    that still helps (15% faster) is not given up for the noise. Either way the run takes
    at most 8% longer than the faster setting alone would (the trials' cost)."""
    faster = min(cost, key=cost.get)
    machine = _Machine(cost, preempted=1 / 3, seed=seed)
    chooser = ThreadChooser(2)
    used = machine.run(chooser, 5000)
    expected_best = 5000 * cost[faster] * (1 + 3 / 3)  # mean slow-down 1 + 3 * 1/3
    assert machine.now < 1.08 * expected_best
    assert chooser.chosen == faster and used[-2000:].count(faster) > 1800


def test_chooser_on_one_thread_never_times():
    chooser = ThreadChooser(1)
    for _ in range(5):
        assert chooser.next() == 1
        chooser.took(1.0)
    assert chooser.chosen is None and chooser.steps_on == {1: 5}
    with pytest.raises(ValueError):
        ThreadChooser(2, block=0)
