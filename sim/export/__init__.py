"""Export of a run's output folder for single-cell and spatial tools (``neutrosim export``).

:mod:`.anndata` turns a run folder (``manifest.json`` and ``final_state.npz``) into an
AnnData with one row per agent, in the conventions of PhysiCell's pcdl and of squidpy;
:mod:`.scrna` draws a virtual single-cell RNA-seq experiment from it (counts per gene from
``params/calibration/expression.toml``, PIC-seq-like neutrophil-tumor doublets), which
``neutrosim calibrate`` reads; :mod:`.command` is the subcommand. anndata is needed only
here, so nothing is imported eagerly. Formats in docs/export.md.
"""
