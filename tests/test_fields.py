"""Fields: analytic checks of the LOD solver, the numba kernels against the numpy
reference, and the solver's guarantees (mass, positivity, maximum principle, determinism)."""

import math

import numpy as np
import pytest
from scipy.special import k0

from sim.fields import FieldSolver, FieldSpec
from sim.fields import lod as kernels
from sim.fields.reference import reference_step

DX = 20.0  # um


def run(spec: FieldSpec, u: np.ndarray, dt: float, steps: int, **sources) -> FieldSolver:
    """Advance u in place by ``steps`` model steps of dt_min with a fresh solver."""
    solver = FieldSolver([spec], u.shape, DX, dt)
    for _ in range(steps):
        solver.advance(spec.name, u, **sources)
    return solver


def point_source_profile(d: float, lam: float, n: int, dt: float, hmax: float, steps: int,
                         tol: float = 1e-13) -> tuple[np.ndarray, np.ndarray]:
    """Steady (to ``tol``) field of release q = 1 per min in the centre voxel of an n x n
    no-flux grid, with decay lam; returns (u at r = 3..15 voxels along x, K0 answer)."""
    q, c = 1.0, n // 2
    release = np.zeros((n, n))
    release[c, c] = q / DX**2
    u = np.zeros((n, n))
    solver = FieldSolver([FieldSpec("f", d, lam, max_substep_min=hmax)], (n, n), DX, dt)
    for _ in range(steps):
        before = u.copy()
        solver.advance("f", u, release=release)
        if np.abs(u - before).max() <= tol * u.max():
            break
    else:
        raise AssertionError("no steady state")
    r = np.arange(3, 16)
    return u[c + r, c], q / (2 * np.pi * d) * k0(r * DX * np.sqrt(lam / d))


# ---------------------------------------------------------------------------------------
# analytic answers
# ---------------------------------------------------------------------------------------
def test_point_release_spreads_as_2d_gaussian():
    # sigma = sqrt(2 D t) = 10 voxels at t = 20 min: the continuum answer is smooth on the
    # grid (the 5-point Laplacian's relative error ~ dx^2/(24 sigma^2) < 0.1%); 100 sub-steps
    # of h = 0.2 min keep backward Euler's error ~ h/(8 t) ~ 0.1%; the domain's half-width is
    # 7.5 sigma, so the no-flux walls add nothing measurable (backward Euler's kernel has
    # heavier tails than a Gaussian: at 5 sigma the walls already shift <r^2> by 4e-6).
    d, t, n, mass = 1000.0, 20.0, 151, 3.0
    c = n // 2
    u = np.zeros((n, n))
    u[c, c] = mass / DX**2  # concentration = mass / voxel area
    solver = run(FieldSpec("f", d, 0.0, max_substep_min=0.2), u, dt=2.0, steps=10)
    assert solver.n_substeps["f"] == 10
    x = (np.arange(n) - c) * DX
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    exact = mass / (4 * np.pi * d * t) * np.exp(-r2 / (4 * d * t))
    for i, j in [(0, 0), (3, 4), (5, 0), (7, 7), (10, 0), (0, 15), (12, 12), (20, 0)]:
        assert u[c + i, c + j] == pytest.approx(exact[c + i, c + j], rel=0.02)
    # each backward-Euler sweep adds exactly 2 h D to <x^2> (or <y^2>) away from walls
    assert (u * DX**2).sum() == pytest.approx(mass, rel=1e-12)
    assert (u * r2).sum() / u.sum() == pytest.approx(4 * d * t, rel=1e-9)


def test_point_source_with_decay_reaches_k0_steady_state():
    # D = 2500 um^2/min, decay 0.1/min: penetration length 158 um = 8 voxels; 121 x 121 grid
    # (7 lengths to each wall). At h = 0.01 min (h D / dx^2 = 0.06, h * decay = 0.001) the
    # worst error is 1.2% (at r = 3 voxels; 0.9% of it is the grid's own error there, the
    # split adds 0.3%); at h = 0.1 min it would be 3.7%.
    u, exact = point_source_profile(2500.0, 0.1, 121, dt=6.0, hmax=0.01, steps=100, tol=1e-9)
    np.testing.assert_allclose(u, exact, rtol=0.02)


def test_split_error_at_model_step_for_oxygen_is_large():
    # Documents the limitation (see solver.py): at h = 6 min the split scheme's steady state
    # around a point source of oxygen is far from the true one. Measured worst relative
    # errors at r = 3..15 voxels: 59.8% in normal tissue (decay 0.1/min), 96.9% in tumor
    # (decay + uptake 10.1/min); the field is too low near the source, too flat away.
    u, exact = point_source_profile(1e5, 0.1, 301, dt=6.0, hmax=math.inf, steps=400)
    err = np.abs(u / exact - 1)
    assert 0.58 < err.max() < 0.62 and u[0] < 0.45 * exact[0]
    u, exact = point_source_profile(1e5, 10.1, 301, dt=6.0, hmax=math.inf, steps=400)
    err = np.abs(u / exact - 1)
    assert 0.96 < err.max() < 0.98 and u[0] < 0.05 * exact[0]


