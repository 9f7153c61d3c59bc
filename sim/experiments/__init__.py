"""Experiments built on the ensemble runner: the depletion experiment and parameter sweeps,
with the statistics, sensitivity analysis and report they use."""
