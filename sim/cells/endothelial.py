"""Endothelial cells: host vessels (stalk) and sprouting tip cells that climb the VEGF gradient.

States: 0 stalk (vessel; supplies oxygen), 1 tip. A tip moves one voxel at a time up the
pro-angiogenic gradient, only into voxels where the factor is at or above threshold, and
leaves a stalk cell behind; it stops (becomes stalk) where the factor falls below
threshold, when no neighbour above threshold is free, or when it meets another vessel
(anastomosis). Equations in docs/model.md.
"""

import numpy as np

from .common import Signals, field_signals
from .lattice import DX, DY, box_sum

#: the population's name in ``model.populations``
KIND = "endothelial"
STALK, TIP = 0, 1
STATES = ("stalk", "tip")
COLUMNS = {"prev_x": np.int32, "prev_y": np.int32, "moves": np.int32, "born_min": np.float64}
#: a tip may anastomose only after this many moves (so it does not fuse with its parent)
MIN_MOVES_BEFORE_FUSION = 3


def signals(m, rows) -> Signals:
    """Everything the given endothelial rows can sense (see sim.config.rules.SIGNALS)."""
    e = m.endothelial
    x, y = e["x"][rows], e["y"][rows]
    return Signals({
        **field_signals(m, x, y),
        "neutrophil_contact": lambda: box_sum(m.neutrophils.at >= 0)[x, y],
    })


def _best_free(m, x, y, u_bias, u_pick):
    """Neighbour of (x, y) without vessel and with VEGF at or above the sprouting threshold:
    up the VEGF gradient (prob. bias) or at random; None if there is none.

    A tip never steps below threshold, so new vessel appears only where the factor is
    above it (a tip that could step only there stops instead).
    """
    vegf = m.fields["proangiogenic"]
    threshold = m.p.endothelial.sprout_threshold_ng_ml
    nx, ny = vegf.shape
    free = [(x + dx, y + dy) for dx, dy in zip(DX, DY)
            if 0 <= x + dx < nx and 0 <= y + dy < ny and m.endothelial.at[x + dx, y + dy] < 0
            and vegf[x + dx, y + dy] >= threshold]
    if not free:
        return None
    if u_bias < m.p.endothelial.tip_gradient_bias:
        return max(free, key=lambda v: vegf[v])
    return free[min(int(u_pick * len(free)), len(free) - 1)]


def sprout(m) -> None:
    """Stalk cells above the VEGF threshold sprout a tip, away from other tips."""
    e = m.endothelial
    stalk = np.flatnonzero(e["state"] == STALK)
    if stalk.size == 0:
        return
    vegf = m.fields["proangiogenic"][e["x"][stalk], e["y"][stalk]]
    stalk = stalk[vegf >= m.p.endothelial.sprout_threshold_ng_ml]
    if stalk.size == 0:
        return
    rate = m.behaviour("endothelial", "sprouting", signals(m, stalk), stalk.size)
    cand = stalk[m.rng.random(stalk.size) < m.scales.prob(rate)]
    if cand.size == 0:
        return
    r = int(np.ceil(m.scales.voxels(m.p.endothelial.tip_spacing_um)))
    tips = np.zeros(e.at.shape, dtype=bool)
    tips[e["x"][e["state"] == TIP], e["y"][e["state"] == TIP]] = True
    u = m.rng.random((cand.size, 2))
    for k, i in enumerate(m.rng.permutation(cand)):
        x, y = int(e["x"][i]), int(e["y"][i])
        if tips[max(x - r, 0): x + r + 1, max(y - r, 0): y + r + 1].any():
            continue
        target = _best_free(m, x, y, u[k, 0], u[k, 1])
        if target is None:
            continue
        m.spawn(KIND, [target[0]], [target[1]], state=TIP, prev_x=x, prev_y=y,
                born_min=m.time_min)
        tips[target] = True


def _touches_other_vessel(m, x, y, px, py) -> bool:
    nx, ny = m.endothelial.at.shape
    for dx, dy in zip(DX, DY):
        tx, ty = x + dx, y + dy
        if (tx, ty) != (px, py) and 0 <= tx < nx and 0 <= ty < ny and m.endothelial.at[tx, ty] >= 0:
            # a neighbour that is not the tip's own trail
            if max(abs(tx - px), abs(ty - py)) > 1:
                return True
    return False


def extend(m) -> None:
    """Tips advance one voxel with probability speed * dt / dx, leaving stalk behind."""
    e = m.endothelial
    tips = np.flatnonzero(e["state"] == TIP)
    if tips.size == 0:
        return
    speed = m.behaviour("endothelial", "tip_speed", signals(m, tips), tips.size)
    go = m.scales.voxels_per_step(speed)
    u = m.rng.random((tips.size, 3))
    threshold = m.p.endothelial.sprout_threshold_ng_ml
    vegf = m.fields["proangiogenic"]
    for k, i in enumerate(tips):
        x, y = int(e["x"][i]), int(e["y"][i])
        if vegf[x, y] < threshold:
            e["state"][i] = STALK
            continue
        if u[k, 0] >= go[k]:
            continue
        target = _best_free(m, x, y, u[k, 1], u[k, 2])
        if target is None:
            e["state"][i] = STALK
            continue
        e["state"][i] = STALK  # the old voxel keeps a stalk cell; a new tip moves on
        new = m.spawn(KIND, [target[0]], [target[1]], state=TIP, prev_x=x, prev_y=y,
                      moves=e["moves"][i] + 1, born_min=m.time_min)[0]
        if e["moves"][new] >= MIN_MOVES_BEFORE_FUSION and _touches_other_vessel(m, *target, x, y):
            e["state"][new] = STALK  # anastomosis


def absorb(m, sources) -> None:
    """Vessels supply oxygen and take up the pro-angiogenic factor."""
    e = m.endothelial
    x, y = e["x"], e["y"]
    sources.set_supply(x, y, m.p.oxygen.vessel_supply_per_min)
    sources.add_uptake("proangiogenic", x, y, m.p.proangiogenic.endothelial_uptake_per_min)


def step(m, sources) -> None:
    """One model step of the vasculature."""
    absorb(m, sources)
    sprout(m)
    extend(m)
