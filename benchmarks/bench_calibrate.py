"""Memory and wall time of ``neutrosim calibrate`` on a large backed h5ad.

    python benchmarks/bench_calibrate.py                   # ~3 min on 2 cores, ~35 s of it generating
    python benchmarks/bench_calibrate.py --data-dir DIR    # the generated file cached in DIR
    python benchmarks/bench_calibrate.py --quick           # 20,000 cells x 5,000 genes (~30 s)

Goal: 100,000 cells x 20,000 genes calibrate within 4 GB of memory and 2 minutes.

0. Data (generated once, not timed as part of anything below; cached in ``--data-dir``,
   default a temporary folder removed at the end unless ``--keep``): an .h5ad of 100,000
   cells x 20,000 genes, X CSR of raw counts (whole numbers stored as float32, as most
   h5ad files hold them), about 2,000 non-zeros a cell, written chunk by chunk (the
   skeleton with obs and var by anndata, then X by ``anndata.io.write_elem`` of the first
   1,000 cells and ``anndata.io.sparse_dataset(...).append`` of each next 1,000; HDF5
   chunks of 24,415 values, as h5py chooses for this matrix written whole), so the
   generator holds one chunk at a time. obs: ``cell_type`` (5 labels, one per model type),
   ``stage`` (two labels, half the cells each), ``mouse`` (3 per stage), ``pic_pair`` (the
   tumor label for about 5% of neutrophils, else ""). var: every gene of
   params/calibration/programmes.toml and axes.toml at random columns, filler names for
   the rest. Filler genes are detected in a cell with a per-gene probability (Beta(0.3,
   2.7), mean 0.1) times a per-cell factor, with counts 1 + Poisson; the calibration genes
   are drawn as Poisson(library size x CP10K / 10^4) at the levels of the tests' synthetic
   data (tests/scrna_synth.py): 5 CP10K for a ligand in its senders and a receptor
   subunit in its receiver (ligands x2 to x8 at the advanced stage), 2 for a programme gene
   in its cell type, raised 8x in the cells in the programme's state (a fraction of the
   cells that differs between stages), 0.2 elsewhere; so every step of the derivation has
   something to find. A PIC-seq doublet is only labelled (its counts are a neutrophil's:
   doublets enter composition and the bound fraction only).
1. The command ``python -m sim calibrate DATA --mapping MAP.toml --out DIR --quiet`` (the
   same as ``neutrosim calibrate``), ``--repeats`` times (default 3), each in a fresh
   process: wall time (``time.perf_counter`` around the process) and the process's peak
   resident memory (``ru_maxrss`` as ``os.wait4`` returns it for that one child).
   Each run is followed by the reference:
2. the naive way a user would otherwise do it: ``anndata.read_h5ad(path)`` (whole, not
   backed), then ``X[:, genes]`` for the same genes and the library sizes
   ``X.sum(axis=1)``, in a fresh process, wall time and peak memory measured alike.
   Reported: the command's median and range, and **the command's figures over the
   reference's** (medians over the pairs). The reference reads and selects only; the
   command also derives, hashes the input and writes, so section 3 also compares the
   reading alone. Before the runs the file is read through once,
   so every run finds it in the page cache (the file is read from memory, not disk).
3. Where one command's time goes: the command once more, in a process that imports
   under ``python -X importtime`` what the command imports (numpy, pandas, scipy, h5py,
   anndata, scikit-learn, matplotlib, tqdm and the package), then liana's resource module
   (timed apart: the command imports it to check the pairs), then runs the command's own
   ``main()`` with timers wrapped around its functions (``read_counts`` and inside it the
   backed slices, the checks and the adding up; ``label_cells``, ``derive``, ``sha256``,
   ``calibrate_params``, ``check_pairs``, ``write_outputs`` and inside it the figures and
   the overlay's reload) in that process only (no file of the package is changed). The
   timers are exclusive (a nested timer's time is taken off its caller's), so the rows and
   the interpreter's start and teardown add up to the wall time; each row also gives the
   process's peak memory when the phase ended (liana's modules, about 0.1 GB, are loaded
   before the read here, after it in the command, so the read's peak shows that much
   higher here than in section 1).
4. Goal lines: the largest peak memory of the runs against 4 GB, the median wall time
   against 120 s; the machine (CPU, cores, load average at the start and the end), the
   library versions and the checkout's commit.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

from bench_command import _import_self_times  # noqa: E402  (this folder is on sys.path)

GOAL_GB = 4.0
GOAL_S = 120.0
FULL = (100_000, 20_000, 2_000)   # cells, genes, non-zeros a cell
QUICK = (20_000, 5_000, 500)
GEN_CHUNK = 1_000                 # cells drawn and appended at a time
#: HDF5 chunk of X's arrays: what h5py chooses for 200 M float32 values written whole (as by
#: AnnData.write_h5ad); appending would otherwise keep the smaller guess for the first chunk
HDF5_CHUNK = 24_415
SEED = 7
GENERATOR = "v1"                  # in the cached file's name: bump when the generator changes

LABELS = {"tumor": "Tumor epithelial", "neutrophil": "Neutrophils",
          "macrophage": "Macrophages", "endothelial": "Endothelial", "other": "Fibroblasts"}
TYPES = tuple(LABELS)
STAGES = {"early carcinoma": "early", "late carcinoma": "advanced"}
MICE = 3  # a stage
COMPOSITION = {"early": (0.50, 0.08, 0.17, 0.10, 0.15),
               "advanced": (0.45, 0.20, 0.15, 0.08, 0.12)}
SIZE = {"tumor": 1.3, "neutrophil": 0.5, "macrophage": 1.1, "endothelial": 1.0, "other": 1.0}
BOUND = {"early": 0.04, "advanced": 0.06}            # neutrophils labelled as PIC-seq doublets
LIGAND_FOLD = {"Cxcl1": 2.0, "Vegfa": 4.0, "Osm": 8.0}  # at the advanced stage
PROGRAMME_FRACTION = {"tumor_cycling": {"early": 0.30, "advanced": 0.15},
                      "neutrophil_activated": {"early": 0.10, "advanced": 0.45},
                      "macrophage_activated": {"early": 0.20, "advanced": 0.50}}
SIGNAL_CP10K, PROGRAMME_CP10K, LEAK_CP10K, RAISE = 5.0, 2.0, 0.2, 8.0

MAPPING = "\n".join([
    'cell_type_key = "cell_type"', 'stage_key = "stage"', 'sample_key = "mouse"',
    'doublet_key = "pic_pair"', 'reference_stage = "early"', "[cell_types]",
    *(f'"{label}" = "{t}"' for t, label in LABELS.items()), "[stages]",
    *(f'"{label}" = "{s}"' for label, s in STAGES.items())]) + "\n"


# ---------------------------------------------------------------- the data

def _panel():
    """(programmes {name: (type, genes)}, ligands {gene: sender types}, receptor subunits
    {gene: receiver types}) of params/calibration."""
    folder = ROOT / "params" / "calibration"
    programmes = {name: (t["cell_type"], list(t["genes"])) for name, t in
                  tomllib.loads((folder / "programmes.toml").read_text()).items()}
    ligands, receptors = {}, {}
    for axis in tomllib.loads((folder / "axes.toml").read_text()).values():
        for ligand, subunits in axis["pairs"]:
            ligands.setdefault(ligand, set()).update(axis["senders"])
            for s in subunits:
                receptors.setdefault(s, set()).add(axis["receiver"])
    return programmes, ligands, receptors


def _panel_cp10k(programmes, ligands, receptors, genes):
    """(2 stages, 5 types, panel genes) CP10K out of every programme state."""
    import numpy as np

    level = np.full((2, len(TYPES), len(genes)), LEAK_CP10K)
    for k, t in enumerate(TYPES):
        for j, g in enumerate(genes):
            own = any(tt == t and g in gs for tt, gs in programmes.values())
            signal = t in ligands.get(g, ()) or t in receptors.get(g, ())
            base = max(SIGNAL_CP10K if signal else 0.0, PROGRAMME_CP10K if own else 0.0,
                       LEAK_CP10K)
            level[:, k, j] = base
            if t in ligands.get(g, ()):
                level[1, k, j] = base * LIGAND_FOLD.get(g, 1.0)
    return level


def generate(path: Path, n_cells: int, n_genes: int, nnz: int) -> None:
    """Write the benchmark's h5ad to ``path`` (through a temporary name), chunk by chunk."""
    import anndata
    import h5py
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from anndata.io import sparse_dataset, write_elem

    rng = np.random.default_rng(SEED)
    programmes, ligands, receptors = _panel()
    panel = list(dict.fromkeys([g for _, gs in programmes.values() for g in gs]
                               + list(ligands) + list(receptors)))
    if len(panel) >= n_genes:
        raise ValueError(f"{n_genes} genes: fewer than the {len(panel)} calibration genes")
    # columns: the panel genes at random places among filler genes
    panel_cols = np.sort(rng.choice(n_genes, len(panel), replace=False))
    panel = list(rng.permutation(panel))
    names = np.array([f"Gene{i:05d}" for i in range(n_genes)], dtype=object)
    names[panel_cols] = panel
    # cells: by stage and mouse, types drawn from the stage's composition
    stage = np.repeat([0, 1], [n_cells // 2, n_cells - n_cells // 2])
    model_stages = list(STAGES.values())
    kind = np.empty(n_cells, dtype=np.int64)
    for i, s in enumerate(model_stages):
        rows = stage == i
        kind[rows] = rng.choice(len(TYPES), rows.sum(), p=COMPOSITION[s])
    mouse_no = np.concatenate([np.minimum(np.arange(n) * MICE // n, MICE - 1)
                               for n in np.bincount(stage)])
    stage_label = np.array(list(STAGES))[stage]
    neutrophil = TYPES.index("neutrophil")
    bound = (kind == neutrophil) & (rng.random(n_cells) < np.array(
        [BOUND[s] for s in model_stages])[stage])
    obs = pd.DataFrame({
        "cell_type": pd.Categorical([LABELS[TYPES[k]] for k in kind]),
        "stage": pd.Categorical(stage_label),
        "mouse": pd.Categorical([f"{label} m{m + 1}" for label, m in zip(stage_label, mouse_no)]),
        "pic_pair": pd.Categorical(np.where(bound, LABELS["tumor"], ""))},
        index=pd.Index([f"c{i:06d}" for i in range(n_cells)], dtype=object))
    var = pd.DataFrame(index=pd.Index(names, dtype=object))
    # programme states, per cell and programme
    prog_names = list(programmes)
    states = np.zeros((n_cells, len(prog_names)), dtype=bool)
    for j, name in enumerate(prog_names):
        owner = TYPES.index(programmes[name][0])
        p = np.array([PROGRAMME_FRACTION.get(name, {}).get(s, 0.0) for s in model_stages])[stage]
        states[:, j] = (kind == owner) & (rng.random(n_cells) < p)
    members = np.array([[g in programmes[name][1] for g in panel] for name in prog_names])
    level = _panel_cp10k(programmes, ligands, receptors, panel)
    # filler genes: detection probability a gene (mean ~ nnz / genes) times a cell's factor
    mean_p = nnz / n_genes
    detect = rng.beta(0.3, 0.3 * (1 - mean_p) / mean_p, n_genes).astype(np.float32)
    detect = np.minimum(detect, 0.9)
    detect[panel_cols] = 0.0
    extra = 4.0 * detect  # mean count beyond 1 where detected
    size = np.array([SIZE[t] for t in TYPES])[kind] * rng.lognormal(0.0, 0.3, n_cells)
    size /= size.mean()

    tmp = path.with_name(path.name + ".partial")
    anndata.AnnData(obs=obs, var=var).write_h5ad(tmp)
    with h5py.File(tmp, "a") as f:
        for a in range(0, n_cells, GEN_CHUNK):
            rows = slice(a, min(a + GEN_CHUNK, n_cells))
            n = rows.stop - rows.start
            hit = rng.random((n, n_genes), dtype=np.float32) < (
                size[rows, None].astype(np.float32) * detect[None, :])
            r, c = np.nonzero(hit)
            del hit
            values = (1 + rng.poisson(extra[c])).astype(np.float32)
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
            filler = sp.csr_matrix((values, c.astype(np.int32), indptr), shape=(n, n_genes))
            library = np.asarray(filler.sum(axis=1)).ravel()
            cp10k = level[stage[rows], kind[rows]]                         # (n, panel)
            raise_ = np.ones_like(cp10k)
            for j in range(len(prog_names)):
                raise_[np.ix_(states[rows, j], members[j])] = RAISE
            counts = rng.poisson(library[:, None] * cp10k * raise_ / 1e4).astype(np.float32)
            pr, pc = np.nonzero(counts)
            panel_part = sp.csr_matrix((counts[pr, pc], (pr, panel_cols[pc])), shape=(n, n_genes))
            chunk = (filler + panel_part).tocsr()
            chunk.sort_indices()
            chunk.indices = chunk.indices.astype(np.int32)
            chunk.indptr = chunk.indptr.astype(np.int64)
            if a == 0:
                write_elem(f, "X", chunk, dataset_kwargs={"indptr_dtype": np.int64,
                                                         "chunks": (HDF5_CHUNK,)})
            else:
                sparse_dataset(f["X"]).append(chunk)
    tmp.rename(path)


def _peak_rss_self_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def dataset(data_dir: Path, n_cells: int, n_genes: int, nnz: int) -> Path:
    """The cached file, generated if absent (timed, and its generator's peak memory shown)."""
    path = data_dir / f"calibrate_{n_cells}x{n_genes}_nnz{nnz}_seed{SEED}_{GENERATOR}.h5ad"
    if path.exists():
        print(f"data: {path} (cached, {path.stat().st_size / 1e9:.2f} GB)")
        return path
    # the generator runs in its own process, so its peak memory is its own (os.wait4)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
            "import importlib.util as u; "
            "spec = u.spec_from_file_location('bench_calibrate', sys.argv[2]); "
            "m = u.module_from_spec(spec); spec.loader.exec_module(m); "
            "m.generate(Path(sys.argv[3]), *map(int, sys.argv[4:7]))")
    wall, peak, rc, err = run_measured(
        [sys.executable, "-c", code, str(ROOT), __file__, str(path), str(n_cells),
         str(n_genes), str(nnz)], data_dir)
    if rc != 0:
        raise SystemExit(f"generating the data failed (exit {rc}):\n{err[-3000:]}")
    print(f"data: generated {path} in {wall:.1f} s (not counted below), "
          f"{path.stat().st_size / 1e9:.2f} GB on disk; the generator's peak memory "
          f"{peak / 1e9:.2f} GB")
    return path


def _describe(path: Path) -> str:
    import h5py

    with h5py.File(path, "r") as f:
        x = f["X"]
        shape = tuple(int(v) for v in x.attrs["shape"])
        nnz = x["data"].shape[0]
        return (f"X {x.attrs['encoding-type']} {shape[0]:,} cells x {shape[1]:,} genes, "
                f"{nnz / 1e6:.0f} M stored values ({nnz / shape[0]:.0f} a cell), data "
                f"{x['data'].dtype}, indices {x['indices'].dtype}, chunks {x['data'].chunks}")


def _into_page_cache(path: Path) -> float:
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass
    return time.perf_counter() - t0


# ---------------------------------------------------------------- measuring a process

def run_measured(argv: list[str], cwd: Path) -> tuple[float, int, int, str]:
    """Run ``argv``; (wall s, peak RSS bytes, exit code, stderr).

    The peak is ``ru_maxrss`` from ``os.wait4`` on this child's pid: the resource usage of
    that one process (and of any children it waited for). ``getrusage(RUSAGE_CHILDREN)``
    would not do: its ``ru_maxrss`` is the largest peak of all the children waited for so
    far, which never decreases, so a difference before and after one run shows nothing
    when an earlier child (the reference, the generator) was larger. Output goes to files,
    not pipes, so nothing blocks while we wait."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        out.seek(0)
        text = out.read() + err.read()
    return wall, usage.ru_maxrss * 1024, proc.returncode, text  # Linux: ru_maxrss in KiB


def _command(data: Path, mapping: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "sim", "calibrate", str(data), "--mapping", str(mapping),
            "--out", str(out), "--quiet"]


# The reference: what a user would do without the command (read whole, select, sum).
_REFERENCE = r'''
import json, sys, time
t0 = time.perf_counter()
import anndata, numpy as np
t1 = time.perf_counter()
adata = anndata.read_h5ad(sys.argv[1])
t2 = time.perf_counter()
genes = sys.argv[2].split(",")
cols = adata.var_names.get_indexer(genes)
sub = adata.X[:, cols[cols >= 0]]
sub = sub.toarray() if hasattr(sub, "toarray") else np.asarray(sub)
library = np.asarray(adata.X.sum(axis=1)).ravel()
t3 = time.perf_counter()
print("REFERENCE " + json.dumps({"import": t1 - t0, "read": t2 - t1, "select": t3 - t2,
                                 "x": type(adata.X).__name__, "genes": int((cols >= 0).sum()),
                                 "library_mean": float(library.mean())}))
'''


def _parse(tag: str, text: str) -> dict:
    for line in text.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1:])
    return {}


def runs(data: Path, mapping: Path, work: Path, repeats: int) -> dict:
    from sim.calibration.genesets import genes_of, load_axes, load_programmes

    genes = ",".join(genes_of(load_axes(None), load_programmes(None)))
    cmd, ref = [], []
    for i in range(repeats):
        out = work / f"calib{i}"
        wall, peak, rc, text = run_measured(_command(data, mapping, out), work)
        if rc != 0:
            raise SystemExit(f"the command failed (exit {rc}):\n{text[-3000:]}")
        cmd.append((wall, peak))
        wall, peak, rc, text = run_measured(
            [sys.executable, "-c", _REFERENCE, str(data), genes], work)
        ref.append((wall, peak, rc, _parse("REFERENCE", text), text))
        print(f"  pair {i + 1}: command {cmd[-1][0]:.1f} s, {cmd[-1][1] / 1e9:.2f} GB; "
              f"reference " + (f"{wall:.1f} s, {peak / 1e9:.2f} GB" if rc == 0 else
                               f"FAILED (exit {rc}) after {wall:.1f} s, {peak / 1e9:.2f} GB"),
              flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return {"command": cmd, "reference": ref}


def _stats(xs) -> str:
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def report_runs(res: dict) -> tuple[float, float, dict | None]:
    cmd, ref = res["command"], res["reference"]
    walls, peaks = [w for w, _ in cmd], [p / 1e9 for _, p in cmd]
    ok = [r for r in ref if r[2] == 0]
    phases = None
    print(f"\n1-2. The command and the reference, {len(cmd)} pairs (median (min-max))")
    print("| | wall [s] | peak memory [GB] |")
    print("| --- | --- | --- |")
    print(f"| `neutrosim calibrate` | {_stats(walls)} | {_stats(peaks)} |")
    if ok:
        rw, rp = [r[0] for r in ok], [r[1] / 1e9 for r in ok]
        print(f"| reference: read_h5ad whole, X[:, genes], X.sum(axis=1) | {_stats(rw)} | "
              f"{_stats(rp)} |")
        phases = {k: statistics.median(r[3][k] for r in ok) for k in ("import", "read", "select")}
        print(f"reference's own phases (median): imports {phases['import']:.2f} s, "
              f"read_h5ad {phases['read']:.2f} s, select and sum {phases['select']:.2f} s; "
              f"X held as {ok[0][3].get('x')}, {ok[0][3].get('genes')} genes found")
        pair = [(c[0] / r[0], c[1] / r[1]) for c, r in zip(cmd, ref) if r[2] == 0]
        print(f"command / reference: wall {statistics.median(walls) / statistics.median(rw):.2f}x "
              f"(pairs {min(t for t, _ in pair):.2f}-{max(t for t, _ in pair):.2f}), "
              f"peak memory {statistics.median(peaks) / statistics.median(rp):.2f}x "
              f"(pairs {min(m for _, m in pair):.2f}-{max(m for _, m in pair):.2f})")
    for r in ref:
        if r[2] != 0:
            print(f"reference FAILED (exit {r[2]}, peak {r[1] / 1e9:.2f} GB): {r[4][-500:]}")
    return max(peaks), statistics.median(walls), phases


# ---------------------------------------------------------------- where the time goes

_BREAKDOWN = r'''
import time
T0 = time.time()
import atexit, json, resource, sys
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
record = {"t0": T0, "timers": {}, "order": []}
atexit.register(lambda: print("BREAKDOWN " + json.dumps({**record, "t_exit": time.time()}),
                              file=sys.__stdout__, flush=True))  # first registered: runs last
t = time.perf_counter()
import numpy, pandas, scipy.sparse, h5py, anndata, anndata.io, sklearn.mixture, tqdm.auto
import matplotlib.figure
import sim.cli, sim.config.params, sim.runs.destination
import sim.calibration.command as command, sim.calibration.counts as counts
import sim.calibration.derive as derive, sim.calibration.genesets as genesets
import sim.calibration.liana_check as liana_check, sim.calibration.mapping as mapping
import sim.calibration.parameters as parameters, sim.calibration.report as report
record["imports_s"] = time.perf_counter() - t
record["imports_rss"] = rss()
t = time.perf_counter()
import liana.resource
record["liana_s"] = time.perf_counter() - t
record["liana_rss"] = rss()
n_modules = len(sys.modules)

stack = []
def wrap(owner, attr, label):
    orig = getattr(owner, attr)
    def timed(*a, **k):
        t0 = time.perf_counter()
        stack.append(0.0)  # time of the timers nested in this call
        try:
            return orig(*a, **k)
        finally:
            total = time.perf_counter() - t0
            nested = stack.pop()
            if stack:
                stack[-1] += total
            acc = record["timers"].setdefault(label, [0, 0.0, 0])
            acc[0] += 1
            acc[1] += total - nested
            acc[2] = rss()
            if label not in record["order"]:
                record["order"].append(label)
    setattr(owner, attr, timed)

for owner, attr, label in (
        (mapping, "load_mapping", "mapping, axes, programmes"),
        (genesets, "load_axes", "mapping, axes, programmes"),
        (genesets, "load_programmes", "mapping, axes, programmes"),
        (sim.runs.destination, "check_out", "check --out"),
        (counts, "read_counts", "read: the rest (open, metadata, assemble)"),
        (anndata.io, "read_elem", "read: obs and var (read_elem)"),
        (counts._H5adMatrix, "rows", "read: backed CSR slices (h5py, anndata)"),
        (counts._H5adMatrix, "probe", "read: probe of the first rows"),
        (counts, "_check_counts", "read: check the counts are whole numbers"),
        (counts._Sum, "add", "read: library sizes and the genes' columns"),
        (mapping, "label_cells", "label cells (mapping)"),
        (derive, "derive", "derive: the rest"),
        (derive, "_mixture", "derive: Gaussian mixtures (scikit-learn)"),
        (command, "sha256", "sha256 of the input file"),
        (sim.config.params, "load_params", "load_params"),
        (parameters, "calibrate_params", "calibrate_params"),
        (liana_check, "check_pairs", "check_pairs (liana's resource)"),
        (command, "_versions", "library versions"),
        (report, "write_outputs", "write: the rest (report, json, rename)"),
        (report, "_figures", "write: figures"),
        (report, "_check_loads", "write: reload the overlay for every stage")):
    wrap(owner, attr, label)
sys.argv = ["neutrosim", *sys.argv[1:]]
t = time.perf_counter()
try:
    sim.cli.main()
finally:
    record["main_s"] = time.perf_counter() - t
    record["late_modules"] = len(sys.modules) - n_modules
'''


IMPORTS = "imports: numpy, pandas, scipy, h5py, anndata, scikit-learn, matplotlib, tqdm, sim"


def breakdown(data: Path, mapping: Path, work: Path, reference: dict | None) -> None:
    out = work / "breakdown"
    argv = _command(data, mapping, out)[3:]  # after "python -m sim"
    with tempfile.TemporaryFile("w+") as err:
        t_launch = time.time()
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", _BREAKDOWN, *argv],
                              stdout=subprocess.PIPE, stderr=err, text=True, cwd=work,
                              check=False)  # a failure is reported below
        t_end = time.time()
        err.seek(0)
        stderr = err.read()
    rec = _parse("BREAKDOWN", done.stdout)
    if done.returncode != 0 or not rec:
        print(f"\n3. breakdown failed (exit {done.returncode}):\n{stderr[-3000:]}")
        return
    wall = t_end - t_launch
    rows = [("interpreter start (to the first line of the script)", rec["t0"] - t_launch, None),
            (IMPORTS, rec["imports_s"], rec["imports_rss"]),
            ("imports: liana.resource (for check_pairs)", rec["liana_s"], rec["liana_rss"])]
    rows += [(label, rec["timers"][label][1], rec["timers"][label][2]) for label in rec["order"]]
    main_rest = rec["main_s"] - sum(v[1] for v in rec["timers"].values())
    rows.append(("main(): the rest (parsing, labelling, provenance)", main_rest, None))
    rows.append(("interpreter teardown (after the last atexit handler)", t_end - rec["t_exit"],
                 None))
    rows.append(("other (what no timer covers)", wall - sum(s for _, s, _ in rows), None))
    print(f"\n3. Where one command's {wall:.1f} s go (under -X importtime; exclusive timers "
          "wrapped around the command's functions in its process)")
    print("| phase | s | calls | peak memory at its end [GB] |")
    print("| --- | --- | --- | --- |")
    for name, s, peak in rows:
        calls = rec["timers"].get(name, [""])[0]
        print(f"| {name} | {s:.2f} | {calls} | {'' if peak is None else f'{peak / 1e9:.2f}'} |")
    libs = _import_self_times(stderr)
    print("imports by library (self times of -X importtime, s): " + ", ".join(
        f"{k} {v:.2f}" for k, v in sorted(libs.items(), key=lambda kv: -kv[1]) if v >= 0.02))
    print(f"modules imported inside main() after the imports above: {rec['late_modules']}")
    read = sum(v[1] for k, v in rec["timers"].items() if k.startswith("read:"))
    if reference:
        ref = reference["read"] + reference["select"]
        print(f"reading alone: read_counts {read:.2f} s (the read: rows) against the "
              f"reference's read_h5ad and selection {ref:.2f} s (median of its runs): "
              f"{read / ref:.2f}x")


# ---------------------------------------------------------------- main

def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("neutrosim", "numpy", "scipy", "pandas", "h5py", "anndata", "scikit-learn",
                "matplotlib", "liana"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK[0]:,} cells x {QUICK[1]:,} genes ({QUICK[2]} non-zeros a cell)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the command (and of the "
                    "reference, one after each)")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="where the generated h5ad is cached (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary folder (data, mapping, the breakdown's output)")
    args = ap.parse_args()
    from sim.runs.provenance import git_revision

    n_cells, n_genes, nnz = QUICK if args.quick else FULL
    print(json.dumps(_versions()))
    print(f"machine: {_cpu()}, {os.cpu_count()} logical CPUs; load average at start "
          f"{_load()}; commit {git_revision()}")
    work = Path(tempfile.mkdtemp(prefix="bench_calibrate_"))
    try:
        data_dir = args.data_dir or work
        data_dir.mkdir(parents=True, exist_ok=True)
        data = dataset(data_dir, n_cells, n_genes, nnz)
        print(f"data: {_describe(data)}")
        mapping = work / "map.toml"
        mapping.write_text(MAPPING)
        print(f"read through once into the page cache in {_into_page_cache(data):.1f} s")
        print(f"load average before the runs {_load()}", flush=True)
        res = runs(data, mapping, work, args.repeats)
        peak, wall, ref_phases = report_runs(res)
        breakdown(data, mapping, work, ref_phases)
        print(f"\n{n_cells:,} cells x {n_genes:,} genes:")
        print(f"peak memory {peak:.2f} GB (largest of {args.repeats} runs): goal < {GOAL_GB:g} "
              f"GB {'met' if peak < GOAL_GB else 'NOT met'}")
        print(f"wall time {wall:.1f} s (median of {args.repeats} runs): goal < {GOAL_S:g} s "
              f"{'met' if wall < GOAL_S else 'NOT met'}")
        if args.quick:
            print("(--quick: the goal is stated for 100,000 x 20,000; these lines are a check)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average at the end {_load()}")


if __name__ == "__main__":
    main()
