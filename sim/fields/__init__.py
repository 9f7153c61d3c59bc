"""The secreted factors and oxygen as 2D grid fields, and how they advance in time.

:class:`FieldSystem` (:mod:`.system`) is what a model uses: the field arrays, the sources
the cells write (:mod:`.sources`) and the solvers. Below it: :mod:`.transient` (fields
advanced by LOD backward-Euler sub-steps; :class:`FieldSpec`, :class:`FieldSolver`) on the
compiled kernels of :mod:`.lod`, :mod:`.multigrid` (quasi-steady and implicit solves),
:mod:`.stepper` (a step's solves on a few threads, :mod:`.threads`), :mod:`.simd` (the
8-wide vector intrinsics the kernels use) and :mod:`.reference` (a plain numpy version of
the LOD scheme that the tests hold the kernels to).
"""

from .sources import Sources
from .system import FieldSystem
from .transient import FieldSolver, FieldSpec

__all__ = ["FieldSystem", "Sources", "FieldSolver", "FieldSpec"]
