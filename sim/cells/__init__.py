"""Agent types: each module holds a Mesa agent class (a thin view of its population arrays)
and that type's vectorised rules as short functions."""

from .endothelial import EndothelialCell
from .macrophage import Macrophage
from .neutrophil import Neutrophil
from .tumor import TumorCell

__all__ = ["TumorCell", "Neutrophil", "Macrophage", "EndothelialCell"]
