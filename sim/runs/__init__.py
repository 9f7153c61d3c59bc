"""Runs: one simulation (:mod:`.run`: ``run_one``), its snapshot format (:mod:`.snapshot`)
and provenance (:mod:`.provenance`), output written whole or not at all (:mod:`.output`),
and keyed, resumable ensembles of runs (:mod:`.ensemble`) on a process pool or a Dask
cluster (:mod:`.executors`)."""
