"""Endothelial cells: host vessels (stalk) and sprouting tip cells that climb the VEGF gradient.

States: 0 stalk (vessel), 1 tip. A tip moves one voxel at a time up the pro-angiogenic
gradient, only into voxels where the factor is at or above threshold, and leaves a stalk
cell behind; it stops (becomes stalk) where the factor falls below threshold, when no
neighbour above threshold is free, or when it meets another vessel (anastomosis).

Perfusion (``endothelial.perfusion``): with "immediate" every vessel carries blood and
supplies oxygen from the moment it is laid. With "anastomosis" a sprout, every cell a tip
has laid since it left its parent vessel, is a blind-ended tube and carries no blood
until it closes a loop through perfused vessel (its tip meets a vessel): only perfused
vessel supplies oxygen, and an unperfused cell whose VEGF stays below the sprouting
threshold for ``endothelial.regression_after_h`` regresses (is removed). The vessels of
t=0 (host vessels, and intratumoral segments that in the 2D section connect to the
circulation out of plane) are perfused. Equations in docs/model.md.
"""

import numba as nb
import numpy as np

from ..config.units import MIN_PER_HOUR
from .common import Signals, field_signals
from .lattice import DX, DY, count_around, gather

#: the population's name in ``model.populations``
KIND = "endothelial"
STALK, TIP = 0, 1
STATES = ("stalk", "tip")
#: prev_x, prev_y: the voxel a tip came from; moves: a tip's moves since it sprouted;
#: born_min: when the cell was laid (min); perfused: whether it carries blood (new rows
#: start perfused: sprouting and extension say otherwise explicitly); sprout: its
#: sprout's id in :class:`Sprouts` (0: the vessels of t=0); fed_min: the last time (min)
#: its voxel's VEGF was at or above the sprouting threshold (or it was perfused, or laid),
#: so ``time - fed_min`` is how long it has been starved
COLUMNS = {"prev_x": np.int32, "prev_y": np.int32, "moves": np.int32, "born_min": np.float64,
           "perfused": (np.bool_, True), "sprout": np.int32, "fed_min": np.float64}
#: a tip may anastomose only after this many moves (so it does not fuse with its parent)
MIN_MOVES_BEFORE_FUSION = 3


class Sprouts:
    """The sprouts laid since t=0: each one's parent sprout and whether it carries blood.

    A sprout is every cell one tip laid since it left the stalk it sprouted from (its
    parent, whose sprout is ``parent[id]``); sprout 0 stands for the vessels of t=0, which
    are perfused. The sprouts form a tree rooted at 0. A fusion of sprouts ``a`` and
    ``b`` (the tip of one touches the other) closes the loop ``a -> ... -> c <- ... <- b``
    through their lowest common ancestor ``c``; blood flows around it when ``c`` is
    perfused (the loop's two ends sit at different points of a perfused vessel), and then
    every sprout on the loop below ``c`` is perfused. A loop hanging off an unperfused
    sprout carries nothing yet: the fusion is kept in ``pending`` and perfuses its loop
    once ``c`` is perfused. So a perfused sprout's ancestors are perfused too.
    Simplification: the tree is kept per sprout, not per cell (a sprout cut in two by
    regression still counts as attached to its parent).
    """

    def __init__(self):
        self.parent: list[int] = [0]
        self.perfused: list[bool] = [True]
        self.pending: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.parent)

    def state(self) -> dict[str, np.ndarray]:
        """The tree as arrays: ``parent`` (int64 per sprout), ``perfused`` (bool per
        sprout), ``pending`` (int64 (fusions, 2), in order)."""
        return {"parent": np.array(self.parent, np.int64),
                "perfused": np.array(self.perfused, np.bool_),
                "pending": np.array(self.pending, np.int64).reshape(-1, 2)}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """The tree of ``state`` (as :meth:`state` gives it)."""
        self.parent = [int(v) for v in state["parent"]]
        self.perfused = [bool(v) for v in state["perfused"]]
        self.pending = [(int(a), int(b)) for a, b in np.asarray(state["pending"]).reshape(-1, 2)]

    def new(self, parent: int, perfused: bool) -> int:
        """A new sprout off sprout ``parent``; returns its id."""
        self.parent.append(int(parent))
        self.perfused.append(bool(perfused))
        return len(self.parent) - 1

    def _up(self, s: int) -> list[int]:
        """``s`` and its ancestors, up to sprout 0."""
        chain = [s]
        while chain[-1] != 0:
            chain.append(self.parent[chain[-1]])
        return chain

    def loop(self, a: int, b: int) -> tuple[list[int], int]:
        """The sprouts on the tree path between ``a`` and ``b`` (without their lowest common
        ancestor), and that ancestor."""
        up_a = self._up(a)
        depth = {s: k for k, s in enumerate(up_a)}
        up_b = [b]
        while up_b[-1] not in depth:
            up_b.append(self.parent[up_b[-1]])
        common = up_b[-1]
        return up_a[:depth[common]] + up_b[:-1], common

    def fuse(self, a: int, b: int) -> list[int]:
        """Sprouts ``a`` and ``b`` fused: the sprouts that now carry blood (maybe none)."""
        if a == b:  # a loop within one blind sprout carries nothing
            return []
        self.pending.append((a, b))
        return self.settle()

    def settle(self) -> list[int]:
        """Perfuse the loop of every pending fusion whose common ancestor is perfused, until
        none changes; return the sprouts perfused."""
        lit: list[int] = []
        changed = True
        while changed:
            changed = False
            for pair in list(self.pending):
                path, common = self.loop(*pair)
                if self.perfused[common]:
                    self.pending.remove(pair)
                    new = [s for s in path if not self.perfused[s]]
                    for s in new:
                        self.perfused[s] = True
                    lit += new
                    changed = changed or bool(new)
        return lit


