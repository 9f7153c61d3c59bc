"""What every agent type shares: Mesa agents as thin views of the population arrays."""

import numpy as np
from mesa.discrete_space import CellAgent

from ..params import FIELD_NAMES

__all__ = ["ArrayAgent", "field_signals"]


class ArrayAgent(CellAgent):
    """A Mesa agent whose state lives in ``model.populations[kind]`` row ``self.slot``.

    Position is Mesa's own ``agent.cell`` (kept in step with the arrays by the model);
    ``state`` reads the array, so the two can never disagree.
    """

    kind: str = ""
    STATES: tuple[str, ...] = ()

    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell
        self.slot = -1

    @property
    def state(self) -> str:
        return self.STATES[self.model.populations[self.kind]["state"][self.slot]]


def field_signals(model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Field concentrations at the given voxels, one array per field."""
    return {name: model.fields[name][x, y] for name in FIELD_NAMES}
