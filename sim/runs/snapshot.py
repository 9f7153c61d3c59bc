"""The snapshot format: a model's state as plain arrays.

:func:`final_state` gives every field, and every agent's kind, position and state, with the
names of the kinds (:data:`AGENT_KINDS`) and of their states, which vessel cells carry blood,
the time and the voxel size; which tumor cells are in cycle (Ki67-positive) and which tumor
cell each bound neutrophil holds (:mod:`sim.export` reads both).
A run stores it as ``final_state.npz``, an ensemble as ``final/<key>.npz``; the figures
(:mod:`sim.plots.state`) and the browser view draw it.
"""

import numpy as np

from ..cells import CELL_TYPES, endothelial, neutrophil, tumor
from ..config.field_registry import FIELD_NAMES

__all__ = ["AGENT_KINDS", "final_state"]

#: the populations, in the order ``agent_kind`` numbers them
AGENT_KINDS = tuple(c.KIND for c in CELL_TYPES)


def final_state(model) -> dict[str, np.ndarray]:
    """Every field and every agent's position, type and state, as plain arrays;
    ``vessel_perfused``: per endothelial agent (in their order), whether it carries blood;
    ``tumor_in_cycle``: per tumor agent, viable and Ki67-positive; ``neutrophil_partner``:
    per neutrophil agent, the index in the agent arrays of the tumor cell it is bound to
    (-1 if unbound)."""
    out: dict[str, np.ndarray] = {f"field_{name}": model.fields[name].copy() for name in FIELD_NAMES}
    kinds, xs, ys, states = [], [], [], []
    for k, kind in enumerate(AGENT_KINDS):
        pop = model.populations[kind]
        kinds.append(np.full(pop.n, k, np.int8))
        xs.append(pop["x"].copy())
        ys.append(pop["y"].copy())
        states.append(pop["state"].copy())
    out["agent_kind"] = np.concatenate(kinds)
    out["agent_x"] = np.concatenate(xs)
    out["agent_y"] = np.concatenate(ys)
    out["agent_state"] = np.concatenate(states)
    out["invasive"] = tumor.invasive(model)
    out["vessel_perfused"] = endothelial.perfused(model)
    out["tumor_in_cycle"] = tumor.in_cycle(model.populations[tumor.KIND])
    out["neutrophil_partner"] = neutrophil_partners(model)
    out["kind_names"] = np.array(AGENT_KINDS)
    out["state_names"] = np.array([",".join(c.STATES) for c in CELL_TYPES])
    out["time_h"] = np.array(model.time_h)
    out["voxel_um"] = np.array(model.p.domain.voxel_um)
    return out



def neutrophil_partners(model) -> np.ndarray:
    """Per neutrophil (int64): the index of its bound tumor cell in the concatenated agent
    arrays of :func:`final_state` (populations in :data:`AGENT_KINDS` order), -1 if unbound."""
    nb = model.populations[neutrophil.KIND]
    tumor_start = sum(model.populations[k].n for k in AGENT_KINDS[:AGENT_KINDS.index(tumor.KIND)])
    bound = nb["state"] == neutrophil.BOUND
    return np.where(bound, nb["partner"].astype(np.int64) + tumor_start, -1)
