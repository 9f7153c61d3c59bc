"""The tissue at t=0: a tumor mass, host vessels, resident macrophages (and, if asked,
macrophages inside the tumor), tumor neutrophils.

Everything is drawn from the model's generator (``model.rng``), so one seed gives one
tissue.
"""

import numpy as np

from ..cells import endothelial, macrophage, neutrophil, tumor
from ..cells.lattice import DX, DY

__all__ = ["build", "tumor_disc", "host_vessel_paths"]


def tumor_disc(nx: int, ny: int, radius_vox: float) -> np.ndarray:
    """Boolean mask of the voxels within ``radius_vox`` of the grid centre."""
    x = np.arange(nx)[:, None] - (nx - 1) / 2
    y = np.arange(ny)[None, :] - (ny - 1) / 2
    return x * x + y * y <= radius_vox * radius_vox


def host_vessel_paths(rng: np.random.Generator, nx: int, ny: int, count: int, wiggle: float):
    """Voxels of ``count`` vessels crossing the window edge to edge, alternately along x and y.

    Each path steps one voxel along its axis and, with probability ``wiggle``, one voxel
    sideways (staying connected in the Moore sense).
    """
    voxels = set()
    for k in range(count):
        along_x = k % 2 == 0
        length, width = (nx, ny) if along_x else (ny, nx)
        side = int(rng.integers(width // 10, width - width // 10))
        steps = rng.random((length, 2))
        for a in range(length):
            if steps[a, 0] < wiggle:
                side = int(np.clip(side + (1 if steps[a, 1] < 0.5 else -1), 0, width - 1))
            voxels.add((a, side) if along_x else (side, a))
    return sorted(voxels)


def tumor_vessel_paths(rng: np.random.Generator, inside: np.ndarray, n_voxels: int,
                       length: int, wiggle: float):
    """About ``n_voxels`` voxels of straight-ish segments of ``length`` voxels inside a mask.

    Each segment starts at a random voxel of ``inside`` and runs in one of 8 directions,
    turning by 45 degrees with probability ``wiggle`` per voxel, until it leaves the mask.
    """
    voxels: set = set()
    starts = np.flatnonzero(inside.ravel())
    nx, ny = inside.shape
    while len(voxels) < n_voxels and starts.size:
        x, y = np.unravel_index(rng.choice(starts), inside.shape)
        d = int(rng.integers(0, 8))
        turns = rng.random((length, 2))
        for a in range(length):
            voxels.add((int(x), int(y)))
            if turns[a, 0] < wiggle:
                d = (d + (1 if turns[a, 1] < 0.5 else -1)) % 8
            x, y = x + DX[d], y + DY[d]
            if not (0 <= x < nx and 0 <= y < ny and inside[x, y]):
                break
    return sorted(voxels)


def build(m) -> None:
    """Place the initial cells of model ``m`` from its parameters."""
    p, rng, s = m.p, m.rng, m.scales
    nx, ny = p.domain.nx, p.domain.ny
    disc = tumor_disc(nx, ny, s.voxels(p.initial.tumor_radius_um))
    occupied = disc & (rng.random((nx, ny)) < p.initial.tumor_packing)
    tx, ty = np.nonzero(occupied)
    m.spawn(tumor.KIND, tx, ty, state=tumor.NORMOXIC)  # quiescent until start_cycles

    paths = set(host_vessel_paths(rng, nx, ny, p.initial.host_vessels, p.initial.vessel_wiggle))
    n_inside = int(round(p.initial.tumor_vessel_density_per_mm2 * disc.sum() * s.voxel_area_mm2))
    length = max(int(round(s.voxels(p.initial.tumor_vessel_length_um))), 1)
    paths = sorted(paths | set(tumor_vessel_paths(rng, disc, n_inside, length,
                                                  p.initial.vessel_wiggle)))
    if paths:
        vx, vy = np.array(paths).T
        # perfused: in the 2D section they connect to the circulation in or out of plane
        m.spawn(endothelial.KIND, vx, vy, state=endothelial.STALK, born_min=-np.inf,
                perfused=True)

    n_mac = rng.poisson(s.per_voxel(p.initial.macrophages_per_mm2) * nx * ny)
    flat = rng.choice(nx * ny, size=min(n_mac, nx * ny), replace=False)
    mx, my = np.unravel_index(flat, (nx, ny))
    m.spawn(macrophage.KIND, mx, my, state=macrophage.RESTING,
            heading=rng.integers(0, 8, mx.size))

    if p.initial.macrophages_per_mm2_tumor > 0:  # (no draws at 0: the stream is as without)
        free = np.flatnonzero((disc & (m.macrophages.at < 0)).ravel())
        n_tam = min(rng.poisson(s.per_voxel(p.initial.macrophages_per_mm2_tumor) * disc.sum()),
                    free.size)
        tx_, ty_ = np.unravel_index(rng.choice(free, size=n_tam, replace=False), (nx, ny))
        m.spawn(macrophage.KIND, tx_, ty_, state=macrophage.RESTING,
                heading=rng.integers(0, 8, n_tam))

    inside = np.flatnonzero((disc & (m.macrophages.at < 0)).ravel())
    n_neu = min(rng.poisson(s.per_voxel(p.initial.neutrophils_per_mm2_tumor) * disc.sum()), inside.size)
    nx_, ny_ = np.unravel_index(rng.choice(inside, size=n_neu, replace=False), (nx, ny))
    m.spawn(neutrophil.KIND, nx_, ny_, state=neutrophil.NAIVE, partner=-1,
            heading=rng.integers(0, 8, n_neu),
            death_min=neutrophil.draw_lifespan_min(m, n_neu, p.neutrophil.lifespan_naive_day))


def start_cycles(m) -> None:
    """Put the tumor cells of t=0 into the cycle as an asynchronous population at the
    steady state of the base cycle in the settled oxygen field: a cell with room enters
    with probability ``T / (1 / (r0 f(O2)) + T)`` (``T`` the Ki67-positive phase, ``r0``
    the base entry rate, ``f`` the oxygen factor), its phase ending uniformly within ``T``;
    one without room stays quiescent. Called after the fields' warm-up."""
    t, rng = m.tumor, m.rng
    phase = tumor.ki67_phase_min(m)
    rate = m.p.tumor.cycle_rate_per_min * tumor.oxygen_factor(m, m.fields["oxygen"][t["x"], t["y"]])
    in_cycle = phase * rate / (1.0 + phase * rate)  # = T / (1 / rate + T), 0 at rate 0
    drawn = np.flatnonzero(tumor.viable(t) & (rng.random(t.n) < in_cycle))
    cycling = drawn[tumor.room_to_divide(m, drawn)]
    t["cycle_end_min"][cycling] = m.time_min + rng.random(cycling.size) * phase