@pytest.mark.parametrize("boundary", ["noflux", "dirichlet"])
def test_eigenmodes_decay_at_the_exact_discrete_rate(boundary):
    # sin modes (dirichlet, around the boundary value) and cos modes (no-flux) are the
    # eigenvectors of each sweep: one sub-step divides them by
    # (1 + h decay)(1 + 4 r sin^2(kx/2))(1 + 4 r sin^2(ky/2)), r = h D / dx^2
    nx, ny, d, lam, h, ub, m = 40, 27, 4e4, 0.05, 0.5, 2.5, (3, 2)
    i, j = np.arange(nx)[:, None], np.arange(ny)[None, :]
    if boundary == "dirichlet":
        kx, ky = m[0] * np.pi / (nx + 1), m[1] * np.pi / (ny + 1)
        mode = np.sin(kx * (i + 1)) * np.sin(ky * (j + 1))
        lam, base = 0.0, ub  # the constant boundary value is a fixed point only without decay
    else:
        kx, ky = m[0] * np.pi / nx, m[1] * np.pi / ny
        mode = np.cos(kx * (i + 0.5)) * np.cos(ky * (j + 0.5))
        base = 0.0
    u = base + 0.7 * mode
    r = h * d / DX**2
    factor = 1 / ((1 + h * lam) * (1 + 4 * r * np.sin(kx / 2) ** 2)
                  * (1 + 4 * r * np.sin(ky / 2) ** 2))
    run(FieldSpec("f", d, lam, boundary, ub if boundary == "dirichlet" else 0.0, h), u, dt=2.0,
        steps=3)
    np.testing.assert_allclose(u, base + 0.7 * factor**12 * mode, rtol=0, atol=1e-13)


def test_dirichlet_field_relaxes_to_the_boundary_value():
    rng = np.random.default_rng(3)
    u = 10 * rng.random((30, 45))
    run(FieldSpec("f", 1e4, 0.0, "dirichlet", 2.5), u, dt=6.0, steps=300)
    np.testing.assert_allclose(u, 2.5, rtol=1e-10)


# ---------------------------------------------------------------------------------------
# guarantees
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(64, 64), (37, 90)])
def test_mass_is_conserved_with_noflux_and_no_sources(shape):
    rng = np.random.default_rng(4)
    u = rng.random(shape)
    mass = u.sum()
    run(FieldSpec("f", 1e5, 0.0), u, dt=6.0, steps=200)
    assert abs(u.sum() - mass) <= 1e-10 * mass
    assert u.std() < 1e-6 * u.mean()  # and it has spread out evenly


@pytest.mark.parametrize("boundary", ["noflux", "dirichlet"])
def test_stays_non_negative_with_strong_uptake_and_sharp_sources(boundary):
    rng = np.random.default_rng(5)
    shape = (50, 43)
    u = np.where(rng.random(shape) < 0.5, 0.0, 100 * rng.random(shape))
    uptake = np.where(rng.random(shape) < 0.3, 1e3, 0.0)
    release = np.zeros(shape)
    release[rng.integers(0, 50, 5), rng.integers(0, 43, 5)] = 1e4
    rate = np.where(rng.random(shape) < 0.05, 100.0, 0.0)
    spec = FieldSpec("f", 1e5, 0.0, boundary, 0.0)
    solver = FieldSolver([spec], shape, DX, 60.0)
    totals = []
    for _ in range(20):
        solver.advance("f", u, release=release, uptake=uptake, supply_rate=rate,
                       supply_target=np.zeros(shape))
        assert u.min() >= 0.0 and np.isfinite(u).all()
        totals.append(u.sum())
        release[:] = 0.0  # then only the sinks act
    assert all(b < a for a, b in zip(totals, totals[1:]))


SOURCED = {
    # name: (D um^2/min, decay 1/min, uptake 1/min, supply: rate 1/min and target)
    "oxygen": (1e5, 0.1, 10.0, (100.0, 38.0)),
    "proangiogenic": (2500.0, 0.015, 0.1, None),
    "chemoattractant": (5e4, 0.01, 0.05, None),
}


