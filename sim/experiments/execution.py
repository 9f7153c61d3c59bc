"""How an experiment's runs are seeded and where they execute, alike for every experiment.

Replicate r uses seed ``seed + r`` in every arm and at every design point (common random
numbers: differences between arms and points are not seed noise). The runs go to the
caller's executor, or to a process pool the experiment owns for the time of its runs.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from ..runs.executors import Executor, ProcessExecutor

__all__ = ["replicate_seeds", "executor_for"]


def replicate_seeds(seed: int, replicates: int) -> list[int]:
    """The seed of every replicate: replicate r uses ``seed + r``."""
    return [seed + r for r in range(replicates)]


@contextmanager
def executor_for(n_runs: int, executor: Executor | None = None,
                 workers: int | None = None) -> Iterator[Executor]:
    """``executor`` as given (its owner closes it), or else a process pool of ``workers``
    (default one per core, no more than ``n_runs``), closed on leaving: at once, without
    waiting for running simulations, on Ctrl-C or an error."""
    if executor is not None:
        yield executor
        return
    with ProcessExecutor.for_runs(n_runs, workers) as pool:
        yield pool
