"""Whole-model throughput of neutrosim, and an idiomatic-Mesa baseline in the same run.

Sections (all seeds fixed):

1. Default grid (200x200, default parameters, the default 21-day run): wall time of
   ``run_one(load_params(), 1)``, simulated days per wall-clock minute; then the same run
   stepped by hand (a ``NeutroModel`` with the same seed, so the same trajectory) to count
   agent-updates (the sum over steps of the agents alive at the start of each step) and to
   time the stages of ``NeutroModel.step``; then a cProfile of a short continuation.
1b. The same run with the fields on one thread and on all threads (fixed numbers), in
   alternating chunks of steps.
1c. The same run with the Mesa side (grid and agents) built at t=0 and synced after every
   step (``mesa="eager"``, what a model read through Mesa costs) and never built
   (``"lazy"`` and never read, as run_one and the ensembles run it; what every other
   section uses), in alternating chunks.
1d. Under load: COMPETITORS CPU-bound processes hold the cores while the same run steps
   with the default thread setting (chosen by timing), one thread and all threads fixed,
   in alternating chunks; the default must not be slower than one thread.
2. Large tissue: 1000x1000 voxels (20 mm), initial tumor radius 2500 um (5x the default
   radius on a 5x wider window), everything else default. The full 21 days is run when a
   probe projects it to finish in under LARGE_FULL_LIMIT_MIN minutes; otherwise a shorter
   span is run and extrapolated linearly in steps (the output says so).
3. Cost against the number of agents: four initial tumor radii on the default grid,
   a short warm-up, then a few model days each: s/step, us per agent-step, and the
   log-log slope of agent-stage time against agents (<= 1: no worse than linear).
4. Idiomatic Mesa baseline: plain ``CellAgent``s on an ``OrthogonalMooreGrid`` of the
   same size, as many as the section-1 run had on average, each reading property layers,
   evaluating two Hill rules and taking a biased random walk step over empty neighbours
   (``cell.neighborhood.select`` / ``select_random_cell``), scheduled with
   ``model.agents.shuffle_do("step")``; a second, type-matched variant walks only the
   neutrosim share of mobile agents (neutrophils + macrophages). Interleaved with
   neutrosim: section 1's run again, in chunks of CHUNK steps, each chunk followed by one
   step of each baseline, so the machine's other load weighs on all alike.
4b. With section 2: baseline A again on the 1000x1000 grid, at the large tissue's mean
   agent count, for a few steps (--large-baseline-steps).

Stages are timed through the model's ``stage_timer`` hook (each stage of
``sim.model.stages.STAGES`` by name); a few public model methods get inclusive timers on the
instance, removed afterwards; no file of the package is changed.

Usage: python benchmarks/bench_model.py [--quick] [--skip-large]
           [--large-days D] [--large-baseline-steps N]
"""

import argparse
import cProfile
import gc
import math
import os
import platform
import pstats
import resource
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

SEED = 1  # neutrosim seed (as in the brief: run_one(load_params(), 1))
BASELINE_SEED = 0
LARGE_OVERRIDES = {"domain.nx": 1000, "domain.ny": 1000, "initial.tumor_radius_um": 2500.0}
GOAL_LARGE_MIN = 15.0  # project goal: 21 days of the large tissue in under 15 min
LARGE_FULL_LIMIT_MIN = 25.0  # run the large tissue in full when projected under this
LARGE_SHORT_DAYS = 2.0  # otherwise run this span and extrapolate
#: when the Mesa side is built: "lazy", on first read (run_one and the ensembles never read
#: it); section 1c compares "eager" (built at t=0, synced after every step)
MESA = "lazy"
#: section 4: neutrosim steps between two steps of each baseline (one baseline-A step takes
#: about as long as this many neutrosim steps on the default grid)
CHUNK = 60
GOAL_RATIO = 50.0  # neutrosim agent-updates/s over the idiomatic baseline's (default threads)
GOAL_ONE_THREAD = 75.0  # the same ratio with the fields on one thread (as ensembles run)
GOAL_TWO_THREADS = 100.0  # the same ratio with the fields on two threads, quiet machine
GOAL_LARGE_BUILD_S = 5.0  # 1000x1000: model build
GOAL_LARGE_STEP_MS = 25.0  # 1000x1000: mean step, default threads
GOAL_LARGE_MEMORY_MB = 1200.0  # 1000x1000: peak RSS of the process, MB (1e6 bytes)
#: section 1d: CPU-bound processes competing for the cores
COMPETITORS = 2
SCALING_RADII_UM = (300.0, 600.0, 1200.0, 1800.0)  # on the default 200x200 grid


