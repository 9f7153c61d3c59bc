"""Macrophages: cells activated by the tumor signal; activated ones recruit neutrophils.

States: 0 resting, 1 activated (secretes the neutrophil chemoattractant: the study's
tumor -> macrophage -> neutrophil recruitment chain). Turnover: each macrophage dies at
the rate of the behaviour ``death`` (an exponential lifespan), and monocyte-derived
macrophages enter from the blood at perfused vessel voxels at the rate of
``extravasation``, which the tumor signal raises (CSF1/CCL2-like recruitment). Both are
events drawn through ``model.occurs``, so with their rates at 0 nothing is drawn and the
resident population of t=0 is all there is. Equations in docs/model.md.
"""

import numpy as np

from . import endothelial
from .common import Signals, crawl, enter_at_vessels, field_signals
from .lattice import count_around

#: the population's name in ``model.populations``
KIND = "macrophages"
RESTING, ACTIVATED = 0, 1
STATES = ("resting", "activated")
COLUMNS = {"heading": np.int8}


def signals(m, viable_at) -> Signals:
    """Everything a macrophage can sense (see sim.config.rules.SIGNALS['macrophage'])."""
    mc = m.macrophages
    x, y = mc["x"], mc["y"]
    return Signals({
        **field_signals(m, x, y),
        "tumor_contact": lambda: count_around(viable_at, x, y),
        "activated": lambda: (mc["state"] == ACTIVATED).astype(float),
    })


def die(m, viable_at) -> None:
    """Each macrophage dies at the rules' ``death`` rate (1/min) and is removed.

    A rate rather than a lifespan drawn at entry (as neutrophils have): a rate needs no
    draws for the population of t=0, so with the rate at 0 the random stream is as
    without turnover; the lifespan is then exponential, mean 1 / rate.
    """
    mc = m.macrophages
    dies = m.occurs("macrophage", "death", signals(m, viable_at), mc.n)
    if dies is not None:
        m.discard(mc, np.flatnonzero(dies))


def recruit(m, viable_at) -> None:
    """Monocyte-derived macrophages enter the tissue at perfused vessel voxels, resting.

    Each perfused vessel voxel releases one at the rules' ``extravasation`` rate (1/min per vessel
    voxel; the tumor signal raises it) times the treatment's macrophage-recruitment
    factor, into its own voxel or a free neighbour (no immune cell there), as neutrophils
    enter (:func:`sim.cells.neutrophil.recruit`). Nothing is drawn while the rate is 0.
    """
    e = m.endothelial
    n = e.n
    if n == 0:
        return
    x, y = e["x"], e["y"]
    sig = Signals({**field_signals(m, x, y),
                   "tumor_contact": lambda: count_around(viable_at, x, y),
                   "activated": lambda: np.zeros(n)})
    enters = m.occurs("macrophage", "extravasation", sig, n,
                      factor=m.treatment.macrophage_recruitment * endothelial.perfused(m))
    if enters is None:
        return
    src = np.flatnonzero(enters)
    if src.size == 0:
        return
    ok, px, py = enter_at_vessels(m, src, m.macrophages.at, m.neutrophils.at)
    m.macrophages_recruited += ok.size
    m.spawn(KIND, px, py, state=RESTING, heading=m.rng.integers(0, 8, ok.size))


def switch(m, sig) -> None:
    """Resting cells activate and activated cells relax back, at rule-given rates."""
    mc = m.macrophages
    n = mc.n
    state = mc["state"]
    up = m.scales.prob(m.behaviour("macrophage", "activation", sig, n))
    down = m.scales.prob(m.behaviour("macrophage", "deactivation", sig, n))
    u = m.rng.random(n)
    on = (state == RESTING) & (u < up)
    off = (state == ACTIVATED) & (u < down)
    state[on] = ACTIVATED
    state[off] = RESTING
    sig["activated"] = (state == ACTIVATED).astype(float)


def move(m, sig) -> None:
    """Slow biased persistent walk up the tumor signal."""
    mc = m.macrophages
    if mc.n == 0:
        return
    speed = m.behaviour("macrophage", "migration_speed", sig, mc.n)
    bias = m.behaviour("macrophage", "chemotaxis_bias", sig, mc.n)
    crawl(m, mc, speed, bias, m.p.macrophage.persistence_min, m.fields["tumor_signal"],
          m.neutrophils.at)


def secrete(m, sig, sources) -> None:
    mc = m.macrophages
    x, y = mc["x"], mc["y"]
    sources.add_release("chemoattractant", x, y,
                        m.behaviour("macrophage", "secrete_chemoattractant", sig, mc.n))
    sources.add_uptake("oxygen", x, y, m.p.oxygen.immune_uptake_per_min)


def step(m, sources, viable_at) -> None:
    """One model step of all macrophages (``viable_at``: viable tumor cell per voxel):
    die, sense, switch state, secrete, move, and new ones enter at vessels."""
    die(m, viable_at)
    sig = signals(m, viable_at)
    switch(m, sig)
    secrete(m, sig, sources)
    move(m, sig)
    recruit(m, viable_at)
