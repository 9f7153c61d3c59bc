"""The cell types, one module each: its states, its array columns, and its rules as short
vectorised functions of the model (``step`` runs them in order). Equations in docs/model.md.

:mod:`.common` holds what the types share and :mod:`.lattice` the compiled kernels for
agents on the lattice (walks, placement, neighbour counts).
"""

from . import endothelial, macrophage, neutrophil, tumor

__all__ = ["CELL_TYPES", "tumor", "neutrophil", "macrophage", "endothelial"]

#: the cell types, in the order the model builds its populations and outputs list them
CELL_TYPES = (tumor, neutrophil, macrophage, endothelial)
