"""Multigrid solver of -D lap u + c u = f (sim.fields.multigrid): analytic, reference, model-like."""

import numpy as np
import pytest
from scipy.special import k0

from sim.fields.multigrid import ConvergenceError, SteadySolver, reference_solve

DX = 20.0  # um
O2 = dict(diffusion=1e5, decay=0.1, boundary=38.0)  # um^2/min, 1/min, mmHg


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def disc(shape, centre, radius):
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2


def tumour(shape, rng, radius, uptake=10.0, vessel_fraction=0.02):
    """Oxygen c, f like the model's: decay, uptake in a disc, vessels supplying to 38 mmHg."""
    supply = np.where(rng.random(shape) < vessel_fraction, 10.0, 0.0)
    inside = disc(shape, (shape[0] / 2, shape[1] / 2), radius)
    return O2["decay"] + uptake * inside + supply, supply * 38.0, inside


@pytest.mark.parametrize("boundary", ["dirichlet", "noflux"])
@pytest.mark.parametrize("diffusion, decay, n", [(1e5, 0.1, 401), (5e4, 0.01, 801)])
def test_point_source_matches_bessel_k0(diffusion, decay, n, boundary):
    # continuous release q into one voxel; the boundary is >= 3.5 decay lengths away
    q = 2.0
    c = np.full((n, n), decay)
    f = np.zeros((n, n))
    m = n // 2
    f[m, m] = q / DX**2
    u = np.zeros((n, n))
    SteadySolver((n, n), DX, diffusion, boundary, tol=1e-10).solve(u, c, f)

    def exact(r_voxels):
        return q / (2 * np.pi * diffusion) * k0(r_voxels * DX * np.sqrt(decay / diffusion))

    for r in range(3, 16):
        for i, j in [(m + r, m), (m - r, m), (m, m + r), (m, m - r)]:
            assert u[i, j] == pytest.approx(exact(r), rel=0.01)  # measured <= 0.4%
    for k in range(3, 11):
        assert u[m + k, m + k] == pytest.approx(exact(k * np.sqrt(2)), rel=0.01)


@pytest.mark.parametrize("boundary", ["dirichlet", "noflux"])
@pytest.mark.parametrize("shape", [(3, 3), (16, 16), (33, 20), (64, 37), (7, 101), (90, 3)])
def test_matches_sparse_reference(shape, boundary, rng):
    c = 0.01 + 20.0 * rng.random(shape) ** 3  # 0.01 .. 20 per min, mostly small
    f = 5.0 * rng.random(shape)
    for diffusion in (1e5, 5e4):
        u = np.zeros(shape)
        info = SteadySolver(shape, DX, diffusion, boundary, 38.0, tol=1e-12).solve(u, c, f)
        ref = reference_solve(c, f, DX, diffusion, boundary, 38.0)
        assert info.residual <= 1e-12
        np.testing.assert_allclose(u, ref, rtol=0, atol=1e-8 * np.abs(ref).max())


def test_tumour_disc_keeps_maximum_principle(rng):
    shape = (120, 90)
    c, f, inside = tumour(shape, rng, radius=35)
    u = np.zeros(shape)
    SteadySolver(shape, DX, O2["diffusion"], "dirichlet", O2["boundary"], tol=1e-12).solve(
        u, c, f)
    ref = reference_solve(c, f, DX, O2["diffusion"], "dirichlet", O2["boundary"])
    assert u.min() >= 0.0
    assert u.max() <= O2["boundary"]
    assert u[inside].mean() < 0.5 * u[~inside].mean()  # the tumour is hypoxic
    np.testing.assert_allclose(u, ref, rtol=0, atol=1e-8 * O2["boundary"])


@pytest.mark.parametrize("uptake", [10.0, 1000.0])
def test_anoxic_core_is_not_negative(uptake, rng):
    # exact solution ~1e-30 mmHg in the core; unclipped, the converged u reached -4e-14 and
    # two cycles -0.3 mmHg
    shape = (137, 137)
    c, f, _ = tumour(shape, rng, radius=50, uptake=uptake, vessel_fraction=0.0)
    u = np.zeros(shape)
    solver = SteadySolver(shape, DX, O2["diffusion"], "dirichlet", O2["boundary"])
    solver.solve(u, c, f)
    assert u.min() >= 0.0
    for cycles in (1, 2, 3):  # early iterates overshoot below 0 before clipping
        u[:] = 0.0
        solver.solve(u, c, f, cycles=cycles)
        assert u.min() >= 0.0


