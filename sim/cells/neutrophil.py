"""Neutrophils: recruitment at vessels, chemotaxis, killing and binding tumor cells,
activation (education), secretion.

States: 0 naive, 1 activated, 2 bound (to the tumor cell in column ``partner``; bound
implies activated). ``partner`` is a row of the tumor population, kept valid when tumor
cells are removed (:func:`follow_partners`). Each carries the time it dies
(``death_min``), drawn from a gamma lifespan at entry and redrawn, longer, on
activation. Equations in docs/model.md.
"""

import numpy as np

from ..config.units import MIN_PER_DAY
from .common import Signals, crawl, enter_at_vessels, field_signals
from .lattice import count_around, pick_around
from . import endothelial, tumor

#: the population's name in ``model.populations``
KIND = "neutrophils"
NAIVE, ACTIVATED, BOUND = 0, 1, 2
STATES = ("naive", "activated", "bound")
COLUMNS = {"heading": np.int8, "partner": np.int32, "death_min": np.float64}


def draw_lifespan_min(m, n: int, mean_day: float) -> np.ndarray:
    """Gamma-distributed lifespans (min) with the given mean and shape from params."""
    k = m.p.neutrophil.lifespan_shape
    return m.rng.gamma(k, mean_day * MIN_PER_DAY / k, size=n)


def viable_tumor_map(m) -> np.ndarray:
    """Row of the viable tumor cell in each voxel, -1 elsewhere."""
    t = m.tumor
    at = t.at.copy()
    dead = ~tumor.viable(t)
    at[t["x"][dead], t["y"][dead]] = -1
    return at


def signals(m, viable_at) -> Signals:
    """Everything a neutrophil can sense (see sim.config.rules.SIGNALS['neutrophil'])."""
    nb = m.neutrophils
    x, y, state = nb["x"], nb["y"], nb["state"]
    return Signals({
        **field_signals(m, x, y),
        "tumor_contact": lambda: count_around(viable_at, x, y),
        "activated": lambda: (state != NAIVE).astype(float),
        "bound": lambda: (state == BOUND).astype(float),
    })


def die(m) -> None:
    """Neutrophils whose lifespan has run out are removed."""
    nb = m.neutrophils
    m.discard(nb, np.flatnonzero(nb["death_min"] <= m.time_min))


def follow_partners(m, renumber: np.ndarray) -> None:
    """After tumor rows were removed (``renumber``: old row -> new row, -1 removed): bound
    neutrophils follow their partner's new row; those whose partner is gone are released."""
    nb = m.neutrophils
    bound = np.flatnonzero(nb["state"] == BOUND)
    new = renumber[nb["partner"][bound]]
    gone = bound[new < 0]
    nb["partner"][bound] = new
    nb["state"][gone] = ACTIVATED
    nb["partner"][gone] = -1


def release_bonds(m, sig) -> None:
    """Bonds end at the unbinding rate, or when the partner died or is out of reach."""
    nb = m.neutrophils
    bound = np.flatnonzero(nb["state"] == BOUND)
    if bound.size == 0:
        return
    p = nb["partner"][bound]
    t = m.tumor
    lost = ~tumor.viable(t)[p] | (np.maximum(
        np.abs(t["x"][p] - nb["x"][bound]), np.abs(t["y"][p] - nb["y"][bound])) > 1)
    sub = sig.subset(bound)
    rate = m.behaviour("neutrophil", "unbinding", sub, bound.size)
    let_go = lost | (m.rng.random(bound.size) < m.scales.prob(rate))
    nb["state"][bound[let_go]] = ACTIVATED
    nb["partner"][bound[let_go]] = -1


def _pick_partner(m, rows, viable_at) -> np.ndarray:
    """A uniformly chosen viable tumor cell in each row's 3x3 neighbourhood (-1 if none)."""
    nb = m.neutrophils
    return pick_around(viable_at, nb["x"], nb["y"], rows, m.rng.random((rows.size, 9)))


def binding_rate(m, sig) -> np.ndarray:
    """Per neutrophil, the rate (1/min) at which it binds a tumor cell: the rules' value
    times the contact blockade's factor, the one place the blockade acts on bonds."""
    return m.behaviour("neutrophil", "binding", sig, m.neutrophils.n) * m.treatment.contact


