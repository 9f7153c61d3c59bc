"""Where ensemble runs execute: in this process, or in a pool of worker processes.

An executor has one job: call ``fn(item)`` for every item and yield ``(item, result,
error)`` as each finishes, in any order (``error`` is the exception ``fn`` raised, or
None). :func:`sim.runs.ensemble.run_ensemble` writes each result as it arrives,
so executors keep only a bounded window of runs in flight (memory stays flat however many
runs an ensemble has). Parallelism is across runs; each worker runs one simulation at a
time on one thread, so a 2-core machine runs 2 simulations at once and nothing is
oversubscribed.
"""

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from ..config.threads import ONE_THREAD_ENV, available_cores

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "default_workers"]

class Executor(Protocol):
    """Runs ``fn`` over items and yields ``(item, result, error)`` as each finishes."""

    workers: int

    def imap_unordered(self, fn: Callable[[Any], Any],
                       items: Iterable[Any]) -> Iterator[tuple[Any, Any, BaseException | None]]: ...

    def close(self, *, wait: bool = True) -> None: ...


def default_workers() -> int:
    """One worker per core this process may use."""
    return available_cores()


class SerialExecutor:
    """Runs every item in this process, one after the other (debugging, tiny ensembles)."""

    workers = 1

    def imap_unordered(self, fn, items):
        for item in items:
            try:
                yield item, fn(item), None
            except Exception as exc:
                yield item, None, exc

    def close(self, *, wait: bool = True) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: what the fork server imports before it forks any worker: the caller's main module (as
#: multiprocessing's default), then the warm-up
_PRELOAD = ["__main__", f"{__package__}.preload"]


def _init_worker() -> None:
    os.environ.update(ONE_THREAD_ENV)


class ProcessExecutor:
    """A pool of ``workers`` processes on this machine (default: one per core).

    Workers start by ``forkserver``: forking a process that already holds numba or
    pytest-xdist threads is unsafe. The fork server (one per process, shared by its pools)
    is warmed once when it starts (:mod:`sim.runs.preload`), so every worker, of this pool
    and of the next, starts with a run's modules imported and numba's kernels loaded.
    At most ``2 * workers`` items are in flight, so results do not pile up in memory.
    """

    def __init__(self, workers: int | None = None):
        self.workers = int(workers or default_workers())
        if self.workers < 1:
            raise ValueError(f"workers = {self.workers}: must be >= 1")
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def for_runs(cls, n_runs: int, workers: int | None = None) -> "ProcessExecutor":
        """A pool of ``workers`` (default: one per core), but no more workers than runs."""
        return cls(max(1, min(workers or default_workers(), n_runs)))

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(_PRELOAD)  # read when the fork server starts
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker)
        return self._pool

    def futures(self) -> ProcessPoolExecutor:
        """The pool as a :class:`concurrent.futures.Executor` (``submit``), for libraries
        that schedule their own tasks (pyabc's ConcurrentFutureSampler in ``neutrosim
        fit``): the same workers, started and warmed the same way."""
        return self._get_pool()

    def imap_unordered(self, fn, items):
        todo = iter(items)
        running: dict[Future, Any] = {}
        try:
            while True:
                while len(running) < 2 * self.workers:
                    item = next(todo, _END)
                    if item is _END:
                        break
                    running[self._get_pool().submit(fn, item)] = item
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    item = running.pop(fut)
                    exc = fut.exception()
                    broken |= isinstance(exc, BrokenProcessPool)
                    yield item, (None if exc else fut.result()), exc
                if broken:  # a worker died (e.g. killed for memory): every run in flight is lost
                    for fut, item in running.items():
                        yield item, None, BrokenProcessPool("worker process died during the run")
                    running.clear()
                    self.close(wait=False)  # a fresh pool serves the remaining items
        finally:
            for fut in running:
                fut.cancel()

    def close(self, *, wait: bool = True) -> None:
        """Stop the pool; queued items are dropped, running ones finish unless ``wait=False``."""
        if self._pool is not None:
            if not wait:  # after Ctrl-C or an error: stop running simulations now, so that
                # interpreter exit does not wait for them (Python < 3.14 has no public
                # ProcessPoolExecutor.terminate_workers, hence the private process table)
                for proc in list(getattr(self._pool, "_processes", {}).values()):
                    proc.terminate()
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # on an error or Ctrl-C do not wait for running simulations (workers got SIGINT too)
        self.close(wait=exc_type is None)


class DaskExecutor:
    """Runs on a Dask distributed cluster: an existing one (``address``, e.g.
    ``tcp://host:8786``, also HPC queues through dask-jobqueue) or a local one started
    here with ``local_workers`` single-threaded worker processes.

    Workers need ``neutrosim`` installed (same version). A task whose worker dies is
    rescheduled by Dask (up to its ``allowed-failures``, 3 by default) and an exception
    escaping a task is retried ``retries`` times; what still fails is yielded as the error.
    At most ``2 * workers`` runs are in flight, so results stream to disk.
    """

    def __init__(self, address: str | None = None, *, local_workers: int | None = None,
                 retries: int = 2, timeout_s: float = 30.0):
        from distributed import Client, LocalCluster

        self.retries = retries
        self._cluster = None
        if address:
            try:
                self.client = Client(address, timeout=timeout_s)
            except (OSError, TimeoutError) as exc:
                from ..config.errors import ParameterError

                raise ParameterError(f"--scheduler {address}: cannot connect ({exc})") from None
        else:
            self._cluster = LocalCluster(n_workers=local_workers or default_workers(),
                                         threads_per_worker=1, processes=True,
                                         dashboard_address=None, env=ONE_THREAD_ENV)
            self.client = Client(self._cluster)
        self.workers = max(1, sum(w.get("nthreads", 1) for w in
                                  self.client.scheduler_info()["workers"].values()))

    def imap_unordered(self, fn, items):
        from distributed import as_completed

        todo = iter(items)
        running = as_completed()
        owner = {}

        def submit() -> bool:
            item = next(todo, _END)
            if item is _END:
                return False
            fut = self.client.submit(fn, item, pure=False, retries=self.retries)
            owner[fut.key] = item
            running.add(fut)
            return True

        for _ in range(2 * self.workers):
            if not submit():
                break
        for fut in running:
            item = owner.pop(fut.key)
            exc = fut.exception() if fut.status == "error" else None
            if fut.status == "cancelled":
                exc = RuntimeError("cancelled by the Dask scheduler")
            yield item, (fut.result() if exc is None else None), exc
            fut.release()
            submit()

    def close(self, *, wait: bool = True) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_END = object()