@pytest.mark.parametrize("dt_min", [0.1, 6.0])
@pytest.mark.parametrize("boundary", ["dirichlet", "noflux"])
def test_backward_euler_step_matches_reference(dt_min, boundary, rng):
    shape = (45, 60)
    c = 0.1 + 10.0 * rng.random(shape)
    f = rng.random(shape)
    u_old = 38.0 * rng.random(shape)
    u = u_old.copy()
    solver = SteadySolver(shape, DX, O2["diffusion"], boundary, 38.0, tol=1e-12)
    solver.solve(u, c, f, dt_min=dt_min)
    ref = reference_solve(c, f, DX, O2["diffusion"], boundary, 38.0, u_old=u_old,
                          dt_min=dt_min)
    np.testing.assert_allclose(u, ref, rtol=0, atol=1e-8 * np.abs(ref).max())


def test_backward_euler_steps_approach_steady_state(rng):
    shape = (100, 100)
    c, f, _ = tumour(shape, rng, radius=25)
    solver = SteadySolver(shape, DX, O2["diffusion"], "dirichlet", O2["boundary"], tol=1e-10)
    steady = np.zeros(shape)
    solver.solve(steady, c, f)
    u = np.full(shape, O2["boundary"])
    for _ in range(30):
        solver.solve(u, c, f, dt_min=6.0)
    np.testing.assert_allclose(u, steady, rtol=0, atol=1e-7 * O2["boundary"])


def test_backward_euler_conserves_mass_up_to_decay(rng):
    shape, decay, h = (64, 48), 0.1, 6.0
    solver = SteadySolver(shape, DX, 5e4, "noflux", tol=1e-10)
    c, f = np.full(shape, decay), np.zeros(shape)
    u = 10.0 * rng.random(shape)
    for _ in range(10):
        mass = u.sum()
        solver.solve(u, c, f, dt_min=h)
        assert u.sum() * (1 + h * decay) == pytest.approx(mass, rel=1e-10)


def test_warm_start_needs_few_cycles(rng):
    shape = (200, 200)
    c, f, inside = tumour(shape, rng, radius=60)
    solver = SteadySolver(shape, DX, O2["diffusion"], "dirichlet", O2["boundary"])
    u = np.zeros(shape)
    cold = solver.solve(u, c, f)
    assert solver.solve(u, c, f).cycles == 0  # nothing changed: already converged
    cells = np.argwhere(inside)[rng.choice(inside.sum(), 5, replace=False)]
    c[cells[:, 0], cells[:, 1]] = O2["decay"]  # five tumour cells die
    warm = solver.solve(u, c, f)
    # measured over 31 seeds: cold 8 V(1,1) cycles, warm 4 (25 seeds) or 5 (r0 ~ 2e-4)
    assert warm.cycles <= 5 < cold.cycles
    assert warm.residual <= 1e-8


def test_repeat_is_bit_identical(rng):
    shape = (77, 64)
    c, f, _ = tumour(shape, rng, radius=20)
    start = 38.0 * rng.random(shape)
    results = []
    for _ in range(2):
        solver = SteadySolver(shape, DX, O2["diffusion"], "dirichlet", O2["boundary"])
        for dt in (None, 6.0):
            u = start.copy()
            solver.solve(u, c, f, dt_min=dt)
            u2 = start.copy()
            solver.solve(u2, c, f, dt_min=dt)
            assert np.array_equal(u, u2)
            results.append(u)
    assert np.array_equal(results[0], results[2]) and np.array_equal(results[1], results[3])