# ---------------------------------------------------------------------------- helpers
def import_sim(retries: int = 5, wait_s: float = 60.0):
    """Import the package; other people edit it, so a failed import is retried."""
    for attempt in range(retries + 1):
        try:
            import sim
            from sim import load_params, run_one
            from sim.model.model import NeutroModel

            return sim, load_params, run_one, NeutroModel
        except Exception as exc:  # noqa: BLE001 - any import failure while mid-edit
            if attempt == retries:
                raise
            print(f"[bench] import of sim failed ({type(exc).__name__}: {exc}); "
                  f"retrying in {wait_s:.0f} s", file=sys.stderr, flush=True)
            for name in [m for m in sys.modules if m == "sim" or m.startswith("sim.")]:
                del sys.modules[name]
            time.sleep(wait_s)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> str:
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fmt_rate(x: float) -> str:
    """1234567 -> '1.23 M'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {suffix}"
    return f"{x:.3g}"


def fmt_s(s: float) -> str:
    if s >= 120:
        return f"{s:.0f} s ({s / 60:.1f} min)"
    return f"{s:.2f} s"


def table(headers, rows, indent: str = "  ") -> None:
    """Print a plain table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return indent + "  ".join(
            (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths)))

    print(line(cells[0]))
    print(indent + "  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print(line(r))


def section(title: str) -> None:
    print()
    print("=" * 100)
    print(title)
    print("=" * 100)


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- stage timers
#: the model's stages (sim.model.stages.STAGES) that are the cells' rules, and the fields'
AGENT_STAGES = ("vessels", "tumor cells", "immune cells")
FIELD_STAGES = ("fields: begin", "fields: end")
OXYGEN_SOLVES = "fields: oxygen solves (counted at fields.oxygen_solver.outcome)"
FIELD_THREADS = "fields: compiled solves, thread time (all threads, beside the cells)"


class StageTimers:
    """Times the stages of ``model.step()`` through the model's ``stage_timer`` hook.

    ``top`` holds each stage's calls and seconds (they partition the step); ``sub`` holds
    inclusive timers of a few public model methods, reported as "of which". Attach with
    :meth:`attach`, undo with :meth:`restore`.
    """

    def __init__(self):
        self.top: dict[str, list] = {}
        self.sub: dict[str, list] = {}
        self.counts: dict[str, int] = {}
        self.probes: list = []  # called before printing: fill sub entries measured elsewhere
        self._undo: list = []
        self._model = None

    def attach(self, model) -> "StageTimers":
        top, pc = self.top, time.perf_counter

        def timer(stage, m):
            t0 = pc()
            try:
                stage.run(m)
            finally:
                acc = top.setdefault(stage.name, [0, 0.0])
                acc[0] += 1
                acc[1] += pc() - t0

        model.stage_timer = timer
        self._model = model
        return self

    def wrap_sub(self, owner, attr: str, label: str, count=None, count_label=None) -> None:
        """Inclusive timer on the public method ``owner.attr`` (an instance's; AttributeError
        if it is gone); ``count(args, kwargs, result)`` (an int, or a (label, int) pair) is
        accumulated in counts[count_label]."""
        orig = getattr(owner, attr)
        acc = self.sub.setdefault(label, [0, 0.0])
        pc = time.perf_counter
        if count is not None:
            self.counts.setdefault(count_label, 0)

        def timed(*a, **k):
            t0 = pc()
            r = None
            try:
                r = orig(*a, **k)
                return r
            finally:
                acc[0] += 1
                acc[1] += pc() - t0
                if count is not None:
                    c = count(a, k, r)
                    key, c = c if isinstance(c, tuple) else (count_label, c)
                    self.counts[key] = self.counts.get(key, 0) + int(c)

        setattr(owner, attr, timed)
        self._undo.append((owner, attr))

    def seconds(self, names) -> float:
        """Seconds spent in the stages ``names``."""
        return sum(self.top.get(name, [0, 0.0])[1] for name in names)

    def restore(self) -> None:
        for owner, attr in reversed(self._undo):
            delattr(owner, attr)  # the instance attribute: the class's method shows again
        self._undo.clear()
        if self._model is not None:
            self._model.stage_timer = None


def _moved(a, k, r):
    """Agents moved to a new cell, from mirror.moved(kind, rows, old, new)'s arguments."""
    return f"mesa_moves:{a[0]}", len(a[1])


def instrument(model, detail: bool = True) -> StageTimers:
    """Timers on the stages of ``model.step()`` and (``detail``) on its public hot methods."""
    t = StageTimers().attach(model)
    if not detail:
        return t
    t.wrap_sub(model.fields.oxygen_solver, "outcome", OXYGEN_SOLVES,
               count=lambda a, k, r: r.cycles, count_label="oxygen_cycles")
    t0 = sum(model.fields.thread_seconds)  # the compiled solves' wall time on every thread

    def thread_time():
        t.sub[FIELD_THREADS] = [t.sub.get(OXYGEN_SOLVES, [0])[0],
                                sum(model.fields.thread_seconds) - t0]
    t.probes.append(thread_time)
    t.wrap_sub(model, "behaviour", "agents: Hill rules (model.behaviour)")
    if model.mesa_built:  # (reading model.mirror would build it)
        t.wrap_sub(model.mirror, "sync", "agents: Mesa cells follow the arrays (mirror.sync)")
        t.wrap_sub(model.mirror, "moved", "  of which cell moves (mirror.moved)",
                   count=_moved, count_label="mesa_moves")
    t.wrap_sub(model, "spawn", "agents: new agents (model.spawn)",
               count=lambda a, k, r: len(a[1]), count_label="spawned")
    t.wrap_sub(model, "discard", "agents: removals (model.discard)",
               count=lambda a, k, r: np.atleast_1d(a[1]).size, count_label="discarded")
    return t


class StepLog:
    """Per-step wall time and agents alive at the start of each step, by type."""

    def __init__(self, kinds):
        self.kinds = list(kinds)
        self.dt: list[float] = []
        self.n: list[list[int]] = []

    def run(self, model, n_steps: int, progress: str = "", every: int = 240) -> float:
        pops = model.populations
        pc = time.perf_counter
        t_start = pc()
        for i in range(n_steps):
            self.n.append([pops[k].n for k in self.kinds])
            t0 = pc()
            model.step()
            self.dt.append(pc() - t0)
            if progress and (i + 1) % every == 0:
                done = i + 1
                el = pc() - t_start
                say(f"{progress}: {done}/{n_steps} steps, {el / done * 1e3:.1f} ms/step, "
                    f"{sum(self.n[-1])} agents, ETA {el / done * (n_steps - done):.0f} s")
        return pc() - t_start

    @property
    def steps(self) -> int:
        return len(self.dt)

    @property
    def wall(self) -> float:
        return float(np.sum(self.dt))

    @property
    def updates(self) -> int:
        return int(np.sum(self.n)) if self.n else 0

    def updates_by_kind(self) -> dict[str, int]:
        arr = np.asarray(self.n)
        return {k: int(arr[:, j].sum()) for j, k in enumerate(self.kinds)}

    def mean_agents(self) -> float:
        return self.updates / max(self.steps, 1)


def print_stages(timers: StageTimers, log: StepLog) -> None:
    for probe in timers.probes:
        probe()
    n = log.steps
    total = log.wall
    rows = []
    accounted = 0.0
    for label, (calls, s) in sorted(timers.top.items(), key=lambda kv: -kv[1][1]):
        accounted += s
        rows.append([label, f"{s / n * 1e3:.3f}", f"{100 * s / total:.1f}", f"{calls / n:.2f}"])
    rest = total - accounted
    rows.append(["rest of step() (Mesa step wrapper, glue)", f"{rest / n * 1e3:.3f}",
                 f"{100 * rest / total:.1f}", ""])
    rows.append(["TOTAL step", f"{total / n * 1e3:.3f}", "100.0", ""])
    if timers.sub:
        rows.append(["of which (inclusive, across stages):", "", "", ""])
        for label, (calls, s) in sorted(timers.sub.items(), key=lambda kv: -kv[1][1]):
            if calls:
                rows.append(["  " + label, f"{s / n * 1e3:.3f}", f"{100 * s / total:.1f}",
                             f"{calls / n:.2f}"])
    table(["stage", "ms/step", "% step", "calls/step"], rows)
    c = timers.counts
    if c:
        parts = []
        moves = {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("mesa_moves:")}
        if moves:
            parts.append(f"Mesa agents moved to a new cell: {sum(moves.values()) / n:.1f}/step ("
                         + ", ".join(f"{k} {v / n:.1f}" for k, v in moves.items()) + ")")
        if "spawned" in c:
            parts.append(f"created: {c['spawned'] / n:.2f}/step")
        if "discarded" in c:
            parts.append(f"removed: {c['discarded'] / n:.2f}/step")
        solves = timers.sub.get(OXYGEN_SOLVES, [0])[0]
        if c.get("oxygen_cycles") and solves:
            parts.append(f"oxygen V-cycles per solve: {c['oxygen_cycles'] / solves:.2f}")
        print("  " + "; ".join(parts))


def short_path(path: str) -> str:
    for prefix in ("site-packages/", str(ROOT) + "/"):
        if prefix in path:
            return path.split(prefix, 1)[1]
    return path


def profile_steps(model, n: int) -> cProfile.Profile:
    """cProfile of ``n`` further model steps."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        model.step()
    prof.disable()
    return prof


def print_profile(prof: cProfile.Profile, n_steps: int, top: int = 15) -> None:
    st = pstats.Stats(prof)
    entries = []
    groups: dict[str, float] = {}
    total_tt = 0.0
    for (file, line, func), (cc, nc, tt, ct, _callers) in st.stats.items():
        total_tt += tt
        entries.append((tt, ct, nc, file, line, func))
        if file == "~":
            g = "builtins (numpy, list, dict methods)"
        elif "/mesa/" in file:
            g = "mesa"
        elif str(ROOT) in file:
            rel = short_path(file)
            g = rel.rsplit(".", 1)[0].replace("/", ".")
        else:
            g = "other libraries (numba dispatch, pandas, ...)"
        groups[g] = groups.get(g, 0.0) + tt
    entries.sort(reverse=True)
    rows = []
    for tt, ct, nc, file, line, func in entries[:top]:
        where = func if file == "~" else f"{short_path(file)}:{line}({func})"
        rows.append([where[:88], f"{tt / n_steps * 1e3:.3f}", f"{ct / n_steps * 1e3:.3f}",
                     f"{nc / n_steps:.1f}"])
    print(f"  cProfile over {n_steps} steps (profiler overhead inflates Python-heavy code;"
          " numba kernel time is counted as own time of the Python function that calls it):")
    table(["function (top by own time)", "own ms/step", "cum ms/step", "calls/step"], rows)
    print("  own time grouped by where the code lives:")
    grows = [[g, f"{s / n_steps * 1e3:.3f}", f"{100 * s / total_tt:.1f}"]
             for g, s in sorted(groups.items(), key=lambda kv: -kv[1])[:12]]
    table(["code", "ms/step", "%"], grows)


def by_day_table(log: StepLog, steps_per_day: float, rows_wanted: int = 7) -> None:
    n = log.steps
    arr = np.asarray(log.n)
    dt = np.asarray(log.dt)
    edges = np.linspace(0, n, min(rows_wanted, n) + 1).astype(int)
    rows = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        per = arr[a:b].mean(axis=0)
        tot = arr[a:b].sum(axis=1)
        rows.append([f"{a / steps_per_day:5.2f}-{b / steps_per_day:5.2f}",
                     *[f"{x:.0f}" for x in per], f"{tot.mean():.0f}",
                     f"{dt[a:b].mean() * 1e3:.2f}", f"{np.median(dt[a:b]) * 1e3:.2f}",
                     f"{dt[a:b].sum() / tot.sum() * 1e6:.3f}"])
    table(["days", *log.kinds, "total", "ms/step", "median", "us/agent-step"], rows)


# ---------------------------------------------------------------------------- section 1
def bench_default(args, load_params, run_one, NeutroModel):
    section("1. Default grid: 200x200, default parameters, seed "
            f"{SEED}" + (" (--quick: 3 days instead of 21)" if args.quick else ""))
    params = load_params()
    days = 3.0 if args.quick else float(params.time.days)
    la0 = loadavg()
    say(f"section 1: run_one({days:g} days)")
    cpu0 = time.process_time()
    res = run_one(params, SEED, days=days)
    cpu_run = time.process_time() - cpu0
    steps = int(res.meta.get("steps", round(days * 1440 / params.time.dt_min)))
    print(f"run_one(load_params(), {SEED}, days={days:g}): {steps} steps of "
          f"{params.time.dt_min:g} min, grid {params.domain.nx}x{params.domain.ny}")
    print(f"  wall {fmt_s(res.wall_s)} (CPU {cpu_run:.1f} s; includes model build, the first "
          f"step's JIT/cache load, recording and final state)")
    print(f"  {days / (res.wall_s / 60):.2f} simulated days per wall-clock minute "
          f"(21 days would take {fmt_s(res.wall_s * 21 / days)})")

    say("section 1: the same run stepped by hand with stage timers")
    t0 = time.perf_counter()
    model = NeutroModel(params, rng=SEED, mesa=MESA)
    build_s = time.perf_counter() - t0
    timers = instrument(model)
    log = StepLog(model.populations.keys())
    try:
        log.run(model, steps, progress="default grid", every=480)
    finally:
        timers.restore()
    ts = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    same = (len(ts) == len(res.timeseries)
            and bool((ts.iloc[-1].to_numpy() == res.timeseries.iloc[-1].to_numpy()).all()))
    ups = log.updates
    print(f"\nStepped by hand (NeutroModel(params, rng={SEED}, mesa={MESA!r}), "
          f"{log.steps} x model.step()): "
          f"same trajectory as run_one: {'yes' if same else 'NO (check determinism)'}")
    print(f"  build {build_s:.2f} s; steps {fmt_s(log.wall)}; first step {log.dt[0] * 1e3:.1f} ms;"
          f" median step {np.median(log.dt) * 1e3:.2f} ms")
    print(f"  run_one wall - (build + step loop here) = {res.wall_s - build_s - log.wall:+.2f} s "
          "(run_one also pays the first step's JIT/cache load and final_state; the rest is "
          "load jitter)")
    print(f"  agent-updates (agents alive at the start of each step, summed): {ups:,} "
          f"(mean {log.mean_agents():,.0f} agents/step)")
    by_kind = log.updates_by_kind()
    print("  share of agent-updates: " + ", ".join(
        f"{k} {100 * v / ups:.1f}%" for k, v in by_kind.items()))
    print(f"  agent-updates/s over the step loop: {fmt_rate(ups / log.wall)} "
          f"({log.wall / ups * 1e6:.3f} us per agent-update, fields and recording included)")
    print(f"  agent-updates/s over run_one's wall time (build included): "
          f"{fmt_rate(ups / res.wall_s)}")
    print("\nAgents and step cost through the run:")
    by_day_table(log, 1440.0 / params.time.dt_min)
    print("\nWhere the time goes per step (stage timers around the model's own functions):")
    print_stages(timers, log)
    agent_s = timers.seconds(AGENT_STAGES)
    fields_s = timers.seconds(FIELD_STAGES)

    n_prof = 60 if args.quick else 120
    say(f"section 1: cProfile of {n_prof} more steps")
    prof = profile_steps(model, n_prof)
    day_a = log.steps / (1440.0 / params.time.dt_min)
    print(f"\nProfile of a continuation, days {day_a:.2f}-"
          f"{day_a + n_prof * params.time.dt_min / 1440:.2f} "
          f"({sum(p.n for p in model.populations.values())} agents at its end):")
    print_profile(prof, n_prof)
    print(f"  load average at the end of section 1: {loadavg()} (at its start: {la0})")
    out = {
        "steps": log.steps, "mean_agents": log.mean_agents(), "updates": ups,
        "wall": log.wall, "rate": ups / log.wall, "agent_rate": ups / max(agent_s, 1e-12),
        "fields_s": fields_s, "agent_s": agent_s, "by_kind": by_kind,
        "moves_per_step": sum(v for k, v in timers.counts.items()
                              if k.startswith("mesa_moves:")) / log.steps,
        "run_one_wall": res.wall_s, "days": days,
        "growth": sum(log.n[-1]) / max(sum(log.n[0]), 1),
    }
    del model, res
    gc.collect()
    return out


def step_in_turn(models: dict, steps: int, chunk: int, after=None) -> dict:
    """Step each model of ``models`` (key -> model) ``steps`` times, in turn, ``chunk`` steps
    at a time, so the machine's other load weighs on all alike; returns key -> each step's
    wall time (s). ``after(key, step)`` runs after each step, outside its time."""
    wall = {k: np.zeros(steps) for k in models}
    pc = time.perf_counter
    for start in range(0, steps, chunk):
        for k, m in models.items():
            for i in range(start, min(start + chunk, steps)):
                t0 = pc()
                m.step()
                wall[k][i] = pc() - t0
                if after is not None:
                    after(k, i)
    return wall


# --------------------------------------------------------------------------- section 1b
def threads_section(title) -> int | None:
    """Print the heading ``title(n)`` of a section comparing 1 thread with the n threads
    of the default setting; n, or None (said so) when only one thread is available."""
    from sim.config.threads import field_threads

    n = field_threads()
    section(title(n))
    if n == 1:
        print("  one thread available (NUMBA_NUM_THREADS or the cores): nothing to compare")
        return None
    return n


def bench_threads(args, load_params, NeutroModel):
    """The same run stepped with the fields on one thread and on all the default's threads
    (fixed), in alternating chunks of steps (same machine state for both); results must be
    identical."""
    n = threads_section(lambda n: f"1b. Fields of a step on 1 thread vs {n} "
                                  "(NeutroModel(threads=...)), default grid")
    if n is None:
        return None
    params = load_params()
    days = 3.0 if args.quick else 12.0
    spd = 1440.0 / params.time.dt_min
    steps, chunk = int(round(days * spd)), 60
    models = {k: NeutroModel(params, rng=SEED, threads=k, mesa=MESA) for k in (1, n)}
    fields = {k: np.zeros(steps) for k in models}
    timers = {k: StageTimers().attach(m) for k, m in models.items()}
    seen = {k: 0.0 for k in models}

    def field_time(k, i):
        total = timers[k].seconds(FIELD_STAGES)
        fields[k][i], seen[k] = total - seen[k], total

    say(f"section 1b: {days:g} days, threads 1 and {n} in alternating chunks of {chunk} steps")
    wall = step_in_turn(models, steps, chunk, after=field_time)
    a, b = models[1], models[n]
    same = (all(np.array_equal(a.fields[f], b.fields[f]) for f in a.fields)
            and a.datacollector.get_model_vars_dataframe().equals(
                b.datacollector.get_model_vars_dataframe()))
    last = slice(2 * steps // 3, steps)
    rows = []
    for k in models:
        w, f = wall[k][last].mean() * 1e3, fields[k][last].mean() * 1e3
        rows.append([f"{k}", f"{w:.3f}", f"{f:.3f}", f"{w - f:.3f}", f"{wall[k].sum():.2f} s"])
    print(f"  {steps} steps ({days:g} days) each; ms per step over the last third "
          f"(days {days / 3 * 2:g}-{days:g}), {chunk}-step chunks alternating:")
    table(["threads", "step", "fields", "rest of step", "all steps"], rows)
    ratio = wall[1][last].sum() / wall[n][last].sum()
    print(f"  speed-up of the whole step with {n} threads: {ratio:.2f}x (fields alone "
          f"{fields[1][last].sum() / fields[n][last].sum():.2f}x); identical results: "
          f"{'yes' if same else 'NO'}")
    print("  (\"fields\": what the caller spends on them; with threads and source_lag_steps = 1\n"
          "   the solves run on a helper while the cells act, so the cells share the memory\n"
          "   system and read fields written on the other core)")
    del models
    gc.collect()
    return ratio


# --------------------------------------------------------------------------- section 1d
def bench_under_load(args, load_params, NeutroModel):
    """The default run with COMPETITORS CPU-bound processes holding the cores: the
    default thread setting (chosen by timing, :class:`sim.fields.threads.ThreadChooser`),
    one thread and all threads fixed, in alternating chunks; the default must not be slower
    than one thread."""
    import subprocess

    n = threads_section(lambda n: f"1d. Under load: {COMPETITORS} CPU-bound processes "
                                  f"competing; default threads vs 1 vs {n} fixed, default grid")
    if n is None:
        return None
    params = load_params()
    days = 1.5 if args.quick else 6.0
    spd = 1440.0 / params.time.dt_min
    warm, steps, chunk = int(round(6.0 * spd)), int(round(days * spd)), 60
    models = {"default": NeutroModel(params, rng=SEED, mesa=MESA),
              "1": NeutroModel(params, rng=SEED, threads=1, mesa=MESA),
              f"{n}": NeutroModel(params, rng=SEED, threads=n, mesa=MESA)}
    say(f"section 1d: {warm} quiet steps each to day 6 (the tumor as in section 1 there)")
    for m in models.values():
        for _ in range(warm):
            m.step()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(COMPETITORS)]
    try:
        time.sleep(1.0)
        la0 = loadavg()
        say(f"section 1d: {days:g} days each under load, {chunk}-step chunks alternating")
        wall = step_in_turn(models, steps, chunk)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    chooser = models["default"].fields.chooser
    dfs = [m.datacollector.get_model_vars_dataframe() for m in models.values()]
    same = all(d.equals(dfs[0]) for d in dfs[1:])
    rows = [[k, f"{wall[k].mean() * 1e3:.3f}", f"{np.median(wall[k]) * 1e3:.3f}",
             f"{wall[k].sum():.2f} s"] for k in models]
    print(f"  {steps} steps (days 6-{6 + days:g}) each, load average {la0} at the start:")
    table(["threads", "ms/step", "median", "all steps"], rows)
    ratio = wall["1"].sum() / wall["default"].sum()
    fixed = wall["1"].sum() / wall[f"{n}"].sum()
    print(f"  default vs one thread: {ratio:.2f}x as fast -> goal >= 1.00x (never slower): "
          f"{'met' if ratio >= 1.0 else 'NOT met'}; {n} threads fixed vs one: {fixed:.2f}x")
    if chooser is not None:
        print(f"  the default's steps by setting: {chooser.steps_on} over the whole run "
              f"(its last choice: {chooser.chosen}); identical results: "
              f"{'yes' if same else 'NO'}")
    del models
    gc.collect()
    return ratio


# --------------------------------------------------------------------------- section 1c
def bench_sync(args, load_params, NeutroModel):
    """The default run with the Mesa side built at t=0 and following the arrays after every
    step (``mesa="eager"``) and never built (``"lazy"``, never read: run_one and the
    ensembles), in alternating chunks of steps; results must be identical."""
    section("1c. Mesa grid and agents built and synced after every step vs never built "
            "(NeutroModel(mesa=...)), default grid")
    params = load_params()
    days = 3.0 if args.quick else 12.0
    spd = 1440.0 / params.time.dt_min
    steps, chunk = int(round(days * spd)), 60
    models = {k: NeutroModel(params, rng=SEED, mesa=k) for k in ("eager", "lazy")}
    say(f"section 1c: {days:g} days, mesa 'eager' and 'lazy' in alternating chunks")
    wall = step_in_turn(models, steps, chunk)
    a, b = models.values()
    same = a.datacollector.get_model_vars_dataframe().equals(
        b.datacollector.get_model_vars_dataframe())
    last = slice(2 * steps // 3, steps)
    rows = [[k, f"{wall[k][last].mean() * 1e3:.3f}", f"{np.median(wall[k][last]) * 1e3:.3f}",
             f"{wall[k].sum():.2f} s"] for k in models]
    print(f"  {steps} steps ({days:g} days) each; ms per step over the last third "
          f"(days {days / 3 * 2:g}-{days:g}), {chunk}-step chunks alternating:")
    table(["mesa", "step", "median", "all steps"], rows)
    ratio = wall["eager"][last].sum() / wall["lazy"][last].sum()
    print(f"  a step without the Mesa side is {ratio:.2f}x as fast; identical results: "
          f"{'yes' if same else 'NO'}")
    del models
    gc.collect()
    return ratio


# ---------------------------------------------------------------------------- section 2
def bench_large(args, ref, load_params, NeutroModel):
    params = load_params(overrides=LARGE_OVERRIDES)
    full_days = float(params.time.days)
    spd = 1440.0 / params.time.dt_min
    total_steps = int(round(full_days * spd))
    section(f"2. Large tissue: {params.domain.nx}x{params.domain.ny} voxels "
            f"({params.domain.nx * params.domain.voxel_um / 1000:g} mm window), initial tumor "
            f"radius {params.initial.tumor_radius_um:g} um, otherwise default; seed {SEED}")
    la0 = loadavg()
    say("section 2: building the large model")
    t0 = time.perf_counter()
    model = NeutroModel(params, rng=SEED, mesa=MESA)
    build_s = time.perf_counter() - t0
    n0 = {k: p.n for k, p in model.populations.items()}
    print(f"  build {build_s:.1f} s (Mesa grid of {params.domain.nx * params.domain.ny:,} cells, "
          f"{sum(n0.values()):,} agents, {params.time.warmup_steps} field warm-up steps); "
          f"peak RSS so far {peak_rss_mib():.0f} MiB")
    print("  agents at t=0: " + ", ".join(f"{k} {v:,}" for k, v in n0.items()))
    timers = instrument(model)
    log = StepLog(model.populations.keys())
    try:
        if args.quick:
            span_days = 0.5
            log.run(model, int(round(span_days * spd)), progress="large (quick)", every=30)
        else:
            probe = int(round(0.25 * spd))
            log.run(model, probe, progress="large probe", every=30)
            proj_min = (build_s + log.wall / probe * total_steps) / 60
            if args.large_days is not None:
                span_days = min(args.large_days, full_days)
            elif proj_min <= LARGE_FULL_LIMIT_MIN:
                span_days = full_days
            else:
                span_days = LARGE_SHORT_DAYS
            print(f"  probe: {probe} steps at {log.wall / probe * 1e3:.0f} ms/step -> 21 days "
                  f"projected at {proj_min:.1f} min; running {span_days:g} days")
            more = int(round(span_days * spd)) - probe
            if more > 0:
                log.run(model, more, progress="large", every=120)
    finally:
        timers.restore()
    done = log.steps
    sim_days = done / spd
    ups = log.updates
    wall = build_s + log.wall
    full = done >= total_steps
    print(f"  ran {done} steps = {sim_days:g} simulated days"
          + ("" if full else f" of {full_days:g} (NOT the full run: extrapolated below)"))
    print(f"  steps {fmt_s(log.wall)} ({np.mean(log.dt) * 1e3:.1f} ms/step mean, "
          f"{np.median(log.dt) * 1e3:.1f} median); first step {log.dt[0] * 1e3:.0f} ms")
    print(f"  {sim_days / (log.wall / 60):.2f} simulated days per wall-clock minute (steps only); "
          f"{sim_days / (wall / 60):.2f} with the build")
    print(f"  agent-updates: {ups:,} (mean {log.mean_agents():,.0f} agents/step); "
          f"agent-updates/s {fmt_rate(ups / log.wall)} "
          f"({log.wall / ups * 1e6:.3f} us per agent-update)")
    n1 = {k: p.n for k, p in model.populations.items()}
    print("  agents at the end: " + ", ".join(f"{k} {v:,}" for k, v in n1.items())
          + f" (total x{sum(n1.values()) / sum(n0.values()):.2f} since t=0)")
    if full:
        est = wall
        print(f"  21-day wall time (build + steps, measured): {fmt_s(est)}")
    else:
        est = build_s + log.wall / done * total_steps
        print(f"  21-day wall time EXTRAPOLATED linearly in steps from {sim_days:g} days: "
              f"{fmt_s(est)} (build {build_s:.0f} s + {total_steps} steps at the measured mean "
              f"{log.wall / done * 1e3:.0f} ms/step)")
        print(f"  caveat: agents grow during the run (on the default grid the total grew "
              f"x{ref['growth']:.1f} in {ref['days']:g} days), so the cost per step rises later "
              "in the run; treat this as a lower bound")
    verdict = "meets" if est <= GOAL_LARGE_MIN * 60 else "MISSES"
    print(f"  goal < {GOAL_LARGE_MIN:g} min for 21 days: {verdict} ({est / 60:.1f} min)")
    step_ms = log.wall / done * 1e3
    if model.fields.chooser is not None:
        print(f"  steps by field threads (default setting): {model.fields.chooser.steps_on}")
    peak_mb = peak_rss_mib() * 1.048576
    for what, value, goal, unit in (("build", build_s, GOAL_LARGE_BUILD_S, "s"),
                                    ("mean step (default threads)", step_ms, GOAL_LARGE_STEP_MS,
                                     "ms"),
                                    ("peak RSS of the process", peak_mb, GOAL_LARGE_MEMORY_MB,
                                     "MB")):
        print(f"  goal {what} < {goal:g} {unit}: {'met' if value < goal else 'NOT met'} "
              f"({value:.1f} {unit})")
    print("\nAgents and step cost through the run:")
    by_day_table(log, spd)
    print("\nWhere the time goes per step:")
    print_stages(timers, log)
    n_prof = 10 if args.quick else 20
    say(f"section 2: cProfile of {n_prof} more steps")
    prof = profile_steps(model, n_prof)
    print(f"\nProfile of {n_prof} more steps after day {sim_days:g}:")
    print_profile(prof, n_prof, top=12)
    print(f"  peak RSS of the process: {peak_rss_mib():.0f} MiB")
    print(f"  load average at the end of section 2: {loadavg()} (at its start: {la0})")
    out = {"shape": (params.domain.nx, params.domain.ny), "mean_agents": log.mean_agents(),
           "steps": done, "updates": ups, "wall": log.wall, "rate": ups / log.wall}
    del model, timers
    gc.collect()  # a million Mesa cells: free them before the next sections
    return out


# ---------------------------------------------------------------------------- section 3
def bench_scaling(args, load_params, NeutroModel):
    warm = 20 if args.quick else 60
    days = 1.0 if args.quick else 2.0
    section("3. Cost against the number of agents: default 200x200 grid, initial tumor radius "
            f"varied; {warm} warm-up steps, then {days:g} model days each; seed {SEED}")
    la0 = loadavg()
    rows = []
    pts = []
    for radius in SCALING_RADII_UM:
        say(f"section 3: radius {radius:g} um")
        params = load_params(overrides={"initial.tumor_radius_um": radius})
        spd = 1440.0 / params.time.dt_min
        model = NeutroModel(params, rng=SEED, mesa=MESA)
        for _ in range(warm):
            model.step()
        timers = instrument(model, detail=False)
        log = StepLog(model.populations.keys())
        try:
            log.run(model, int(round(days * spd)))
        finally:
            timers.restore()
        n = log.steps
        fields_s = timers.seconds(FIELD_STAGES)
        agent_s = timers.seconds(AGENT_STAGES)
        other_s = log.wall - fields_s - agent_s
        ups = log.updates
        pts.append((log.mean_agents(), agent_s / n, log.wall / n))
        rows.append([f"{radius:g}", f"{log.mean_agents():,.0f}", f"{log.wall / n * 1e3:.2f}",
                     f"{np.median(log.dt) * 1e3:.2f}",
                     f"{fields_s / n * 1e3:.2f}", f"{agent_s / n * 1e3:.2f}",
                     f"{other_s / n * 1e3:.2f}", f"{log.wall / ups * 1e6:.3f}",
                     f"{agent_s / ups * 1e6:.3f}"])
        del model, timers
        gc.collect()
    print("  ms/step: mean over the window = fields (begin + end) + agent stages (vessels, "
          "tumor and immune cells)\n  + other (treatment, recording every 60 steps, glue); "
          "median: of the per-step times (less\n  sensitive to other jobs on the machine)")
    table(["radius um", "agents", "ms/step", "median", "fields", "agents", "other",
           "us/agent-step", "agent stages us/agent-step"], rows)
    a = np.log([p[0] for p in pts])
    for label, j in (("agent stages", 1), ("whole step", 2)):
        slope = np.polyfit(a, np.log([p[j] for p in pts]), 1)[0]
        print(f"  log-log slope of {label} time per step against agents: {slope:.2f} "
              f"({'no worse than linear' if slope <= 1.05 else 'WORSE than linear'})")
    per = [p[1] / p[0] * 1e6 for p in pts]
    print(f"  agent-stage cost per agent-step from {pts[0][0]:,.0f} to {pts[-1][0]:,.0f} agents: "
          + " -> ".join(f"{x:.3f}" for x in per) + " us")
    print(f"  load average at the end of section 3: {loadavg()} (at its start: {la0})")


# ---------------------------------------------------------------------------- section 4
# Hill rules copied from params/rules.csv (neutrophil rows) and params/default.toml:
#   chemoattractant increases chemotaxis_bias: base 0.3, saturation 0.85, half-max 1, power 2
#   tumor_signal increases activation:         base 0,   saturation 0.02/min, half-max 3, power 2
BIAS_BASE, BIAS_MAX, BIAS_HALF, BIAS_POW = 0.3, 0.85, 1.0, 2.0
ACT_BASE, ACT_MAX, ACT_HALF, ACT_POW = 0.0, 0.02, 3.0, 2.0
DEACT_PER_MIN = 0.00035
DT_MIN = 6.0


def make_baseline(n_agents: int, shape, mobile_fraction: float = 1.0, seed: int = BASELINE_SEED):
    """An idiomatic Mesa 3.5 model: CellAgents on an OrthogonalMooreGrid with property layers."""
    from mesa import Model
    from mesa.discrete_space import CellAgent, OrthogonalMooreGrid

    class Walker(CellAgent):
        """Senses two property layers, evaluates two Hill rules, takes a biased walk step."""

        def __init__(self, model, cell, mobile):
            super().__init__(model)
            self.cell = cell
            self.mobile = mobile
            self.active = False

        def step(self):
            cell = self.cell
            # rule 1: chemotactic bias from the chemoattractant at the agent's voxel
            x = (cell.chemoattractant / BIAS_HALF) ** BIAS_POW
            bias = BIAS_BASE + (BIAS_MAX - BIAS_BASE) * (x / (1.0 + x))
            # rule 2: activation rate from the tumor signal; stochastic state switch
            y = (cell.tumor_signal / ACT_HALF) ** ACT_POW
            rate = ACT_BASE + (ACT_MAX - ACT_BASE) * (y / (1.0 + y))
            if self.active:
                rate = DEACT_PER_MIN
            if self.random.random() < -math.expm1(-rate * DT_MIN):
                self.active = not self.active
            if not self.mobile:
                return
            # biased random walk over the empty Moore neighbours
            empties = cell.neighborhood.select(lambda c: c.is_empty)
            if len(empties):
                if self.random.random() < bias:
                    self.cell = max(empties.cells, key=lambda c: c.chemoattractant)
                else:
                    self.cell = empties.select_random_cell()
                self.model.moves += 1

    class Baseline(Model):
        def __init__(self, n, rng=None):
            super().__init__(rng=rng)
            self.moves = 0
            self.grid = OrthogonalMooreGrid(tuple(shape), torus=False, capacity=1,
                                            random=self.random)
            chemo = self.grid.create_property_layer("chemoattractant", default_value=0.0,
                                                    dtype=float)
            signal = self.grid.create_property_layer("tumor_signal", default_value=0.0,
                                                     dtype=float)
            chemo.data[:] = 2.0 * self.rng.random(shape)  # around the Hill half-max
            signal.data[:] = 6.0 * self.rng.random(shape)
            cells = self.random.sample(self.grid.all_cells.cells, n)
            n_mobile = int(round(mobile_fraction * n))
            for i, c in enumerate(cells):
                Walker(self, c, i < n_mobile)

        def step(self):
            self.agents.shuffle_do("step")

    return Baseline(n_agents, rng=seed)


def time_baseline(n_agents: int, steps: int, shape, mobile_fraction: float, label: str):
    t0 = time.perf_counter()
    m = make_baseline(n_agents, shape, mobile_fraction)
    build = time.perf_counter() - t0
    dts = []
    every = max(steps // 10, 1)
    t_start = time.perf_counter()
    for i in range(steps):
        t0 = time.perf_counter()
        m.step()
        dts.append(time.perf_counter() - t0)
        if (i + 1) % every == 0:
            el = time.perf_counter() - t_start
            say(f"{label}: {i + 1}/{steps} steps, ETA {el / (i + 1) * (steps - i - 1):.0f} s")
    dts = np.asarray(dts)
    out = {"build": build, "wall": float(dts.sum()), "first": float(dts[0]),
           "median": float(np.median(dts)), "moves": m.moves / steps,
           "updates": n_agents * steps}
    half = steps // 2
    if half:
        out["rate_halves"] = (n_agents * half / dts[:half].sum(),
                              n_agents * (steps - half) / dts[half:].sum())
    del m
    gc.collect()
    return out


def bench_baseline(args, ref, load_params, NeutroModel):
    """Section 4: neutrosim's default run and the two baselines stepped in turn (a chunk of
    CHUNK neutrosim steps, then one step of baseline A and one of B), so that whatever
    else the machine does in a stretch of time weighs on all three alike."""
    params = load_params()
    shape = (params.domain.nx, params.domain.ny)
    n_agents = int(round(ref["mean_agents"]))
    n_steps = ref["steps"]
    mobile_kinds = ("neutrophils", "macrophages")
    mobile_frac = sum(ref["by_kind"].get(k, 0) for k in mobile_kinds) / ref["updates"]
    chunks = [(i, min(i + CHUNK, n_steps)) for i in range(0, n_steps, CHUNK)]
    section(f"4. Idiomatic Mesa baseline vs neutrosim: {shape[0]}x{shape[1]} grid, "
            f"{n_agents:,} agents (the section-1 mean); neutrosim's {n_steps} steps in chunks "
            f"of {CHUNK}, each followed by one step of baseline A and one of B")
    la0 = loadavg()
    say("section 4: building the baselines and taking their first (cache-building) steps")
    base = {}
    for name, frac in (("A", 1.0), ("B", mobile_frac)):
        t0 = time.perf_counter()
        bm = make_baseline(n_agents, shape, frac)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        bm.step()  # builds Mesa's neighbourhood caches: not in the rate
        base[name] = {"model": bm, "build": build, "first": time.perf_counter() - t0,
                      "dts": [], "moves0": bm.moves}
    from sim.config.threads import field_threads

    n = field_threads()
    models = {"default": NeutroModel(params, rng=SEED, mesa=MESA)}
    if n > 1:  # the goals' settings, fixed (section 1 ran the default)
        models.update({"1": NeutroModel(params, rng=SEED, threads=1, mesa=MESA),
                       f"{n}": NeutroModel(params, rng=SEED, threads=n, mesa=MESA)})
    ups = {k: 0 for k in models}
    walls = {k: 0.0 for k in models}
    pc = time.perf_counter
    say(f"section 4: {len(chunks)} chunks")
    for k, (a, b) in enumerate(chunks):
        for key, model in models.items():
            pops = model.populations
            for _ in range(a, b):
                ups[key] += sum(p.n for p in pops.values())
                t0 = pc()
                model.step()
                walls[key] += pc() - t0
        for r in base.values():
            t0 = pc()
            r["model"].step()
            r["dts"].append(pc() - t0)
        if (k + 1) % 21 == 0:
            say(f"section 4: chunk {k + 1}/{len(chunks)}")
    updates, wall = ups["default"], walls["default"]
    rates = {key: ups[key] / walls[key] for key in models}
    chooser = models["default"].fields.chooser
    steps_on = None if chooser is None else dict(chooser.steps_on)
    rate = updates / wall
    same = updates == ref["updates"]
    for r in base.values():
        dts = np.asarray(r["dts"])
        r.update(wall=float(dts.sum()), median=float(np.median(dts)), steps=dts.size,
                 updates=n_agents * dts.size, moves=(r["model"].moves - r["moves0"]) / dts.size)
        r["rate"] = r["updates"] / r["wall"]
        half = dts.size // 2
        r["rate_halves"] = (n_agents * half / dts[:half].sum(),
                            n_agents * (dts.size - half) / dts[half:].sum())
        del r["model"]
    del models
    gc.collect()
    a, b = base["A"], base["B"]
    print("What one agent-update is:")
    print("  neutrosim: one agent of one type through one NeutroModel.step() (6 simulated min),\n"
          "    vectorised per type over numpy arrays + numba kernels: every agent senses its fields\n"
          "    and neighbour counts and evaluates its Hill rules (PhysiCell grammar) for each of\n"
          "    its behaviours; tumor cells update their oxygen state, may die (necrosis,\n"
          "    apoptosis), secrete, migrate (rarely), enter the cycle and divide into free space;\n"
          "    neutrophils die, bind/unbind/activate, kill, secrete, crawl up to 3 voxels/step up\n"
          "    the chemokine and are recruited at perfused vessels; macrophages die, switch\n"
          "    state, secrete, walk ~0.3 voxels/step and are recruited; vessels regress, supply\n"
          "    oxygen, sprout, extend tips and connect. The Mesa grid and agents are built only\n"
          f"    when read (mesa={MESA!r}), and run_one and the ensembles never read them (section\n"
          "    1c: built at t=0 and synced after every step). The step also\n"
          "    diffuses 5 fields (multigrid oxygen + 4 LOD fields on 40,000 voxels) and records\n"
          "    every 60 steps: that time IS included in neutrosim's rate.")
    print("  baseline A (the brief's): every agent, in a Python step() called by\n"
          "    model.agents.shuffle_do('step'): reads 2 property layers at its cell, evaluates\n"
          "    2 Hill rules (chemotactic bias; activation rate -> stochastic state switch), then\n"
          "    cell.neighborhood.select(lambda c: c.is_empty) and moves to the empty neighbour\n"
          "    with the highest chemoattractant (probability = bias) or to\n"
          "    empties.select_random_cell(). capacity=1, static random fields (no diffusion cost).")
    print(f"  baseline B (type-matched): the same, but only {mobile_frac:.1%} of the agents walk "
          "(the neutrophil +\n    macrophage share of neutrosim's agent-updates); the others "
          "only sense and run the 2 rules\n    (tumor cells and vessels barely move in neutrosim).")
    rows = [
        ["neutrosim (whole step: agents + fields + recording)", f"{updates:,}", fmt_s(wall),
         fmt_rate(rate), f"{1e6 / rate:.3f}", "1.0"],
        ["Mesa baseline A: all agents walk", f"{a['updates']:,}", fmt_s(a["wall"]),
         fmt_rate(a["rate"]), f"{1e6 / a['rate']:.3f}", f"{rate / a['rate']:.1f}"],
        [f"Mesa baseline B: {mobile_frac:.0%} walk (type-matched)", f"{b['updates']:,}",
         fmt_s(b["wall"]), fmt_rate(b["rate"]), f"{1e6 / b['rate']:.3f}",
         f"{rate / b['rate']:.1f}"],
    ]
    table(["", "agent-updates", "wall", "updates/s", "us/update", "neutrosim x"], rows)
    print(f"  neutrosim here follows section 1's trajectory: {'yes' if same else 'NO'}; "
          f"its rate in section 1 (not interleaved): {fmt_rate(ref['rate'])}")
    for name, r in base.items():
        h = r["rate_halves"]
        print(f"  baseline {name}: build {r['build']:.2f} s and first step {r['first'] * 1e3:.0f} ms "
              f"(neighbourhood caches; neither timed), then {r['steps']} steps: median "
              f"{r['median'] * 1e3:.1f} ms, {r['moves']:.0f} moves/step; rate 1st/2nd half "
              f"{fmt_rate(h[0])}/{fmt_rate(h[1])}/s")
    ratio = rate / a["rate"]
    print(f"  neutrosim / idiomatic Mesa (A): {ratio:.1f}x -> goal >= {GOAL_RATIO:g}x "
          f"{'met' if ratio >= GOAL_RATIO else 'NOT met'}; type-matched (B): "
          f"{rate / b['rate']:.1f}x; agent stages alone vs A (section 1's agent share of "
          f"the step): {ratio * ref['agent_rate'] / ref['rate']:.1f}x")
    if steps_on is not None:
        print(f"  the default's steps by thread setting: {steps_on}")
    for key, goal in (("1", GOAL_ONE_THREAD), ("2", GOAL_TWO_THREADS)):
        if key in rates:
            r = rates[key] / a["rate"]
            print(f"  fields on {key} thread{'s' if key != '1' else ''} (fixed; stepped in the "
                  f"same chunks): {fmt_rate(rates[key])}/s, {r:.1f}x idiomatic Mesa -> goal "
                  f">= {goal:g}x {'met' if r >= goal else 'NOT met'}")
    if ref.get("sync_speedup"):
        print(f"  with the Mesa grid and agents built and synced every step (divided by 1c's "
              f"{ref['sync_speedup']:.2f}x): {ratio / ref['sync_speedup']:.1f}x")
    print(f"  load average at the end of section 4: {loadavg()} (at its start: {la0})")


def bench_baseline_large(args, large):
    """Baseline A at the large tissue's mean agent count on its 1000 x 1000 grid."""
    n_agents = int(round(large["mean_agents"]))
    steps = args.large_baseline_steps
    shape = large["shape"]
    section(f"4b. Idiomatic Mesa baseline A on the large tissue: {shape[0]}x{shape[1]} grid, "
            f"{n_agents:,} agents (the section-2 mean), {steps} steps")
    la0 = loadavg()
    say(f"section 4b: baseline A ({n_agents} walkers x {steps} steps)")
    a = time_baseline(n_agents, max(steps, 2), shape, 1.0, "baseline A (large)")
    # the first step builds Mesa's neighbourhood caches (seconds on a million cells); over a
    # few steps it would weigh far more than in section 4, so it is left out of the rate
    warm_wall = a["wall"] - a["first"]
    warm_updates = a["updates"] - n_agents
    rate_a = warm_updates / warm_wall
    rows = [
        ["neutrosim, large tissue (whole step)", f"{large['updates']:,}", fmt_s(large["wall"]),
         fmt_rate(large["rate"]), f"{1e6 / large['rate']:.3f}", "1.0"],
        ["Mesa baseline A: all agents walk (after its first step)", f"{warm_updates:,}",
         fmt_s(warm_wall), fmt_rate(rate_a), f"{1e6 / rate_a:.3f}",
         f"{large['rate'] / rate_a:.1f}"],
    ]
    table(["", "agent-updates", "wall", "updates/s", "us/update", "neutrosim x"], rows)
    halves = a.get("rate_halves")
    hs = f"; rate 1st/2nd half {fmt_rate(halves[0])}/{fmt_rate(halves[1])}/s" if halves else ""
    print(f"  baseline A: build {a['build']:.1f} s (not timed), first step "
          f"{a['first']:.1f} s (neighbourhood caches; not in the rate), median step "
          f"{a['median'] * 1e3:.0f} ms{hs}")
    print(f"  neutrosim / idiomatic Mesa (A) on the large tissue: "
          f"{large['rate'] / rate_a:.1f}x (goal >= {GOAL_RATIO:g}x; the default grid's ratio "
          "is in section 4)")
    print(f"  load average at the end of section 4b: {loadavg()} (at its start: {la0})")


