"""Tumor cells: oxygen-dependent state, necrosis, division into free space, invasion.

States: 0 proliferating (cycling), 1 hypoxic (quiescent, secretes the pro-angiogenic
factor), 2 necrotic (dead, keeps its voxel). Equations in docs/model.md.
"""

import numpy as np

from .common import Signals, field_signals, uniforms_for
from .lattice import box_sum, move_to_free, place_near

#: the population's name in ``model.populations``
KIND = "tumor"
PROLIFERATING, HYPOXIC, NECROTIC = 0, 1, 2
STATES = ("proliferating", "hypoxic", "necrotic")
#: ``divided_min``: time of the cell's last division (birth), for the Ki67-like index
COLUMNS = {"divided_min": np.float64}


def signals(m) -> Signals:
    """Everything a tumor cell can sense (see sim.config.rules.SIGNALS['tumor'])."""
    t, nb = m.tumor, m.neutrophils
    x, y, n = t["x"], t["y"], t.n

    def bound_neutrophils():  # fewer under a contact blockade through binding, not again here
        bound = nb["state"] == 2
        return np.bincount(nb["partner"][bound], minlength=n)[:n].astype(float)

    return Signals({
        **field_signals(m, x, y),
        "bound_neutrophils": bound_neutrophils,
        "neutrophil_contact": lambda: box_sum(nb.at >= 0)[x, y] * m.treatment.contact,
        "hypoxic": lambda: (t["state"] == HYPOXIC).astype(float),
    })


def invasive(m) -> np.ndarray:
    """Per row: a viable cell that has left the main mass (at most
    ``tumor.invasive_neighbours_max`` tumor cells among its 8 neighbours)."""
    t = m.tumor
    neighbours = box_sum(t.at >= 0)[t["x"], t["y"]] - 1
    return (t["state"] != NECROTIC) & (neighbours <= m.p.tumor.invasive_neighbours_max)


def update_oxygen_state(m, sig) -> None:
    """Viable cells are hypoxic below the threshold, proliferating above it."""
    state = m.tumor["state"]
    low = sig["oxygen"] < m.p.tumor.hypoxic_threshold_mmHg
    np.copyto(state, np.where(low, HYPOXIC, PROLIFERATING), where=state != NECROTIC,
              casting="unsafe")
    sig["hypoxic"] = (state == HYPOXIC).astype(float)


def necrosis(m, sig) -> None:
    """Viable cells die (become necrotic) at the oxygen-dependent necrosis rate."""
    t = m.tumor
    rate = m.behaviour("tumor", "necrosis", sig, t.n)
    dies = (t["state"] != NECROTIC) & (m.rng.random(t.n) < m.scales.prob(rate))
    t["state"][dies] = NECROTIC


def divide(m, sig) -> None:
    """Proliferating cells divide into the nearest free voxel (no tumor, no vessel) within reach."""
    t = m.tumor
    rate = m.behaviour("tumor", "division", sig, t.n)
    u = m.rng.random(t.n)
    parents = np.flatnonzero((t["state"] == PROLIFERATING) & (u < m.scales.prob(rate)))
    if parents.size == 0:
        return
    order = m.rng.permutation(parents)
    cx = np.full(t.n, -1, np.int64)
    cy = np.full(t.n, -1, np.int64)
    reach = max(int(round(m.scales.voxels(m.p.tumor.push_distance_um))), 1)
    place_near(order, t["x"], t["y"], t.at, m.endothelial.at, False,
               uniforms_for(m, parents, t.n), cx, cy, reach)
    ok = parents[cx[parents] >= 0]
    t["divided_min"][ok] = m.time_min
    m.spawn(KIND, cx[ok], cy[ok], state=PROLIFERATING, divided_min=m.time_min)


def migrate(m, sig) -> None:
    """Viable cells move to a free neighbour with probability speed * dt / dx."""
    t = m.tumor
    speed = m.behaviour("tumor", "migration_speed", sig, t.n)
    p_move = np.minimum(m.scales.voxels_per_step(speed), 1.0)
    movers = np.flatnonzero((t["state"] != NECROTIC) & (m.rng.random(t.n) < p_move))
    if movers.size:
        old_x, old_y = t["x"][movers], t["y"][movers]
        move_to_free(m.rng.permutation(movers), t["x"], t["y"], t.at, m.endothelial.at,
                     uniforms_for(m, movers, t.n))
        m.moved(t, old_x, old_y, movers)


def secrete(m, sig, sources) -> None:
    """Add viable tumor cells' secretion and oxygen uptake to this step's field sources."""
    t = m.tumor
    viable = np.flatnonzero(t["state"] != NECROTIC)
    x, y = t["x"][viable], t["y"][viable]
    sub = sig.subset(viable)
    for field in ("proangiogenic", "chemoattractant", "tumor_signal"):
        sources.add_release(field, x, y, m.behaviour("tumor", f"secrete_{field}", sub, x.size))
    sources.add_uptake("oxygen", x, y, m.p.oxygen.tumor_uptake_per_min)


def step(m, sources) -> None:
    """One model step of all tumor cells: sense, change state, die, secrete, move, divide."""
    sig = signals(m)
    update_oxygen_state(m, sig)
    necrosis(m, sig)
    secrete(m, sig, sources)
    migrate(m, sig)
    divide(m, sig)