@pytest.mark.parametrize("name", list(SOURCED))
def test_model_step_is_stable_and_keeps_the_maximum_principle(name):
    d, lam, k, supply = SOURCED[name]
    rng = np.random.default_rng(6)
    shape = (64, 48)
    u = 50 * rng.random(shape)
    ub = 38.0 if name == "oxygen" else 0.0
    uptake = np.where(rng.random(shape) < 0.4, k, 0.0)
    sources = {"uptake": uptake}
    bound = max(u.max(), ub)
    if supply:
        sources["supply_rate"] = np.where(rng.random(shape) < 0.05, supply[0], 0.0)
        sources["supply_target"] = np.full(shape, supply[1])
        bound = max(bound, supply[1])
    solver = run(FieldSpec(name, d, lam, "dirichlet", ub), u, dt=6.0, steps=1000, **sources)
    assert solver.substep_min[name] == 6.0
    assert np.isfinite(u).all() and u.min() >= 0.0 and u.max() <= bound


def test_same_calls_give_bit_identical_fields():
    rng = np.random.default_rng(7)
    shape = (45, 61)
    u0 = rng.random(shape)
    src = {k: rng.random(shape) for k in ("release", "uptake", "supply_rate", "supply_target")}
    spec = FieldSpec("f", 1e5, 0.1, "dirichlet", 1.0, 1.5)
    results = []
    for offset in (0, 1):  # also a differently aligned copy of the same data
        buf = np.empty(u0.size + 1)
        u = buf[offset: offset + u0.size].reshape(shape)
        u[:] = u0
        run(spec, u, dt=6.0, steps=5, **src)
        results.append(u.copy())
    again = u0.copy()
    run(spec, again, dt=6.0, steps=5, **src)
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], again)


# ---------------------------------------------------------------------------------------
# numba kernels against the numpy reference
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 3), (5, 12), (12, 5), (8, 8), (17, 9), (37, 29),
                                   (64, 67), (100, 100), (23, 260)])
@pytest.mark.parametrize("boundary", ["noflux", "dirichlet"])
@pytest.mark.parametrize("sources", ["all", "release+uptake", "sparse"])
def test_kernel_equals_numpy_reference(shape, boundary, sources):
    rng = np.random.default_rng(sum(shape))
    d, lam, ub, dt, hmax = 3e4, 0.05, 1.7, 6.0, 2.5
    u = rng.random(shape)
    src = {"release": rng.random(shape), "uptake": 5 * rng.random(shape),
           "supply_rate": rng.random(shape), "supply_target": 3 * rng.random(shape)}
    if sources != "all":  # as in the model: no vessel supply
        del src["supply_rate"], src["supply_target"]
    if sources == "sparse":  # sources at a few voxels: the rest use the uniform factors
        src = {k: np.where(rng.random(shape) < 0.2, v, 0.0) for k, v in src.items()}
    expected = u.copy()
    solver = run(FieldSpec("f", d, lam, boundary, ub, hmax), u, dt=dt, steps=2, **src)
    assert solver.n_substeps["f"] == 3
    for _ in range(2 * 3):
        expected = reference_step(expected, h=dt / 3, diffusion=d, dx=DX, decay=lam,
                                  boundary=boundary, boundary_value=ub, **src)
    np.testing.assert_allclose(u, expected, rtol=1e-12, atol=0)


def test_kernel_equals_reference_without_sources_and_without_diffusion():
    rng = np.random.default_rng(8)
    shape = (19, 26)
    u0 = rng.random(shape)
    for d in (0.0, 7e3):
        for hmax in (6.0, 2.0):
            u = u0.copy()
            solver = run(FieldSpec("f", d, 0.2, "dirichlet", 0.5, hmax), u, dt=6.0, steps=1)
            expected = u0
            for _ in range(solver.n_substeps["f"]):
                expected = reference_step(expected, h=solver.substep_min["f"], diffusion=d,
                                          dx=DX, decay=0.2, boundary="dirichlet",
                                          boundary_value=0.5)
            np.testing.assert_allclose(u, expected, rtol=1e-12, atol=0)


def test_low_level_step_matches_reference():
    rng = np.random.default_rng(9)
    nx, ny, h, d, lam = 33, 70, 0.7, 1e5, 0.1
    u = rng.random((nx, ny))
    # sources at some voxels: the others keep the uniform factors
    release = np.where(rng.random((nx, ny)) < 0.2, rng.random((nx, ny)), 0.0)
    uptake = np.where(rng.random((nx, ny)) < 0.3, 5.0, 0.0)
    r = h * d / DX**2
    expected = reference_step(u, h=h, diffusion=d, dx=DX, decay=lam, boundary="noflux",
                              release=release, uptake=uptake)
    nyp = kernels.padded(ny)  # the kernels' layout: rows padded to a multiple of 8
    cx, cy = kernels.axis_factors(nx, r, False), kernels.axis_factors(ny, r, False, length=nyp)
    rx = kernels.new_reaction(nx, nyp)
    assert kernels.reaction_from_sources(rx, h, lam, release, uptake, None, None) == 0
    assert rx.start[0, -1] == (uptake > 0).sum() and rx.start[1, -1] == (release > 0).sum()
    up = kernels.aligned_zeros((nx, nyp))
    assert up.ctypes.data % 64 == 0
    up[:, :ny] = u
    kernels.lod_step(up, rx, cx, cy, kernels.aligned_zeros((kernels.work_size(nx, nyp),)))
    np.testing.assert_allclose(up[:, :ny], expected, rtol=1e-12)
    assert not up[:, ny:].any()  # padding stays 0 and takes no part


