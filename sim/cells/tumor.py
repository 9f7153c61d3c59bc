"""Tumor cells: oxygen-dependent state, necrosis, apoptosis, division into free space, invasion.

States: 0 normoxic, 1 hypoxic (below the hypoxic threshold: secretes the pro-angiogenic
factor), 2 necrotic (dead, keeps its voxel), 3 apoptotic (dying: keeps its voxel until
``clear_min``, then is removed and frees it). Viable means normoxic or hypoxic.

Cycle (PhysiCell's Ki67 basic model): a viable cell is quiescent (Ki67-negative) or in
cycle (Ki67-positive, until ``cycle_end_min``). Quiescent cells with room to divide enter
the cycle at the rule-given rate scaled by oxygen; a cell divides when its Ki67-positive
phase ends. Equations in docs/model.md.
"""

import numpy as np

from ..config.units import MIN_PER_HOUR
from .common import Signals, field_signals, minus_ones, uniforms_for
from .lattice import count_around, free_within, move_to_free, place_near

#: the population's name in ``model.populations``
KIND = "tumor"
NORMOXIC, HYPOXIC, NECROTIC, APOPTOTIC = 0, 1, 2, 3
STATES = ("normoxic", "hypoxic", "necrotic", "apoptotic")
#: ``cycle_end_min`` of a quiescent cell
QUIESCENT = np.inf
#: ``cycle_end_min``: end of the Ki67-positive phase, when the cell divides (QUIESCENT, the
#: start of new rows, while quiescent), min; ``clear_min``: when an apoptotic cell is
#: removed, min
COLUMNS = {"cycle_end_min": (np.float64, QUIESCENT), "clear_min": np.float64}


def viable(t) -> np.ndarray:
    """Per row of the tumor population ``t``: alive (normoxic or hypoxic)."""
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
        "neutrophil_contact": lambda: count_around(nb.at, x, y) * m.treatment.contact,
        "hypoxic": lambda: (t["state"] == HYPOXIC).astype(float),
    })


def division_reach(m) -> int:
    """Chebyshev distance (voxels) within which a dividing cell places its daughter."""
    return max(int(round(m.scales.voxels(m.p.tumor.push_distance_um))), 1)


def oxygen_factor(m, oxygen: np.ndarray) -> np.ndarray:
    """PhysiCell's oxygen scaling of the cycle rate (1): 0 at or below
    ``tumor.proliferation_threshold_mmHg``, 1 at or above
    ``tumor.proliferation_saturation_mmHg``, linear between."""
    lo, hi = m.p.tumor.proliferation_threshold_mmHg, m.p.tumor.proliferation_saturation_mmHg
    return np.clip((oxygen - lo) / (hi - lo), 0.0, 1.0)


def in_cycle(t) -> np.ndarray:
    """Per row of the tumor population ``t``: viable and in its Ki67-positive phase."""
    return viable(t) & (t["cycle_end_min"] < QUIESCENT)


def room_to_divide(m, rows: np.ndarray) -> np.ndarray:
    """Per listed row: a free voxel (no tumor cell, no vessel) lies within
    :func:`division_reach` (without one the cell is contact-inhibited)."""
    t = m.tumor
    return free_within(rows, t["x"], t["y"], t.at, m.endothelial.at, division_reach(m))


def ki67_phase_min(m) -> float:
    """Duration of the Ki67-positive phase (S, G2, M and the post-mitotic part), min."""
    return m.p.tumor.ki67_positive_h * MIN_PER_HOUR


def invasive(m) -> np.ndarray:
    """Per row: a viable cell that has left the main mass (at most
    ``tumor.invasive_neighbours_max`` tumor cells among its 8 neighbours)."""
    t = m.tumor
    neighbours = count_around(t.at, t["x"], t["y"]) - 1
    return viable(t) & (neighbours <= m.p.tumor.invasive_neighbours_max)