# ---------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="3-day default run, 0.5-day large run (extrapolated), short scaling")
    ap.add_argument("--skip-large", action="store_true", help="skip the 1000x1000 tissue")
    ap.add_argument("--large-days", type=float, default=None,
                    help="simulate this many days of the large tissue (default: all 21 when "
                         f"projected under {LARGE_FULL_LIMIT_MIN:g} min, else "
                         f"{LARGE_SHORT_DAYS:g}, extrapolated)")
    ap.add_argument("--large-baseline-steps", type=int, default=12,
                    help="steps of the Mesa baseline on the large tissue (section 4b; its "
                         "per-step cost is stationary; default 12)")
    args = ap.parse_args()

    t_all = time.perf_counter()
    sim, load_params, run_one, NeutroModel = import_sim()
    import mesa
    import numba

    print("neutrosim whole-model benchmark" + (" (--quick)" if args.quick else "")
          + time.strftime(", %Y-%m-%d %H:%M:%S %Z"))
    print(f"CPU: {cpu_model()}; {os.cpu_count()} logical CPUs; load average at start "
          f"{loadavg()} (1, 5, 15 min)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, numba "
          f"{numba.__version__} (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}), "
          f"mesa {mesa.__version__}, scipy {version('scipy')}, pandas {version('pandas')}")
    try:
        from sim.runs.provenance import git_revision

        rev = git_revision()
    except Exception:  # noqa: BLE001
        rev = "unknown"
    print(f"checkout: {ROOT} at {rev}; seeds: neutrosim {SEED}, Mesa baseline {BASELINE_SEED}")
    from sim.config.threads import field_threads

    print("Times are wall-clock (time.perf_counter) on a shared machine. Agents run on one "
          f"thread; the fields of a step on {field_threads()} (NUMBA_NUM_THREADS, else "
          "the cores; section 1b compares 1 thread).")

    ref = bench_default(args, load_params, run_one, NeutroModel)
    ref["threads_speedup"] = bench_threads(args, load_params, NeutroModel)
    ref["sync_speedup"] = bench_sync(args, load_params, NeutroModel)
    bench_under_load(args, load_params, NeutroModel)
    large = None
    if args.skip_large:
        print("\n(2. large tissue skipped: --skip-large)")
    else:
        large = bench_large(args, ref, load_params, NeutroModel)
    bench_scaling(args, load_params, NeutroModel)
    bench_baseline(args, ref, load_params, NeutroModel)
    if large is not None:
        bench_baseline_large(args, large)
    print(f"\nTotal benchmark time {fmt_s(time.perf_counter() - t_all)}; load average at the end "
          f"{loadavg()}; peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
