"""Sweep throughput, parallel efficiency, Dask overhead per run, and memory against run count.

    python benchmarks/bench_sweep.py            # ~6 min on 2 cores
    python benchmarks/bench_sweep.py --quick    # fewer runs

1. Model runs of a few seconds (120 x 120 window, 7 days): wall time with 1 and 2 local
   worker processes, timed in turn over 3 rounds -> runs per minute and parallel
   efficiency T1 / (2 T2).
2. Cheap runs (the Ishigami function of ``tests/ishigami.py``: the runner's own cost):
   time per run in this process, in the process pool and on a local Dask cluster
   (2 workers each) -> the Dask path's overhead per run against the pool.
3. Peak memory of the process driving the sweep, in a fresh process per size, for a
   growing number of runs (results stream to Parquet parts, so it should stay flat), and
   of ``neutrosim analyze`` reading them back.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the Ishigami simulation is in tests/ (workers inherit the path)

MODEL_SPEC = """
[sweep]
design = "grid"
replicates = {reps}
arms = ["control"]
days = 7
outcomes = ["tumor_cells"]
[sweep.set]
"domain.nx" = 120
"domain.ny" = 120
"initial.tumor_radius_um" = 250.0
[parameters]
"neutrophil.chemotaxis_bias" = {{ levels = [0.1, 0.2, 0.3, 0.4] }}
"""

ISHIGAMI = (ROOT / "tests" / "data" / "ishigami.toml").read_text()


def _spec(tmp: Path, name: str, text: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def _time_sweep(spec_path: Path, out: Path, executor, **simulate) -> float:
    from sim.experiments.sweep import load_spec, run_sweep

    spec = load_spec(spec_path)
    t0 = time.perf_counter()
    with executor:
        run_sweep(spec, out, executor, progress=False, **simulate)
    return time.perf_counter() - t0


def parallel_efficiency(tmp: Path, reps: int, rounds: int) -> None:
    """T1 and T2 (the same sweep on 1 and on 2 workers) timed in turn, ``rounds`` times, so a
    drift of the machine's speed weighs on both alike; the efficiency is taken from the sums
    and, for the spread, pair by pair."""
    from sim.runs.executors import ProcessExecutor

    spec = _spec(tmp, "model", MODEL_SPEC.format(reps=reps))
    n = 4 * reps
    # warm the numba cache once so neither measurement pays for compilation
    _time_sweep(spec, tmp / "warm", ProcessExecutor(1))
    t1, t2 = [], []
    for k in range(rounds):
        t1.append(_time_sweep(spec, tmp / f"w1-{k}", ProcessExecutor(1)))
        t2.append(_time_sweep(spec, tmp / f"w2-{k}", ProcessExecutor(2)))
    print(f"\n1. model runs (120x120, 7 days), {n} runs, 1 and 2 workers in turn, {rounds} rounds")
    print("| workers | wall [s], sum of rounds | runs / min | s / run |")
    print("| --- | --- | --- | --- |")
    for w, t in ((1, sum(t1)), (2, sum(t2))):
        print(f"| {w} | {t:.1f} | {60 * n * rounds / t:.1f} | {t / (n * rounds):.2f} |")
    pairs = [a / (2 * b) for a, b in zip(t1, t2)]
    print(f"parallel efficiency on 2 workers: T1 / (2 T2) = {sum(t1) / (2 * sum(t2)):.0%} "
          f"(goal >= 85%); round by round {', '.join(f'{e:.0%}' for e in pairs)}")


def dask_overhead(tmp: Path, samples: int) -> None:
    from sim.runs.executors import DaskExecutor, ProcessExecutor, SerialExecutor
    from tests.ishigami import simulate_ishigami

    spec = _spec(tmp, "ish", ISHIGAMI.replace("samples = 512", f"samples = {samples}"))
    n = samples * 5
    ish = {"simulate": simulate_ishigami}
    serial = _time_sweep(spec, tmp / "s", SerialExecutor(), **ish)
    pool = _time_sweep(spec, tmp / "p", ProcessExecutor(2), **ish)
    t0 = time.perf_counter()
    dask_ex = DaskExecutor(local_workers=2)
    start = time.perf_counter() - t0
    dask = _time_sweep(spec, tmp / "d", dask_ex, **ish)
    print(f"\n2. cheap runs (Ishigami), {n} runs, 2 workers")
    print("| path | wall [s] | ms / run |")
    print("| --- | --- | --- |")
    for name, t in (("in this process (serial)", serial), ("process pool", pool),
                    ("local Dask cluster", dask)):
        print(f"| {name} | {t:.2f} | {1000 * t / n:.2f} |")
    print(f"Dask overhead per run against the pool: {1000 * (dask - pool) / n:.2f} ms "
          f"(goal < 50 ms); cluster start-up {start:.1f} s, not included")


_RSS = "; import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
_SWEEP = ("import sys; from sim.experiments.sweep import load_spec, run_sweep; "
          "from sim.runs.executors import SerialExecutor; from tests.ishigami import simulate_ishigami; "
          "run_sweep(load_spec(sys.argv[1]), sys.argv[2], SerialExecutor(), progress=False, "
          "simulate=simulate_ishigami)" + _RSS)
_ANALYZE = "import sys; from sim.experiments.sensitivity import analyze; analyze(sys.argv[1])" + _RSS


def _peak_rss_mb(code: str, *argv: str) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter; return (wall s, that process's peak RSS in MB)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *argv], check=True, cwd=ROOT,
                          capture_output=True, text=True)
    return time.perf_counter() - t0, int(done.stdout.split()[-1]) / 1024.0


def memory(tmp: Path, sizes: list[int]) -> None:
    print("\n3. peak memory of the process driving the sweep against the number of runs "
          "(Ishigami, serial, a fresh process each)")
    print("| runs | sweep wall [s] | sweep peak RSS [MB] | analyze peak RSS [MB] |")
    print("| --- | --- | --- | --- |")
    for samples in sizes:
        spec = _spec(tmp, f"m{samples}", ISHIGAMI.replace("samples = 512", f"samples = {samples}"))
        out = str(tmp / f"m{samples}")
        wall, rss = _peak_rss_mb(_SWEEP, str(spec), out)
        _, rss_an = _peak_rss_mb(_ANALYZE, out)
        print(f"| {samples * 5} | {wall:.1f} | {rss:.0f} | {rss_an:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    from sim.runs.provenance import versions

    print(json.dumps(versions()))
    with open("/proc/loadavg") as fh:
        print("load average at start:", fh.read().split()[:3])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        parallel_efficiency(tmp, reps=2 if args.quick else 4, rounds=1 if args.quick else 3)
        dask_overhead(tmp, samples=64 if args.quick else 256)
        memory(tmp, [64, 256] if args.quick else [128, 512, 2048])


if __name__ == "__main__":
    main()