def kill(m, sig, viable_at) -> None:
    """Neutrophils with a viable tumor cell in their 3x3 box kill one (chosen uniformly)
    at the kill rate: it enters apoptosis, and leaves ``viable_at``. Skipped, with no
    draws, while the rate is 0 everywhere."""
    kills = m.occurs("neutrophil", "kill", sig, m.neutrophils.n)
    if kills is None:
        return
    killers = np.flatnonzero(kills)
    if killers.size == 0:
        return
    victims = np.unique(_pick_partner(m, killers, viable_at))
    victims = victims[victims >= 0]
    tumor.start_apoptosis(m, victims)
    t = m.tumor
    viable_at[t["x"][victims], t["y"][victims]] = -1
    m.killed += victims.size


def bind_and_activate(m, sig, viable_at) -> None:
    """Naive cells activate; unbound cells in contact bind a tumor cell (and activate)."""
    nb = m.neutrophils
    n = nb.n
    state = nb["state"]
    act = m.behaviour("neutrophil", "activation", sig, n)
    newly = (state == NAIVE) & (m.rng.random(n) < m.scales.prob(act))
    bind = binding_rate(m, sig)
    binders = np.flatnonzero((state != BOUND) & (m.rng.random(n) < m.scales.prob(bind)))
    partner = _pick_partner(m, binders, viable_at) if binders.size else binders
    binders, partner = binders[partner >= 0], partner[partner >= 0]
    newly[binders] |= state[binders] == NAIVE
    rows = np.flatnonzero(newly)
    nb["death_min"][rows] = m.time_min + draw_lifespan_min(
        m, rows.size, m.p.neutrophil.lifespan_activated_day)
    state[rows] = ACTIVATED
    state[binders] = BOUND
    nb["partner"][binders] = partner


def move(m, sig) -> None:
    """Unbound neutrophils crawl: biased persistent walk up the chemokine, several moves a step."""
    nb = m.neutrophils
    if nb.n == 0:
        return
    speed = m.behaviour("neutrophil", "migration_speed", sig, nb.n)
    bias = m.behaviour("neutrophil", "chemotaxis_bias", sig, nb.n) * m.treatment.chemotaxis
    crawl(m, nb, speed, bias, m.p.neutrophil.persistence_min, m.fields["chemoattractant"],
          m.macrophages.at, still=nb["state"] == BOUND)


def recruit(m) -> None:
    """Extravasation at perfused vessel voxels (neutrophils arrive with the blood), set by
    local chemokine and the systemic supply."""
    e = m.endothelial
    n = e.n
    if n == 0:
        return
    zeros = np.zeros(n)
    sig = Signals({**field_signals(m, e["x"], e["y"]), "tumor_contact": lambda: zeros,
                   "activated": lambda: zeros, "bound": lambda: zeros})
    rate = m.behaviour("neutrophil", "extravasation", sig, n)
    rate = rate * m.p.neutrophil.circulating_supply * m.treatment.recruitment * endothelial.perfused(m)
    src = np.flatnonzero(m.rng.random(n) < m.scales.prob(rate))
    if src.size == 0:
        return
    ok, px, py = enter_at_vessels(m, src, m.neutrophils.at, m.macrophages.at)
    m.recruited += ok.size
    m.spawn(KIND, px, py, state=NAIVE, partner=-1,
            heading=m.rng.integers(0, 8, ok.size),
            death_min=m.time_min + draw_lifespan_min(m, ok.size, m.p.neutrophil.lifespan_naive_day))


def secrete(m, sig, sources) -> None:
    """Add neutrophils' secretion and uptake to this step's field sources."""
    nb = m.neutrophils
    x, y = nb["x"], nb["y"]
    for field in ("proangiogenic", "proinvasive"):
        sources.add_release(field, x, y, m.behaviour("neutrophil", f"secrete_{field}", sig, nb.n))
    sources.add_uptake("chemoattractant", x, y, m.p.chemoattractant.neutrophil_uptake_per_min)
    sources.add_uptake("oxygen", x, y, m.p.oxygen.immune_uptake_per_min)


def _refresh_states(m, sig) -> None:
    state = m.neutrophils["state"]
    sig["activated"] = (state != NAIVE).astype(float)
    sig["bound"] = (state == BOUND).astype(float)


def step(m, sources, viable_at) -> None:
    """One model step of all neutrophils (``viable_at``: see :func:`viable_tumor_map`)."""
    die(m)
    sig = signals(m, viable_at)
    release_bonds(m, sig)
    _refresh_states(m, sig)
    kill(m, sig, viable_at)
    bind_and_activate(m, sig, viable_at)
    _refresh_states(m, sig)
    secrete(m, sig, sources)
    move(m, sig)
    recruit(m)