def update_oxygen_state(m, sig) -> None:
    """Viable cells are hypoxic below the threshold, normoxic above it."""
    state = m.tumor["state"]
    low = sig["oxygen"] < m.p.tumor.hypoxic_threshold_mmHg
    np.copyto(state, np.where(low, HYPOXIC, NORMOXIC), where=state <= HYPOXIC,
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


def enter_cycle(m, sig) -> None:
    """Quiescent viable cells with room to divide enter the cycle (Ki67-positive for
    ``tumor.ki67_positive_h``) at the rule-given rate times the oxygen factor."""
    t = m.tumor
    rate = m.behaviour("tumor", "division", sig, t.n) * oxygen_factor(m, sig["oxygen"])
    u = m.rng.random(t.n)
    quiescent = viable(t) & (t["cycle_end_min"] == QUIESCENT)
    drawn = np.flatnonzero(quiescent & (u < m.scales.prob(rate)))
    enters = drawn[room_to_divide(m, drawn)]
    t["cycle_end_min"][enters] = m.time_min + ki67_phase_min(m)


def divide(m) -> None:
    """Viable cells whose Ki67-positive phase has ended divide into the nearest free voxel
    (no tumor, no vessel) within reach; parent and daughter are quiescent after it. A cell
    with no free voxel left does not divide and returns to quiescence."""
    t = m.tumor
    parents = np.flatnonzero(viable(t) & (t["cycle_end_min"] <= m.time_min))
    if parents.size == 0:
        return
    t["cycle_end_min"][parents] = QUIESCENT
    order = m.rng.permutation(parents)
    cx = minus_ones(t.n)
    cy = minus_ones(t.n)
    place_near(order, t["x"], t["y"], t.at, m.endothelial.at, False,
               uniforms_for(m, parents, t.n), cx, cy, division_reach(m))
    ok = parents[cx[parents] >= 0]
    m.spawn(KIND, cx[ok], cy[ok], state=t["state"][ok])


def migrate(m, sig) -> None:
    """Viable cells move to a free neighbour with probability speed * dt / dx."""
    t = m.tumor
    speed = m.behaviour("tumor", "migration_speed", sig, t.n)
    p_move = np.minimum(m.scales.voxels_per_step(speed), 1.0)
    movers = np.flatnonzero(viable(t) & (m.rng.random(t.n) < p_move))
    if movers.size:
        move_to_free(m.rng.permutation(movers), t["x"], t["y"], t.at, m.endothelial.at,
                     uniforms_for(m, movers, t.n))


def oxygen_uptake_per_voxel(m) -> float:
    """Oxygen uptake rate (1/min) of a voxel holding one viable tumor cell: the per-cell
    rate ``oxygen.tumor_uptake_per_min`` times the cell's share of the voxel's volume,
    ``tumor.volume_um3 / voxel_um^3`` (BioFVM's deposition; a 2D voxel is a cube one
    voxel deep)."""
    return m.p.oxygen.tumor_uptake_per_min * m.p.tumor.volume_um3 / m.p.domain.voxel_um ** 3


def secrete(m, sig, sources) -> None:
    """Add viable tumor cells' secretion and oxygen uptake to this step's field sources."""
    t = m.tumor
    alive = np.flatnonzero(viable(t))
    x, y = t["x"][alive], t["y"][alive]
    sub = sig.subset(alive)
    for field in ("proangiogenic", "chemoattractant", "tumor_signal"):
        sources.add_release(field, x, y, m.behaviour("tumor", f"secrete_{field}", sub, x.size))
    sources.add_uptake("oxygen", x, y, oxygen_uptake_per_voxel(m))


def step(m, sources) -> None:
    """One model step of all tumor cells: clear the apoptotic cells whose time is up, sense,
    change state, die (necrosis, apoptosis), secrete, move, enter the cycle, divide."""
    clear_apoptotic(m)
    sig = signals(m)
    update_oxygen_state(m, sig)
    necrosis(m, sig)
    apoptosis(m, sig)
    secrete(m, sig, sources)
    migrate(m, sig)
    enter_cycle(m, sig)
    divide(m)
