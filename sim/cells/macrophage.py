"""Macrophages: resident cells activated by the tumor signal; activated ones recruit neutrophils.

States: 0 resting, 1 activated (secretes the neutrophil chemoattractant: the study's
tumor -> macrophage -> neutrophil recruitment chain). Equations in docs/model.md.
"""

import numpy as np

from .common import Signals, crawl, field_signals
from .lattice import box_sum

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
        "tumor_contact": lambda: box_sum(viable_at >= 0)[x, y],
        "activated": lambda: (mc["state"] == ACTIVATED).astype(float),
    })


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
    """One model step of all macrophages (``viable_at``: viable tumor cell per voxel)."""
    sig = signals(m, viable_at)
    switch(m, sig)
    secrete(m, sig, sources)
    move(m, sig)