def test_no_diffusion_is_pointwise():
    shape = (10, 12)
    c = np.linspace(0.5, 2.0, 120).reshape(shape)
    f = np.linspace(0.0, 3.0, 120).reshape(shape)
    u = np.zeros(shape)
    SteadySolver(shape, DX, 0.0, "dirichlet", 38.0, tol=1e-14).solve(u, c, f)
    np.testing.assert_allclose(u, f / c, rtol=1e-13)


def test_fixed_cycles_and_failure(rng):
    shape = (50, 40)
    c, f, _ = tumour(shape, rng, radius=15)
    u = np.zeros(shape)
    solver = SteadySolver(shape, DX, O2["diffusion"], "dirichlet", 38.0, tol=1e-14)
    info = solver.solve(u, c, f, cycles=2)
    assert info.cycles == 2 and info.residual < 0.1 * info.initial_residual
    strict = SteadySolver(shape, DX, O2["diffusion"], "dirichlet", 38.0, tol=1e-15,
                          max_cycles=2)
    with pytest.raises(ConvergenceError):
        strict.solve(np.zeros(shape), c, f)
    lax = SteadySolver(shape, DX, O2["diffusion"], "dirichlet", 38.0, tol=1e-15,
                       max_cycles=2, on_failure="warn")
    with pytest.warns(RuntimeWarning, match="multigrid"):
        assert lax.solve(np.zeros(shape), c, f).cycles == 2


def test_rejects_bad_input():
    shape = (8, 9)
    solver = SteadySolver(shape, DX, 1e5)
    c, f = np.ones(shape), np.ones(shape)
    with pytest.raises(ValueError, match="c must be >= 0"):
        solver.solve(np.zeros(shape), -c, f)
    with pytest.raises(ValueError, match="shape"):
        solver.solve(np.zeros((9, 8)), c, f)
    with pytest.raises(TypeError):
        solver.solve(np.zeros((9, 8)).T, c, f)
    with pytest.raises(ValueError, match="singular"):
        SteadySolver(shape, DX, 1e5, "noflux").solve(np.zeros(shape), 0 * c, f)
    with pytest.raises(ValueError):
        SteadySolver((2, 9), DX, 1e5)


@pytest.mark.parametrize("shape", [(37, 53), (16, 16), (3, 21), (101, 99)])
def test_reused_solver_matches_fresh_solver(shape, rng):
    # a solver keeps d, 1/d, f and the rows of ||b||^2 of its last solve and only redoes
    # what changed; results must be bit-identical to a fresh solver's
    c, f, _ = tumour(shape, rng, radius=min(shape) / 3)
    reused = SteadySolver(shape, DX, O2["diffusion"], "dirichlet", O2["boundary"])
    u = np.zeros(shape)
    for step in range(6):
        if step == 2:
            c[shape[0] // 2, :3] = O2["decay"]  # a few cells change
        if step == 3:
            f[shape[0] // 2, -1] += 1.0  # f changes in a middle row (and so ||b|| after it)
        if step == 4:
            f[0, 0] = -0.0 if f[0, 0] == 0.0 else 0.0  # a bit pattern, not a value
        dt = 6.0 if step == 5 else None
        fresh = SteadySolver(shape, DX, O2["diffusion"], "dirichlet", O2["boundary"])
        expected = u.copy()
        info_fresh = fresh.solve(expected, c, f, dt_min=dt)
        info = reused.solve(u, c, f, dt_min=dt)
        assert np.array_equal(u, expected) and info == info_fresh


def test_unaligned_input_arrays(rng):
    # the solver copies u, c, f into its own aligned scratch; any C-contiguous u works
    shape = (45, 61)
    c, f, _ = tumour(shape, rng, radius=15)
    solver = SteadySolver(shape, DX, O2["diffusion"], "noflux", tol=1e-10)
    aligned = np.zeros(shape)
    solver.solve(aligned, c, f)
    store = np.zeros(shape[0] * shape[1] + 1)
    u = store[1:].reshape(shape)  # data 8 bytes off the allocation's alignment
    SteadySolver(shape, DX, O2["diffusion"], "noflux", tol=1e-10).solve(
        u, np.asfortranarray(c), f[:, ::-1][:, ::-1])
    assert np.array_equal(u, aligned)
    assert store[0] == 0.0
