"""Runs: one simulation (:mod:`.run`: ``run_one``), its snapshot format (:mod:`.snapshot`)
and provenance (:mod:`.provenance`), the check of an output folder before any work
(:mod:`.destination`), output written whole or not at all (:mod:`.output`) and what a
killed process leaves of it (:mod:`.temporaries`), and keyed, resumable ensembles of runs
(:mod:`.ensemble`) on a process pool or a Dask cluster (:mod:`.executors`)."""