def anastomosis(m) -> bool:
    """Whether new vessels carry blood only once connected (``endothelial.perfusion``)."""
    return m.p.endothelial.perfusion == "anastomosis"


def perfused(m) -> np.ndarray:
    """Per endothelial cell, whether it carries blood (all of them with "immediate")."""
    e = m.endothelial
    if not anastomosis(m):
        return np.ones(e.n, dtype=bool)
    return e["perfused"].copy()


def signals(m, rows) -> Signals:
    """Everything the given endothelial rows can sense (see sim.config.rules.SIGNALS)."""
    e = m.endothelial
    x, y = e["x"][rows], e["y"][rows]
    return Signals({
        **field_signals(m, x, y),
        "neutrophil_contact": lambda: count_around(m.neutrophils.at, x, y),
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
    vegf = gather(m.fields["proangiogenic"], e["x"][stalk], e["y"][stalk])
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
        lit = not anastomosis(m)  # a new sprout is blind-ended until it connects
        sid = m.sprouts.new(e["sprout"][i], lit)
        m.spawn(KIND, [target[0]], [target[1]], state=TIP, prev_x=x, prev_y=y,
                born_min=m.time_min, perfused=lit, sprout=sid, fed_min=m.time_min)
        tips[target] = True


def _touched_vessels(m, x, y, px, py) -> list[int]:
    """Rows of the vessel cells next to (x, y) that are not the trail of the tip that came
    from (px, py): neither that voxel nor one next to it."""
    at = m.endothelial.at
    nx, ny = at.shape
    rows = []
    for dx, dy in zip(DX, DY):
        tx, ty = x + dx, y + dy
        if (tx, ty) != (px, py) and 0 <= tx < nx and 0 <= ty < ny and at[tx, ty] >= 0:
            if max(abs(tx - px), abs(ty - py)) > 1:
                rows.append(int(at[tx, ty]))
    return rows


def _connect(m, sid: int, rows: list[int]) -> None:
    """The tip of sprout ``sid`` fused with the vessel cells ``rows``: perfuse every sprout
    whose loop now carries blood (:class:`Sprouts`)."""
    e = m.endothelial
    lit = []
    for other in sorted({int(e["sprout"][r]) for r in rows}):
        lit += m.sprouts.fuse(sid, other)
    if lit:
        e["perfused"][np.isin(e["sprout"], lit)] = True


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
        sid, lit = int(e["sprout"][i]), True
        if anastomosis(m):
            lit = False
            if m.sprouts.perfused[sid]:  # past a loop that carries blood: a new blind end
                sid = m.sprouts.new(sid, False)
        new = m.spawn(KIND, [target[0]], [target[1]], state=TIP, prev_x=x, prev_y=y,
                      moves=e["moves"][i] + 1, born_min=m.time_min, perfused=lit,
                      sprout=sid, fed_min=m.time_min)[0]
        if e["moves"][new] < MIN_MOVES_BEFORE_FUSION:
            continue
        touched = _touched_vessels(m, *target, x, y)
        if touched:
            e["state"][new] = STALK  # anastomosis
            if not lit:
                _connect(m, sid, touched)


def absorb(m, sources) -> None:
    """Perfused vessels supply oxygen; every vessel takes up the pro-angiogenic factor
    (receptor binding needs no flow)."""
    e = m.endothelial
    x, y = e["x"], e["y"]
    if anastomosis(m):
        sources.set_supply(x, y, m.p.oxygen.vessel_supply_per_min, where=e["perfused"])
    else:
        sources.set_supply(x, y, m.p.oxygen.vessel_supply_per_min)
    sources.add_uptake("proangiogenic", x, y, m.p.proangiogenic.endothelial_uptake_per_min)


def regress(m) -> None:
    """Unperfused cells starved of VEGF for ``endothelial.regression_after_h`` are removed.

    A cell is fed while its voxel's VEGF is at or above ``endothelial.sprout_threshold_ng_ml``
    or it is perfused (flow keeps a vessel alive); ``fed_min`` is the last time it was, or
    its birth. At ``time - fed_min >= regression_after_h`` it regresses. Nothing happens
    with ``regression_after_h = 0`` or with perfusion "immediate" (every vessel perfused).
    Draws no random numbers.
    """
    after_min = m.p.endothelial.regression_after_h * MIN_PER_HOUR
    e = m.endothelial
    if after_min <= 0 or not anastomosis(m) or e.n == 0:
        return
    starved = _starved(e["fed_min"], e["perfused"], m.fields["proangiogenic"], e["x"], e["y"],
                       m.p.endothelial.sprout_threshold_ng_ml, m.time_min, after_min - 1e-9)
    if starved.size:
        m.discard(e, starved)


@nb.njit(cache=True)
def _starved(fed_min, perfused, vegf, x, y, threshold, now, after_min):
    """Rows fed now (perfused, or VEGF at their voxel at or above ``threshold``) get
    ``fed_min = now``; returns the rows starved for at least ``after_min``."""
    out = np.empty(fed_min.size, np.int64)
    k = 0
    for i in range(fed_min.size):
        if perfused[i] or vegf[x[i], y[i]] >= threshold:
            fed_min[i] = now
        if now - fed_min[i] >= after_min:
            out[k] = i
            k += 1
    return out[:k]


def step(m, sources) -> None:
    """One model step of the vasculature: regression, supply and uptake, sprouting,
    extension."""
    regress(m)
    absorb(m, sources)
    sprout(m)
    extend(m)
