"""The scenario's intervention as it acts on a running model.

Nothing happens before ``intervention.start_day``. Within the step that reaches it the
once-off parts act (a fraction of neutrophils or macrophages removed, a fraction of
neutrophil-tumor bonds broken), and from then on the ongoing parts: neutrophil
recruitment, chemotaxis and contact signalling, and macrophage recruitment, each scaled
by a factor (docs/model.md, "Interventions").
"""

from dataclasses import dataclass

import numpy as np

from ..cells import neutrophil
from ..config.units import MIN_PER_DAY

__all__ = ["Treatment"]


@dataclass
class Treatment:
    """The intervention state of one model.

    Attributes:
        started: the start day has been reached (the once-off parts have acted).
        recruitment: factor on neutrophil extravasation, (1 - depletion)(1 - CXCR2 inhibition).
        chemotaxis: factor on the neutrophils' chemotactic bias, 1 - CXCR2 inhibition.
        contact: 1 - contact blockade, applied once along each contact path: on the rate
            at which neutrophils bind tumor cells (fewer bonds then mean fewer bound
            neutrophils signalling to the tumor, not scaled again) and on the signal tumor
            cells take from neutrophils next to them (``neutrophil_contact``).
        macrophage_recruitment: factor on the entry of monocyte-derived macrophages at
            vessels, 1 - macrophage depletion: a continuing anti-CSF1R- or
            clodronate-like depletion also removes the newcomers (it acts only where
            macrophage recruitment is switched on, ``macrophage.extravasation_per_min``
            or its rule).
    """

    started: bool = False
    recruitment: float = 1.0
    chemotaxis: float = 1.0
    contact: float = 1.0
    macrophage_recruitment: float = 1.0

    def apply(self, m) -> None:
        """From the start day, the intervention of ``m.p.intervention`` acts: the once-off
        parts once, then the factors."""
        iv = m.p.intervention
        if self.started or m.time_min < iv.start_day * MIN_PER_DAY:
            return
        self.started = True
        nb, mc = m.neutrophils, m.macrophages
        if iv.neutrophil_depletion > 0:
            m.discard(nb, np.flatnonzero(m.rng.random(nb.n) < iv.neutrophil_depletion))
        if iv.macrophage_depletion > 0:
            m.discard(mc, np.flatnonzero(m.rng.random(mc.n) < iv.macrophage_depletion))
        if iv.contact_blockade > 0:
            bound = np.flatnonzero(nb["state"] == neutrophil.BOUND)
            freed = bound[m.rng.random(bound.size) < iv.contact_blockade]
            nb["state"][freed] = neutrophil.ACTIVATED
            nb["partner"][freed] = -1
        self.recruitment = (1 - iv.neutrophil_depletion) * (1 - iv.cxcr2_inhibition)
        self.chemotaxis = 1 - iv.cxcr2_inhibition
        self.contact = 1 - iv.contact_blockade
        self.macrophage_recruitment = 1 - iv.macrophage_depletion