# ---------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("hmax, n_sub", [(math.inf, 1), (6.0, 1), (1.0, 6), (0.7, 9),
                                         (6 / 7, 7), (10.0, 1)])
def test_substeps_follow_max_substep(hmax, n_sub):
    solver = FieldSolver([FieldSpec("f", 1.0, 0.0, max_substep_min=hmax)], (4, 4), DX, 6.0)
    assert solver.n_substeps["f"] == n_sub
    assert solver.substep_min["f"] == pytest.approx(6.0 / n_sub)


@pytest.mark.parametrize("spec, shape, words", [
    (FieldSpec("vegf", -1.0, 0.0), (10, 10), ["vegf", "diffusion", "-1.0"]),
    (FieldSpec("vegf", 1.0, -0.5), (10, 10), ["vegf", "decay", "-0.5"]),
    (FieldSpec("vegf", float("nan"), 0.0), (10, 10), ["vegf", "diffusion"]),
    (FieldSpec("o2", 1.0, 0.0, "periodic"), (10, 10), ["o2", "boundary", "periodic"]),
    (FieldSpec("o2", 1.0, 0.0, "dirichlet", -1.0), (10, 10), ["o2", "boundary_value"]),
    (FieldSpec("o2", 1.0, 0.0, max_substep_min=0.0), (10, 10), ["o2", "max_substep_min"]),
    (FieldSpec("o2", 1.0, 0.0), (2, 10), ["shape", "(2, 10)"]),
])
def test_invalid_settings_raise_value_error_naming_them(spec, shape, words):
    with pytest.raises(ValueError) as info:
        FieldSolver([spec], shape, DX, 6.0)
    assert all(w in str(info.value) for w in words)


def test_invalid_grid_step_and_calls_raise():
    spec = FieldSpec("o2", 1.0, 0.0)
    with pytest.raises(ValueError, match="dx_um"):
        FieldSolver([spec], (5, 5), 0.0, 6.0)
    with pytest.raises(ValueError, match="dt_min"):
        FieldSolver([spec], (5, 5), DX, -6.0)
    with pytest.raises(ValueError, match="twice"):
        FieldSolver([spec, spec], (5, 5), DX, 6.0)
    solver = FieldSolver([spec], (5, 5), DX, 6.0)
    with pytest.raises(KeyError, match="vegf"):
        solver.advance("vegf", np.zeros((5, 5)))
    with pytest.raises(ValueError, match="o2"):
        solver.advance("o2", np.zeros((5, 6)))
    with pytest.raises(ValueError, match="uptake"):
        solver.advance("o2", np.zeros((5, 5)), uptake=np.zeros((4, 5)))
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="o2.*25 source values"):
            solver.advance("o2", np.ones((5, 5)), release=np.full((5, 5), bad))
        with pytest.raises(ValueError, match="o2.*25 source values"):
            solver.advance("o2", np.ones((5, 5)), uptake=np.full((5, 5), bad),
                           supply_rate=np.ones((5, 5)))


def test_bad_sources_leave_the_field_unchanged_and_the_next_call_exact():
    shape = (19, 13)  # rows padded from 13 to 16 voxels inside the solver
    rng = np.random.default_rng(4)
    u0 = rng.random(shape)
    spec = FieldSpec("f", 7e3, 0.05, "dirichlet", 0.8, 2.0)
    solver = FieldSolver([spec], shape, DX, 6.0)
    u = u0.copy()
    release = rng.random(shape)
    release[3, 12] = np.nan
    with pytest.raises(ValueError, match="1 source values.*unchanged"):
        solver.advance("f", u, release=release)
    assert np.array_equal(u, u0)
    # the scratch the failed call left behind does not leak into the next call
    solver.advance("f", u)
    fresh = u0.copy()
    FieldSolver([spec], shape, DX, 6.0).advance("f", fresh)
    assert np.array_equal(u, fresh)


def test_kernels_refuse_rows_not_padded_to_a_multiple_of_8():
    with pytest.raises(ValueError, match="multiple of 8"):
        kernels.new_reaction(10, 13)
    rx = kernels.new_reaction(10, 16)
    cx, cy = kernels.axis_factors(10, 1.0, False), kernels.axis_factors(13, 1.0, False)
    with pytest.raises(ValueError, match="padded"):
        kernels.lod_steps(np.zeros((10, 13)), rx, cx, cy, np.zeros(kernels.work_size(10, 16)), 1)
