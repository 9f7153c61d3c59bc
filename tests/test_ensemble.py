"""The ensemble runner: parallel equals serial, resume skips finished runs, failures are kept."""


import pandas as pd
import pytest

from sim import ParameterError, load_params, run_one
from sim.runs.ensemble import (
    RunSpec,
    execute_run,
    finished_keys,
    load_failures,
    load_final,
    load_runs,
    run_ensemble,
)
from sim.runs.executors import ProcessExecutor, SerialExecutor

TINY = {"domain.nx": 50, "domain.ny": 50, "initial.tumor_radius_um": 200.0}
DAYS = 0.5


def _specs(seeds=(1, 2, 3), scenario="control"):
    p = load_params(scenario=scenario, overrides=TINY)
    return [RunSpec(f"{scenario}-r{s}", p, s, {"arm": scenario, "replicate": s}, days=DAYS,
                    keep_final=(s == seeds[0])) for s in seeds]


def flaky(spec: RunSpec):
    """A task that fails for one key (importable by worker processes)."""
    if spec.key.endswith("-r2"):
        raise RuntimeError("planted failure")
    return execute_run(spec)


def test_parallel_runs_equal_serial_runs_bit_for_bit(tmp_path):
    specs = _specs()
    run_ensemble(specs, tmp_path / "serial", SerialExecutor(), progress=False)
    with ProcessExecutor(2) as pool:
        report = run_ensemble(specs, tmp_path / "pool", pool, progress=False)
    assert sorted(report.done) == sorted(s.key for s in specs)
    a, b = load_runs(tmp_path / "serial"), load_runs(tmp_path / "pool")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # and both equal a direct run_one of the same parameters and seed
    direct = run_one(specs[0].params, specs[0].seed, days=DAYS).timeseries
    mine = a[a["replicate"] == 1].drop(columns=["arm", "replicate", "seed", "params_digest"])
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), direct, check_exact=True)
    fa, fb = load_final(tmp_path / "serial", "control-r1"), load_final(tmp_path / "pool", "control-r1")
    assert fa.keys() == fb.keys() and all((fa[k] == fb[k]).all() for k in fa)
    assert load_final(tmp_path / "pool", "control-r2") is None  # keep_final only for the first


def test_rerun_skips_finished_keys_and_runs_only_missing_ones(tmp_path):
    specs = _specs(seeds=(1, 2))
    run_ensemble(specs[:1], tmp_path, progress=False)
    mtime = (tmp_path / "runs" / "control-r1.parquet").stat().st_mtime_ns
    report = run_ensemble(specs, tmp_path, progress=False)
    assert report.skipped == ["control-r1"] and report.done == ["control-r2"]
    assert (tmp_path / "runs" / "control-r1.parquet").stat().st_mtime_ns == mtime
    runs = load_runs(tmp_path)
    assert not runs.duplicated(["arm", "replicate", "time_h"]).any()
    assert set(finished_keys(tmp_path)) == {"control-r1", "control-r2"}


def test_a_run_that_raises_is_recorded_and_the_others_finish(tmp_path):
    specs = _specs()
    with ProcessExecutor(2) as pool:
        report = run_ensemble(specs, tmp_path, pool, task=flaky, progress=False)
    assert sorted(report.done) == ["control-r1", "control-r3"]
    assert report.failed == {"control-r2": "RuntimeError: planted failure"}
    record = load_failures(tmp_path)["control-r2"]
    assert "planted failure" in record["traceback"] and record["digest"] == specs[1].digest
    assert not (tmp_path / "runs" / "control-r2.parquet").exists()
    # a later successful attempt clears the failure record
    report = run_ensemble(specs, tmp_path, progress=False)
    assert report.done == ["control-r2"] and load_failures(tmp_path) == {}


def test_finished_run_with_other_parameters_is_refused_before_running(tmp_path):
    run_ensemble(_specs(seeds=(1,)), tmp_path, progress=False)
    changed = [RunSpec("control-r1", load_params(overrides={**TINY, "tumor.cycle_rate_per_min": 0.001}),
                       1, days=DAYS)]
    with pytest.raises(ParameterError, match="different parameters"):
        run_ensemble(changed, tmp_path, progress=False)


def test_repeated_and_unsafe_keys_are_rejected(tmp_path):
    spec = _specs(seeds=(1,))[0]
    with pytest.raises(ParameterError, match="appears twice"):
        run_ensemble([spec, spec], tmp_path, progress=False)
    with pytest.raises(ParameterError, match="letters, digits"):
        RunSpec("../escape", spec.params, 1)
    assert not (tmp_path / "runs").exists()


def test_parts_carry_key_digest_and_labels(tmp_path):
    spec = _specs(seeds=(4,))[0]
    run_ensemble([spec], tmp_path, progress=False)
    runs = load_runs(tmp_path)
    assert (runs["seed"] == 4).all() and (runs["params_digest"] == spec.digest).all()
    assert list(runs.columns[:4]) == ["arm", "replicate", "seed", "params_digest"]
    assert finished_keys(tmp_path) == {spec.key: spec.digest}
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary files left
