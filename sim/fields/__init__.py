"""Secreted factors as 2D grid fields: reaction plus LOD backward-Euler diffusion.

:mod:`.transient` is the public API (:class:`FieldSpec`, :class:`FieldSolver`);
:mod:`.lod` holds the numba kernels and :mod:`.reference` a plain numpy version of the
same scheme that the tests and the benchmark hold the kernels to.
"""

from .transient import FieldSolver, FieldSpec

__all__ = ["FieldSolver", "FieldSpec"]
