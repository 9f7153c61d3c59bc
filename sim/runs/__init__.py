"""Runs: one simulation (``run_one``), its output folder, and keyed ensembles of runs on a
process pool or a Dask cluster."""
