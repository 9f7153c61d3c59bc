"""Imported once by the fork server of :class:`sim.runs.executors.ProcessExecutor`'s pools
(``multiprocessing``'s forkserver preload), to warm it (:func:`sim.runs.warm.warm`): every
worker forked from it starts with a run's modules imported and numba's kernels loaded.

A process holding threads is unsafe to fork, so the warm-up starts none of neutrosim's or
numba's: its model steps on one thread (no helper threads for the fields; no kernel of
neutrosim uses numba's parallel threading layer), and numeric libraries are pinned to one
thread before they are imported, as in every worker. (pyarrow's allocator, jemalloc,
keeps a background thread from import on; jemalloc's own fork handlers make that safe.)
"""

import os

from ..config.threads import ONE_THREAD_ENV

os.environ.update(ONE_THREAD_ENV)

try:
    from .warm import WORKER_MODULES, warm

    warm(WORKER_MODULES, kernels=True)
except Exception:  # noqa: BLE001 - the fork server must start whatever happens here
    # not an error of any run: a worker then imports and loads what its run needs itself,
    # and reports there whatever fails
    pass
