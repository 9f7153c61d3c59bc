"""The recorded time points: every ``time.record_every_h`` and the end of the simulated time,
where the model stops itself (``running``), as ``mesa.batch_run`` and the browser view expect."""

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import run_one
from sim.config.params import load_params
from sim.model.model import NeutroModel

#: the command-line tests' tiny tissue (tests/test_cli.py TINY): a 1.2 mm window
TINY = {"domain.nx": 60, "domain.ny": 60, "initial.tumor_radius_um": 200.0}
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("days, record_h, run_days, times_h", [
    (0.25, 24.0, None, [0.0, 6.0]),         # shorter than one record interval: the end only
    (0.5, 6.0, None, [0.0, 6.0, 12.0]),     # the end is a record time: recorded once
    (21.0, 6.0, 0.3, [0.0, 6.0, 7.2]),      # run_one(days=...) ends the run before time.days
])
def test_run_one_records_every_interval_and_the_end(days, record_h, run_days, times_h):
    p = load_params(overrides={**TINY, "time.days": days, "time.record_every_h": record_h})
    r = run_one(p, 1, days=run_days)
    np.testing.assert_allclose(r.timeseries["time_h"], times_h, rtol=0, atol=1e-9)
    assert r.meta["steps"] == round(times_h[-1] * 10)  # 6-min steps
    assert r.final["time_h"] == pytest.approx(times_h[-1])  # the state the table ends on


def test_model_stops_running_at_its_end_and_steps_on_by_hand():
    m = NeutroModel(rng=2, width=60, height=60, initial__tumor_radius_um=200.0,
                    time__days=0.05, time__record_every_h=0.6)  # end: step 12; records: 6 steps
    assert m.end_step == 12
    flags = []
    for _ in range(18):
        m.step()
        flags.append(m.running)
    assert flags == [True] * 11 + [False] * 7
    ts = m.datacollector.get_model_vars_dataframe()
    np.testing.assert_allclose(ts["time_h"], [0.0, 0.6, 1.2, 1.8], rtol=0, atol=1e-9)

    again = NeutroModel(rng=2, width=60, height=60, initial__tumor_radius_um=200.0,
                        time__days=0.05, time__record_every_h=0.6)
    again.run_model()  # Mesa's loop: while running
    assert again.steps == 12
    pd.testing.assert_frame_equal(again.datacollector.get_model_vars_dataframe(), ts.iloc[:3],
                                  check_exact=True)


def test_set_end_moves_the_end_and_running_follows():
    m = NeutroModel(rng=1, width=60, height=60, initial__tumor_radius_um=200.0,
                    time__warmup_steps=0)
    assert m.end_step == 21 * 240 and m.running
    m.set_end(0.01)  # 14.4 min: 2.4 steps, rounded to 2
    assert m.end_step == 2 and m.running
    m.step()
    m.step()
    assert not m.running
    m.set_end(1.0)
    assert m.running


def test_browser_view_model_ends_at_time_days(tmp_path):
    from sim.viz.controls import ViewModel

    overlay = tmp_path / "short.toml"
    overlay.write_text("[domain]\nnx = 60\nny = 60\n[initial]\ntumor_radius_um = 200.0\n"
                       "[time]\ndays = 0.025\n")  # 36 min: 6 steps
    view = ViewModel(scenario_name="control", seed=1, params_file=str(overlay))
    flags = []
    for _ in range(7):
        view.step()
        flags.append(view.running)
    assert flags == [True] * 5 + [False] * 2
    times = view.datacollector.get_model_vars_dataframe()["time_h"]
    np.testing.assert_allclose(times, np.arange(8) * 0.1, rtol=0, atol=1e-9)  # each step once


def readme_batch_run_block() -> str:
    """The README's Python block that calls ``mesa.batch_run``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if "mesa.batch_run(" in b]
    assert len(found) == 1, "expected one README example calling mesa.batch_run"
    return found[0]


def test_readme_batch_run_example_runs_each_model_to_its_end():
    code = readme_batch_run_block()
    namespace = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 (the README's own code)
    runs = namespace["runs"]
    days = runs["time__days"].iloc[0]
    assert runs["RunId"].nunique() == 2
    for _, run in runs.groupby("RunId"):
        # every 6 h and the end; the run stopped itself at time.days, far below max_steps
        np.testing.assert_allclose(run["time_h"], [0.0, 6.0, 12.0], rtol=0, atol=1e-9)
        assert run["time_h"].iloc[-1] == pytest.approx(days * 24.0)
        assert run["Step"].iloc[-1] == round(days * 240)


def test_progress_bar_clock_starts_after_the_first_step():
    from sim.runs.run import _DayBar

    bar = _DayBar(n_steps=100, steps_per_day=10.0)
    time.sleep(0.5)  # a first step that compiles kernels
    bar.update(1)
    for _ in range(39):
        bar.update(1)
    elapsed = bar.bar.format_dict["elapsed"]
    postfix = bar.bar.postfix
    bar.close()
    assert bar.bar.n == 40
    assert elapsed < 0.25, "the first step's time counts in the bar's rate"
    day, rate = re.fullmatch(r"day ([\d.]+), ([\d.]+) sim-days/min", postfix).groups()
    assert float(day) == 4.0
    assert float(rate) > 3.9 / (0.25 / 60)  # 39 steady steps in under 0.25 s
