"""Single-cell data to model parameters (``neutrosim calibrate``)."""
