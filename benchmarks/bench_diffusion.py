"""Diffusion throughput of the fields: numba LOD kernel against the numpy reference.

Prints million voxel-field updates per second (one update = one field at one voxel
advanced by one sub-step, reaction included) for 4 fields on 100x100, 300x300 and
1000x1000 grids, single thread, compile time excluded, median of repeats:

* ``kernel``: ``kernels.lod_step`` on each field in turn, in the kernels' own layout (a
  64-byte aligned array with rows padded to a multiple of 8 voxels; only the field's own
  voxels are counted), its reaction made beforehand
  (``kernels.reaction_from_sources``) from the same sources as ``advance``: release at 10%
  of voxels, uptake at 30% (37% of voxels listed with their own factors);
* ``kernel x10``: ``kernels.lod_steps``, 10 sub-steps of each field in turn (successive
  sub-steps share a pass over memory);
* ``advance``: ``FieldSolver.advance`` of the 4 fields, one sub-step each, with per-voxel
  release and uptake arrays, as the model calls it: this also turns the sources into
  reaction factors (in the same pass) and copies the field into and out of the kernels'
  layout;
* ``advance x10``: the same with 10 sub-steps per model step;
* ``numpy``: ``reference.reference_step`` (scipy ``solve_banded`` on all lines at once).

``--split-error`` prints instead the split scheme's steady-state error around a point
source, the tables in ``sim/fields/solver.py`` (about a minute).

Usage: python benchmarks/bench_diffusion.py [--quick] [--fields N] [--sizes N ...]
       python benchmarks/bench_diffusion.py --split-error
"""

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/numba are imported

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from sim.fields import FieldSolver, FieldSpec  # noqa: E402
from sim.fields import lod as kernels  # noqa: E402
from sim.fields.reference import reference_step  # noqa: E402

DX = 20.0
# oxygen, chemokine, VEGF-like, tumor signal (the rates do not change the cost)
SPECS = [
    FieldSpec("oxygen", 1e5, 0.1, "dirichlet", 38.0),
    FieldSpec("chemoattractant", 5e4, 0.01, "dirichlet", 0.0),
    FieldSpec("proangiogenic", 2500.0, 0.015, "dirichlet", 0.0),
    FieldSpec("tumor_signal", 2500.0, 0.01, "noflux", 0.0),
]


def cpu_model() -> str:
    """Model name, family/model numbers and CPU count, from /proc/cpuinfo."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown"
    return (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, "
            f"model {info.get('model', '?')}), {os.cpu_count()} CPUs")


def median_time(fn, repeats: int, min_time: float) -> float:
    """Median wall time of ``fn()``; each sample loops fn enough to last min_time (s)."""
    fn()  # warm-up (and compile)
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-9)
    loops = max(1, int(min_time / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - t0) / loops)
    return statistics.median(samples)


def to_layout(u: np.ndarray) -> np.ndarray:
    """``u`` copied into the kernels' layout (aligned, rows padded to a multiple of 8)."""
    out = kernels.aligned_zeros((u.shape[0], kernels.padded(u.shape[1])))
    out[:, :u.shape[1]] = u
    return out


def make_fields(shape, rng, n_fields):
    """Per-field arrays: field (and its copy in the kernels' layout) and sources."""
    fields = []
    for _ in range(n_fields):
        f = {
            "u": rng.random(shape),
            "release": np.where(rng.random(shape) < 0.1, rng.random(shape), 0.0),
            "uptake": np.where(rng.random(shape) < 0.3, 10.0, 0.0),
        }
        f["u_kernel"] = to_layout(f["u"])
        fields.append(f)
    return fields


