"""Fixed cost of the ``neutrosim run`` command, and of a worker's first run in an ensemble.

    python benchmarks/bench_command.py            # ~1 min on 2 cores
    python benchmarks/bench_command.py --quick    # fewer repeats
    python benchmarks/bench_command.py --dask     # also a local Dask cluster's workers

1. The command ``neutrosim run --days 1 --seed 1 --out DIR --overwrite`` (run as
   ``python -m sim``, which is the same command), each time in a fresh process, and right
   after each the same run's steps timed in this process (the model built again, same
   parameters, seed and threads, numba's kernels already loaded here): so each command is
   paired with its own reference at the same moment of the machine. **Fixed cost = the
   command's wall time minus its steps**, median over the pairs; goal: < 1.5 s.
2. Where the fixed cost goes: the command once more, in a process that imports what the
   command will import (by ``sim.runs.warm.warm``, as the command does, under
   ``python -X importtime``: imports itemised by library from the self times it prints,
   which it inflates a little), then runs the command's own ``main()`` with timers
   wrapped around its functions in that process only (no file of the package is
   changed): parameters, numba's set-up (done here before the first kernel call, which
   would otherwise pay it), build, numba's kernel loads (each one timed) and the rest of
   its first calls, steps, final state, each output file, provenance; and timestamps for
   the interpreter's start and teardown. The rows partition the wall time; "other" is what no
   timer covers.
3. Workers: an ensemble of small runs (50 x 50, half a day) on a 2-worker process pool,
   twice, a new pool each time (the second pool finds the fork server warm): each worker's
   first run against its later runs, whether the model's modules and numba's kernels were
   already there when its first run started ("warm"), and what its later runs imported or
   loaded (goal: imports and kernel loading paid once per worker, so nothing at a later
   run). Pool start-up: time to the first result, less that run's own time (the first pool
   of a process starts and warms the fork server). With ``--dask``, the same on a local
   Dask cluster of 2 workers (which are not warmed: they import at their first run).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

GOAL_S = 1.5  # the command's cost beyond its simulation
DAYS = 1.0
SEED = 1
#: the ensemble of section 3
SMALL = {"domain.nx": 50, "domain.ny": 50, "initial.tumor_radius_um": 200.0}
SMALL_DAYS = 0.5
RUNS_PER_WORKER = 4
#: what a run imports, looked for in a worker at its first run
MODEL_MODULES = ("numba", "mesa", "pandas", "pyarrow", "sim.model.model")


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, *extra, "-m", "sim", "run", "--days", f"{DAYS:g}", "--seed",
            str(SEED), "--out", str(out), "--overwrite"]


def _reported_s(stdout: str) -> float:
    """The run's own wall time from the command's last line ("wrote DIR/ in X s: ...")."""
    found = re.search(r" in ([0-9.]+) s:", stdout)
    return float(found.group(1)) if found else float("nan")


def _steps_here(params) -> float:
    """Wall time of the command's steps: the same model built and stepped in this process."""
    from sim.runs.run import build_model

    model = build_model(params, SEED)
    model.set_end(DAYS)
    t0 = time.perf_counter()
    for _ in range(model.end_step):
        model.step()
    return time.perf_counter() - t0


