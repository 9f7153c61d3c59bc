"""Experiments built on the ensemble runner: the depletion experiment and parameter sweeps,
with the statistics, sensitivity analysis and report they use, and what every experiment
shares: its results folder (:mod:`.folders`), replicate seeds and executor (:mod:`.execution`)."""
