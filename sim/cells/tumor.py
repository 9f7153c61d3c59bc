"""Tumor cells: oxygen-dependent state, necrosis, apoptosis, division into free space, invasion.

States: 0 proliferating (cycling), 1 hypoxic (quiescent, secretes the pro-angiogenic
factor), 2 necrotic (dead, keeps its voxel), 3 apoptotic (dying: keeps its voxel until
``clear_min``, then is removed and frees it). Viable means proliferating or hypoxic.
Equations in docs/model.md.
"""

import numpy as np

from ..config.units import MIN_PER_HOUR
from .common import Signals, field_signals, uniforms_for
from .lattice import box_sum, move_to_free, place_near

#: the population's name in ``model.populations``
KIND = "tumor"
PROLIFERATING, HYPOXIC, NECROTIC, APOPTOTIC = 0, 1, 2, 3
STATES = ("proliferating", "hypoxic", "necrotic", "apoptotic")
#: ``divided_min``: time of the cell's last division (birth), for the Ki67-like index;
#: ``clear_min``: when an apoptotic cell is removed, min (read only in apoptosis)
COLUMNS = {"divided_min": np.float64, "clear_min": np.float64}


def viable(t) -> np.ndarray:
    """Per row of the tumor population ``t``: alive (proliferating or hypoxic)."""
    return t["state"] <= HYPOXIC


def start_apoptosis(m, rows: np.ndarray) -> None:
    """Viable ``rows`` enter apoptosis now: they keep their voxel for
    ``tumor.apoptosis_duration_h``, then :func:`clear_apoptotic` removes them."""
    t = m.tumor
    t["state"][rows] = APOPTOTIC
    t["clear_min"][rows] = m.time_min + m.p.tumor.apoptosis_duration_h * MIN_PER_HOUR


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
    return viable(t) & (neighbours <= m.p.tumor.invasive_neighbours_max)


def update_oxygen_state(m, sig) -> None:
    """Viable cells are hypoxic below the threshold, proliferating above it."""
    state = m.tumor["state"]
    low = sig["oxygen"] < m.p.tumor.hypoxic_threshold_mmHg
    np.copyto(state, np.where(low, HYPOXIC, PROLIFERATING), where=state <= HYPOXIC,
              casting="unsafe")
    sig["hypoxic"] = (state == HYPOXIC).astype(float)


def necrosis(m, sig) -> None:
    """Viable cells die (become necrotic) at the oxygen-dependent necrosis rate."""
    t = m.tumor
    rate = m.behaviour("tumor", "necrosis", sig, t.n)
    dies = viable(t) & (m.rng.random(t.n) < m.scales.prob(rate))
    t["state"][dies] = NECROTIC


def apoptosis(m, sig) -> None:
    """Viable cells enter apoptosis at the apoptosis rate (no draws while it is 0)."""
    t = m.tumor
    enters = m.occurs("tumor", "apoptosis", sig, t.n)
    if enters is not None:
        start_apoptosis(m, np.flatnonzero(viable(t) & enters))


def clear_apoptotic(m) -> None:
    """Apoptotic cells whose time is up are removed, freeing their voxels."""
    t = m.tumor
    done = np.flatnonzero((t["state"] == APOPTOTIC) & (t["clear_min"] <= m.time_min))
    if done.size:
        m.discard(t, done)


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
    movers = np.flatnonzero(viable(t) & (m.rng.random(t.n) < p_move))
    if movers.size:
        old_x, old_y = t["x"][movers], t["y"][movers]
        move_to_free(m.rng.permutation(movers), t["x"], t["y"], t.at, m.endothelial.at,
                     uniforms_for(m, movers, t.n))
        m.moved(t, old_x, old_y, movers)


def secrete(m, sig, sources) -> None:
    """Add viable tumor cells' secretion and oxygen uptake to this step's field sources."""
    t = m.tumor
    alive = np.flatnonzero(viable(t))
    x, y = t["x"][alive], t["y"][alive]
    sub = sig.subset(alive)
    for field in ("proangiogenic", "chemoattractant", "tumor_signal"):
        sources.add_release(field, x, y, m.behaviour("tumor", f"secrete_{field}", sub, x.size))
    sources.add_uptake("oxygen", x, y, m.p.oxygen.tumor_uptake_per_min)


def step(m, sources) -> None:
    """One model step of all tumor cells: clear the apoptotic cells whose time is up, sense,
    change state, die (necrosis, apoptosis), secrete, move, divide."""
    clear_apoptotic(m)
    sig = signals(m)
    update_oxygen_state(m, sig)
    necrosis(m, sig)
    apoptosis(m, sig)
    secrete(m, sig, sources)
    migrate(m, sig)
    divide(m, sig)