def command_cost(tmp: Path, repeats: int) -> None:
    from sim.config.params import load_params

    params = load_params(options=[(f"--days {DAYS:g}", {"time.days": DAYS})])
    _steps_here(params)  # loads the kernels here, so the reference is the steps alone
    subprocess.run(_command(tmp / "warm"), check=True, capture_output=True)  # OS caches
    walls, steps, reported = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = subprocess.run(_command(tmp / "run"), check=True, capture_output=True,
                              text=True, cwd=tmp)
        walls.append(time.perf_counter() - t0)
        reported.append(_reported_s(done.stdout))
        steps.append(_steps_here(params))
    fixed = [w - s for w, s in zip(walls, steps)]
    med = statistics.median(fixed)
    print(f"\n1. `neutrosim run --days {DAYS:g} --seed {SEED} --out DIR --overwrite`, "
          f"{repeats} fresh processes, each paired with its steps timed here")
    print("| figure | median | min | max |")
    print("| --- | --- | --- | --- |")
    for name, xs in (("command wall [s]", walls), ("its steps, timed here [s]", steps),
                     ("run_one as the command reports it [s]", reported),
                     ("fixed cost: wall - steps [s]", fixed)):
        print(f"| {name} | {statistics.median(xs):.2f} | {min(xs):.2f} | {max(xs):.2f} |")
    print(f"fixed cost {med:.2f} s beyond the simulation's steps: goal < {GOAL_S} s "
          f"{'met' if med < GOAL_S else 'NOT met'}; fixed / steps = {med / statistics.median(steps):.1f}")


# The process of section 2: imports what the command imports, wraps timers around its
# functions, runs its main() and reports the timers, the kernel loads and its timestamps.
_BREAKDOWN = r'''
import time
T0 = time.time()
import atexit, json, sys
record = {"t0": T0, "timers": {}, "loads": []}
atexit.register(lambda: print("BREAKDOWN " + json.dumps({**record, "t_exit": time.time()}),
                              file=sys.__stdout__, flush=True))  # first registered: runs last
t = time.perf_counter()
from sim.runs.warm import RUN_MODULES, WRITE_MODULES, warm
warm(("sim.cli", "sim.config.params", "tqdm.auto", "numba.core.caching", *RUN_MODULES,
      *WRITE_MODULES))
record["imports_s"] = time.perf_counter() - t
from numba.core.registry import cpu_target
t = time.perf_counter()
cpu_target.target_context.refresh()  # what the first kernel call would set up
cpu_target.typing_context.refresh()
record["numba_setup_s"] = time.perf_counter() - t

def wrap(owner, attr, label):
    orig = getattr(owner, attr)
    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return orig(*a, **k)
        finally:
            acc = record["timers"].setdefault(label, [0, 0.0])
            acc[0] += 1
            acc[1] += time.perf_counter() - t0
    setattr(owner, attr, timed)

import matplotlib.figure, numpy, pandas
import numba.core.caching, numba.core.dispatcher
import sim.cli, sim.config.params, sim.plots.state, sim.runs.destination, sim.runs.run
orig_load = numba.core.caching.Cache.load_overload
def load(self, sig, ctx):
    t0 = time.perf_counter()
    try:
        return orig_load(self, sig, ctx)
    finally:
        record["loads"].append([self._name.split(" ")[1], time.perf_counter() - t0])
numba.core.caching.Cache.load_overload = load
for owner, attr, label in (
        (sim.cli, "build_parser", "parse"), (sim.config.params, "load_params", "parameters"),
        (sim.runs.destination, "check_out", "check --out"), (sim.runs.run, "run_one", "run_one"),
        (sim.runs.run, "build_model", "build"), (sim.runs.run, "final_state", "final state"),
        (numba.core.dispatcher.Dispatcher, "_compile_for_args", "numba first calls"),
        (sim.runs.run.RunResult, "write", "write"),
        (pandas.DataFrame, "to_csv", "timeseries.csv"),
        (pandas.DataFrame, "to_parquet", "timeseries.parquet"),
        (numpy, "savez", "final_state.npz"),
        (sim.plots.state, "plot_final_state", "figure: draw"),
        (matplotlib.figure.Figure, "savefig", "figure: savefig"),
        (sim.runs.run.RunResult, "manifest", "manifest.json (with provenance)")):
    wrap(owner, attr, label)
sys.argv = ["neutrosim", *sys.argv[1:]]
t = time.perf_counter()
sim.cli.main()
record["main_s"] = time.perf_counter() - t
'''