def bench_size(n: int, n_fields: int, repeats: int, min_time: float,
               ref_min_time: float) -> dict:
    shape = (n, n)
    rng = np.random.default_rng(0)
    fields = make_fields(shape, rng, n_fields)
    specs = SPECS[:n_fields]
    dt = 6.0
    h = dt
    npad = kernels.padded(n)
    work = kernels.aligned_zeros((kernels.work_size(n, npad),))
    factors = []
    for f, spec in zip(fields, specs):
        r = h * spec.diffusion_um2_per_min / DX**2
        dirichlet = spec.boundary == "dirichlet"
        factors.append((kernels.axis_factors(n, r, dirichlet, spec.boundary_value),
                        kernels.axis_factors(n, r, dirichlet, spec.boundary_value,
                                             length=npad)))
        f["reaction"] = kernels.new_reaction(n, npad)
        kernels.reaction_from_sources(f["reaction"], h, spec.decay_per_min, f["release"],
                                      f["uptake"], None, None)

    def kernel_round():
        for f, (cx, cy) in zip(fields, factors):
            kernels.lod_step(f["u_kernel"], f["reaction"], cx, cy, work)

    def kernel_round10():
        for f, (cx, cy) in zip(fields, factors):
            kernels.lod_steps(f["u_kernel"], f["reaction"], cx, cy, work, 10)

    def advance_round(solver):
        for f, spec in zip(fields, specs):
            solver.advance(spec.name, f["u"], release=f["release"], uptake=f["uptake"])

    solver1 = FieldSolver(specs, shape, DX, dt)
    specs10 = [FieldSpec(s.name, s.diffusion_um2_per_min, s.decay_per_min, s.boundary,
                         s.boundary_value, dt / 10) for s in specs]
    solver10 = FieldSolver(specs10, shape, DX, dt)

    def reference_round():
        for f, spec in zip(fields, specs):
            reference_step(f["u"], h=h, diffusion=spec.diffusion_um2_per_min, dx=DX,
                           decay=spec.decay_per_min, boundary=spec.boundary,
                           boundary_value=spec.boundary_value, release=f["release"],
                           uptake=f["uptake"])

    updates = n_fields * n * n
    return {
        "kernel": updates / median_time(kernel_round, repeats, min_time) / 1e6,
        "kernel x10": 10 * updates / median_time(kernel_round10, repeats, min_time) / 1e6,
        "advance": updates / median_time(lambda: advance_round(solver1), repeats, min_time) / 1e6,
        "advance x10": 10 * updates
        / median_time(lambda: advance_round(solver10), repeats, min_time) / 1e6,
        "numpy": updates / median_time(reference_round, max(3, repeats // 2), ref_min_time) / 1e6,
    }


# --------------------------------------------------------------------------------------
# Split error (--split-error)
# --------------------------------------------------------------------------------------
def fixed_point(d: float, lam: float, source: np.ndarray, h: float, start: np.ndarray):
    """Converged fixed point of the split scheme (no-flux, uniform loss rate lam), by GMRES
    on ``(I - M) u = c`` where one sub-step maps u to ``M u + c``."""
    import scipy.sparse.linalg as spla

    n = source.shape[0]
    npad = kernels.padded(n)
    r = h * d / DX**2
    cx, cy = kernels.axis_factors(n, r, False), kernels.axis_factors(n, r, False, length=npad)
    decay_only, with_source = kernels.new_reaction(n, npad), kernels.new_reaction(n, npad)
    kernels.reaction_from_sources(decay_only, h, lam, None, None, None, None)
    kernels.reaction_from_sources(with_source, h, lam, source, None, None, None)
    work = kernels.aligned_zeros((kernels.work_size(n, npad),))

    def one_minus_m(v):
        w = to_layout(v.reshape(n, n))
        kernels.lod_steps(w, decay_only, cx, cy, work, 1)
        return v - w[:, :n].ravel()

    c = to_layout(np.zeros((n, n)))
    kernels.lod_steps(c, with_source, cx, cy, work, 1)
    c = c[:, :n]
    op = spla.LinearOperator((n * n, n * n), dtype=np.float64, matvec=one_minus_m)
    u, info = spla.gmres(op, c.ravel(), x0=start.ravel(), rtol=1e-12, atol=0.0, restart=200,
                         maxiter=2000)
    return u.reshape(n, n), info


def split_error_table(n: int = 301) -> None:
    """Worst relative error of the split scheme's fixed point at r = 3..15 voxels from a
    point source: oxygen against K0, the other fields against the unsplit discrete steady
    state (sparse direct solve)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla
    from scipy.special import k0

    c = n // 2
    source = np.zeros((n, n))
    source[c, c] = 1.0 / DX**2  # q = 1 per min
    rs = np.arange(3, 16)
    main = np.full(n, -2.0)
    main[0] = main[-1] = -1.0  # no-flux
    lap1 = sp.diags([np.ones(n - 1), main, np.ones(n - 1)], [-1, 0, 1]) / DX**2
    eye = sp.identity(n)
    lap = sp.kron(lap1, eye) + sp.kron(eye, lap1)
    cases = [  # label, D, lambda, against K0?, sub-steps h
        ("oxygen, normal tissue (0.1/min)", 1e5, 0.1, True,
         (6, 3, 1, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)),
        ("oxygen, tumor (10.1/min)", 1e5, 10.1, True,
         (6, 3, 1, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)),
        ("chemokine (5e4, 0.01/min)", 5e4, 0.01, False, (6, 1, 0.3, 0.1, 0.03, 0.01)),
        ("VEGF-like (2500, 0.015/min)", 2500.0, 0.015, False, (6, 1, 0.3, 0.1, 0.03, 0.01)),
    ]
    print(f"Point source, {n}x{n} no-flux grid, dx = {DX:g} um: worst relative error of the "
          "split scheme's steady state at r = 3..15 voxels")
    for label, d, lam, against_k0, hs in cases:
        steady = spla.spsolve((lam * sp.identity(n * n) - d * lap).tocsc(), source.ravel())
        steady = steady.reshape(n, n)
        exact = (1.0 / (2 * np.pi * d) * k0(rs * DX * np.sqrt(lam / d)) if against_k0
                 else steady[c + rs, c])
        what = "vs K0" if against_k0 else "vs unsplit discrete steady state"
        grid_err = np.max(np.abs(steady[c + rs, c] / exact - 1))
        print(f"  {label}, {what} (h -> 0: {grid_err:.1%}):")
        for h in hs:
            u, info = fixed_point(d, lam, source, h, steady)
            err = np.max(np.abs(u[c + rs, c] / exact - 1))
            note = "" if info == 0 else "  (GMRES did not converge)"
            print(f"    h = {h:<6g} min: {err:6.1%}{note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    ap.add_argument("--split-error", action="store_true", help="print the split-error table")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--fields", type=int, default=4, choices=range(1, len(SPECS) + 1))
    args = ap.parse_args()
    print(f"CPU: {cpu_model()}; python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, numba {numba.__version__} "
          f"(NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}); "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}")
    if args.split_error:
        split_error_table()
        return
    repeats, min_time, ref_min_time = (3, 0.1, 0.2) if args.quick else (7, 0.3, 0.5)
    print(f"{args.fields} fields, one array each; million voxel-field updates per second "
          f"(median of {repeats}):")
    cols = ["kernel", "kernel x10", "advance", "advance x10", "numpy"]
    print(f"{'grid':>10} | " + " | ".join(f"{c:>11}" for c in cols) + " | kernel/numpy")
    for n in args.sizes:
        r = bench_size(n, args.fields, repeats, min_time, ref_min_time)
        print(f"{f'{n}x{n}':>10} | " + " | ".join(f"{r[c]:>11.0f}" for c in cols)
              + f" | {r['kernel'] / r['numpy']:>11.1f}x")


if __name__ == "__main__":
    main()
