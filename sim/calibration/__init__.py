"""Calibration from single-cell RNA-seq: reading UMI counts (``counts``) and deriving the
model's parameters from them (``neutrosim calibrate``).

Nothing is imported here eagerly: the readers need anndata and h5py, which are optional.
"""