def _import_self_times(stderr: str) -> dict[str, float]:
    """Seconds of import by library: the self times of ``-X importtime``, summed by each
    module's top-level package."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].startswith("import time:") or "self" in parts[0]:
            continue
        top = parts[2].strip().split(".")[0]
        out[top] = out.get(top, 0.0) + int(parts[0].split(":")[1]) / 1e6
    return out


def breakdown(tmp: Path) -> None:
    out = tmp / "breakdown"
    argv = _command(out)[3:]  # after "python -m sim"
    t_launch = time.time()
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", _BREAKDOWN, *argv],
                          check=True, capture_output=True, text=True, cwd=tmp)
    t_end = time.time()
    rec = json.loads(done.stdout.split("BREAKDOWN ", 1)[1])
    tm = {k: v[1] for k, v in rec["timers"].items()}
    libs = _import_self_times(done.stderr)
    loads = sorted(rec["loads"], key=lambda r: -r[1])
    load_s = sum(s for _, s in loads)
    steps = tm["run_one"] - tm["build"] - tm["final state"]
    files = ("timeseries.csv", "timeseries.parquet", "final_state.npz", "figure: draw",
             "figure: savefig", "manifest.json (with provenance)")
    wall = t_end - t_launch
    rows = [("interpreter start (to the first line of the script)", rec["t0"] - t_launch),
            ("imports (all that the command imports)", rec["imports_s"]),
            ("numba's set-up, once per process (else in the first kernel call)",
             rec["numba_setup_s"]),
            ("parse the command line", tm.get("parse", 0.0)),
            ("parameters (load_params; imports done)", tm.get("parameters", 0.0)),
            ("check --out", tm.get("check --out", 0.0)),
            ("build the model (build_model)", tm["build"]),
            ("steps (progress bar included; kernels first called there)", steps),
            ("final state", tm["final state"])]
    rows += [(f"write: {f}", tm.get(f, 0.0)) for f in files]
    rows.append(("write: the rest (temporary folder, rename)",
                 tm["write"] - sum(tm.get(f, 0.0) for f in files)))
    rows.append(("interpreter teardown (after the last atexit handler)", t_end - rec["t_exit"]))
    rows.append(("other (what no timer covers)", wall - sum(s for _, s in rows)))
    print(f"\n2. Where the command's {wall:.2f} s go (one run under -X importtime, timers "
          "wrapped around the command's functions in its process)")
    print("| phase | ms |")
    print("| --- | --- |")
    for name, s in rows:
        print(f"| {name} | {1000 * s:.0f} |")
    print("imports by library (self times of -X importtime, ms): " + ", ".join(
        f"{k} {1000 * v:.0f}" for k, v in sorted(libs.items(), key=lambda kv: -kv[1])
        if v >= 0.005))
    print(f"numba: {len(loads)} kernels loaded from its cache in {1000 * load_s:.0f} ms "
          f"(largest: {', '.join(f'{n} {1000 * s:.0f}' for n, s in loads[:3])} ms; the others "
          f"{1000 * statistics.median([s for _, s in loads[3:]] or [0]):.1f} ms each, median); "
          f"the kernels' first calls take {1000 * (tm['numba first calls'] - load_s):.0f} ms "
          "more (typing the arguments, checking the cache); loads and first calls fall in the "
          "build and the first steps")


def _probe_run(spec) -> dict:
    """An ensemble task (run in a worker): what the worker had before the run, the run,
    and what the run imported or loaded."""
    had = [m for m in MODEL_MODULES if m in sys.modules]  # before this task imports anything
    from sim.runs.ensemble import execute_run
    from sim.runs.warm import loaded_kernels

    n_mods, n_kernels = len(sys.modules), sum(loaded_kernels().values())
    t0 = time.perf_counter()
    outcome = execute_run(spec)
    wall = time.perf_counter() - t0
    return {"pid": os.getpid(), "t": time.time() - wall, "wall": wall, "had": had,
            "kernels_before": n_kernels, "new_modules": len(sys.modules) - n_mods,
            "new_kernels": sum(loaded_kernels().values()) - n_kernels, "error": outcome.error}


def _ensemble(executor, label: str) -> tuple[float, float, int, bool]:
    """Run the ensemble and print a row per worker. Returns the first runs' median time, the
    later runs' median, the modules and kernels later runs imported or loaded, and whether
    every worker had the model's modules and kernels before its first run."""
    from sim.config.params import load_params
    from sim.runs.ensemble import RunSpec

    params = load_params(overrides=SMALL)
    specs = [RunSpec(f"r{s}", params, s, days=SMALL_DAYS)
             for s in range(1, 1 + RUNS_PER_WORKER * executor.workers)]
    t0 = time.perf_counter()
    rows, first = [], None
    for _, row, exc in executor.imap_unordered(_probe_run, specs):
        if exc is not None or row["error"]:
            raise RuntimeError(f"a run failed: {exc or row['error']}")
        if first is None:
            first = time.perf_counter() - t0 - row["wall"]
        rows.append(row)
    total = time.perf_counter() - t0
    by_worker: dict[int, list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["t"]):
        by_worker.setdefault(row["pid"], []).append(row)
    print(f"| {label} | start-up {first:.2f} s, all {len(rows)} runs {total:.2f} s | | | | |")
    firsts, laters, late_loads, warm = [], [], 0, True
    for k, runs in enumerate(by_worker.values()):
        first_run, later = runs[0], [r["wall"] for r in runs[1:]]
        firsts.append(first_run["wall"])
        laters += later
        late_loads += sum(r["new_modules"] + r["new_kernels"] for r in runs[1:])
        warm &= len(first_run["had"]) == len(MODEL_MODULES) and first_run["new_kernels"] == 0
        print(f"| worker {k + 1} | {1000 * first_run['wall']:.0f} | "
              f"{1000 * statistics.median(later):.0f} | "
              f"{', '.join(first_run['had']) or 'none'}; {first_run['kernels_before']} kernels | "
              f"{first_run['new_modules']} modules, {first_run['new_kernels']} kernels | "
              f"{sum(r['new_modules'] for r in runs[1:])} modules, "
              f"{sum(r['new_kernels'] for r in runs[1:])} kernels |")
    return statistics.median(firsts), statistics.median(laters), late_loads, warm


def workers(dask: bool) -> None:
    from sim.runs.executors import DaskExecutor, ProcessExecutor

    print(f"\n3. Workers: {RUNS_PER_WORKER} runs a worker (50 x 50, {SMALL_DAYS:g} day), "
          "2 workers; times in ms")
    print("| executor / worker | first run | later runs (median) | at its first run it had | "
          "its first run loaded | its later runs loaded |")
    print("| --- | --- | --- | --- | --- | --- |")
    results = []
    for k in (1, 2):
        with ProcessExecutor(2) as pool:
            results.append((f"process pool {k}", *_ensemble(pool, f"process pool {k}")))
    if dask:
        t0 = time.perf_counter()
        with DaskExecutor(local_workers=2) as cluster:
            print(f"(local Dask cluster started in {time.perf_counter() - t0:.1f} s)")
            results.append(("local Dask cluster", *_ensemble(cluster, "local Dask cluster")))
    for label, first, later, late_loads, warm in results:
        print(f"{label}: later runs imported or loaded {late_loads} modules and kernels: goal "
              f"(imports and kernel loading paid once per worker) "
              f"{'met' if late_loads == 0 else 'NOT met'}; workers "
              f"{'start warm' if warm else 'import and load at their first run'}: first run "
              f"{1000 * first:.0f} ms against later runs {1000 * later:.0f} ms ({first / later:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    ap.add_argument("--dask", action="store_true", help="also a local Dask cluster's workers")
    args = ap.parse_args()
    from sim.runs.provenance import git_revision, versions

    print(json.dumps(versions()))
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs; load average at "
          f"start {' '.join(f'{x:.2f}' for x in os.getloadavg())}; commit {git_revision()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        command_cost(tmp, repeats=3 if args.quick else 7)
        breakdown(tmp)
        workers(args.dask)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
