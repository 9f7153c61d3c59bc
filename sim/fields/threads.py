"""Independent field solves of one model step, shared among a few threads.

The fields of a step do not depend on each other (each reads its own sources), and the
compiled solvers release the GIL (numba ``nogil``), so on two cores the oxygen solve and
the LOD fields run side by side. Which thread runs which field does not change any
result: every task is the same deterministic kernel on its own data, whatever the thread.

Why not ``concurrent.futures.ThreadPoolExecutor``: its submit and result cost tens of
microseconds each, against about a millisecond of field work a step on the default grid;
a pair of locks per persistent thread costs a few.
"""

from __future__ import annotations

import os
import statistics
import threading
import weakref
from collections.abc import Callable, Sequence

from ..config.threads import check_threads

__all__ = ["TaskPool", "ThreadChooser"]


class _Worker:
    """A daemon thread that runs one function each time it is started."""

    def __init__(self, index: int):
        self.index = index
        self._go = threading.Lock()
        self._go.acquire()
        self._done = threading.Lock()
        self._done.acquire()
        self._fn: Callable[[int], None] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"neutrosim-fields-{index}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            fn = self._fn
            if fn is None:  # stop
                return
            try:
                fn(self.index)
            except BaseException as exc:  # handed to the caller by join()
                self.error = exc
            self._fn = None
            self._done.release()

    def start(self, fn: Callable[[int], None]) -> None:
        self.error = None
        self._fn = fn
        self._go.release()

    def join(self) -> BaseException | None:
        self._done.acquire()
        return self.error

    def stop(self) -> None:
        self._fn = None
        self._go.release()


def _stop_all(workers: list[_Worker]) -> None:
    for w in workers:
        w.stop()
    workers.clear()


class TaskPool:
    """Runs lists of tasks on the calling thread plus ``threads - 1`` helper threads.

    A task is ``task(k)``: ``k`` is the index of the thread running it (0: the caller), so a
    task can use that thread's own scratch. Threads take tasks in list order as they
    become free, so list the longest first. The helpers start on first use, stop when the
    pool is garbage-collected, and are started again in a forked child (threads do not
    survive a fork). One ``run`` (or ``start`` ... ``join``) at a time: a call from another
    thread waits for the one in progress (so no two tasks ever share a thread index); a
    task must not call ``run``.
    """

    def __init__(self, threads: int = 1):
        self.threads = check_threads(threads)
        self._workers: list[_Worker] = []  # started on first use
        self._pid = os.getpid()
        self._busy = threading.Lock()
        self._running = None  # (drain, helpers) between start() and join()
        self._finalizer = weakref.finalize(self, _stop_all, self._workers)

    def _helpers(self) -> list[_Worker]:
        if not self._workers:
            self._workers.extend(_Worker(k) for k in range(1, self.threads))
        return self._workers

    def run(self, tasks: Sequence[Callable[[int], None]]) -> None:
        """Run every task once; return when all are done. If tasks raise, the first
        exception (in list order of the threads: caller first) is raised after every
        thread has stopped working."""
        self.start(tasks)
        self.join()

    def start(self, tasks: Sequence[Callable[[int], None]]) -> None:
        """Start the tasks on the helper threads and return at once; :meth:`join` (which
        must follow, on the same thread) has the caller take its share and waits for the
        rest. Between the two the caller is free for other work."""
        if self._pid != os.getpid():  # a forked child: the parent's threads and lock are
            self._workers.clear()    # not ours (only the forking thread exists here)
            self._busy = threading.Lock()
            self._pid = os.getpid()
        self._busy.acquire()
        queue = list(reversed(tasks))  # pop() from the end: the first task first

        def drain(k: int) -> None:
            while True:
                try:
                    task = queue.pop()
                except IndexError:
                    return
                try:
                    task(k)
                except BaseException:
                    queue.clear()  # the other threads finish what they hold and stop
                    raise

        n = min(self.threads, len(tasks))
        try:
            helpers = self._helpers()[: n - 1] if n > 1 else []
        except BaseException:  # (a thread could not be started)
            self._busy.release()
            raise
        self._running = (drain, helpers)
        for w in helpers:
            w.start(drain)

    def join(self) -> None:
        """Take tasks on the calling thread until none are left, then wait for the helpers;
        the first exception (caller first, then helpers in order) is raised after every
        thread has stopped working."""
        drain, helpers = self._running
        self._running = None
        error = None
        try:
            drain(0)
        except BaseException as exc:
            error = exc
        for w in helpers:
            e = w.join()
            error = error or e
        self._busy.release()
        if error is not None:
            raise error


class ThreadChooser:
    """How many threads solve each step's fields: all of a pool's, or the caller alone,
    chosen by timing steps.

    On an idle machine the helper threads make a step faster; when other processes hold
    the cores, a helper may wait for one while the caller waits for the helper, and the
    step can be slower than on one thread. Timing steps on a loaded machine is noisy
    (a step is either run or preempted), so the choice is a sequential test:

    * a *trial* runs rounds of four ``block``-step blocks, all threads, one, one, all (so a
      steady drift of the machine's speed weighs on both alike), and after each round from
      the second on compares the two settings' mean block times; when they differ by more
      than ``z`` standard errors (Welch), the faster wins; after ``max_rounds`` rounds
      without a clear difference, the one with the lower mean (a wrong pick then costs
      little, the difference being small);
    * a *hold* then runs the winner for ``hold`` steps, doubling up to ``max_hold`` each time
      the same setting wins again and falling back to ``hold`` when the other one wins.

    On a quiet machine the cost is the trial blocks on one thread (two rounds: 2 * block
    steps per trial, rarer as holds grow). Under load a trial resolves a large loss (a
    helper thread that gets no core) but not one of a few percent, block times being that
    noisy (docs/numerics.md, "Threads"): there the pick is the lower mean.

    Call :meth:`next` at the start of every step (it returns the threads for the step) and
    :meth:`took` with the step's wall time when it ends, so that time spent between steps
    (another model stepped in turn, a pause) is not counted. Which thread solves which
    field never changes a result, so neither does the choice.

    Args:
        threads: the pool's threads (1: always 1, no timing).
        block, hold, max_hold: steps (see above); max_rounds: rounds a trial may last; z:
            standard errors a difference must exceed.

    Attributes:
        chosen: the setting of the current or last hold (None before the first trial ends).
        steps_on: steps run with each setting so far ({threads: steps}).
    """

    def __init__(self, threads: int, *, block: int = 16, max_rounds: int = 6, z: float = 3.0,
                 hold: int = 480, max_hold: int = 7680):
        if block < 1 or max_rounds < 2 or not z >= 0 or hold < 1 or max_hold < hold:
            raise ValueError("need block >= 1, max_rounds >= 2, z >= 0 and "
                             "1 <= hold <= max_hold")
        self.threads = check_threads(threads)
        self._block, self._max_rounds, self._z = int(block), int(max_rounds), float(z)
        self._hold0, self._max_hold = int(hold), int(max_hold)
        self._hold = self._hold0
        self._plan: list[int] = []  # settings of the steps still to run in this phase
        self._blocks: dict[int, list[float]] = {}  # trial block times (s) by setting
        self._block_time = 0.0  # of the block being timed
        self._rounds = 0
        self._setting: int | None = None  # of the step under way
        self._trialling = False
        self.chosen: int | None = None
        self.steps_on = {self.threads: 0, 1: 0}

    def next(self) -> int:
        """Threads for the step that starts now."""
        if self.threads == 1:
            self.steps_on[1] += 1
            return 1
        if not self._plan:
            if self._trialling:
                self._end_round()
            else:
                self._blocks = {self.threads: [], 1: []}
                self._rounds = 0
                self._trialling = True
            if self._trialling:
                self._rounds += 1
                n, b = self.threads, self._block
                self._plan = [n] * b + [1] * (2 * b) + [n] * b  # popped from the end
        self._setting = setting = self._plan.pop()
        self.steps_on[setting] += 1
        return setting

    def took(self, seconds: float) -> None:
        """The step that :meth:`next` began took ``seconds`` (wall time)."""
        if not self._trialling or self._setting is None:
            return
        self._block_time += seconds
        if len(self._plan) % self._block == 0:  # the last step of a block
            self._blocks[self._setting].append(self._block_time)
            self._block_time = 0.0

    def _end_round(self) -> None:
        """After a round from the second on: hold the faster setting if the difference is
        clear, or, after the last round, the one with the lower mean."""
        if self._rounds < 2:
            return
        many, one = self._blocks[self.threads], self._blocks[1]
        diff = statistics.fmean(many) - statistics.fmean(one)
        se = (statistics.variance(many) / len(many) + statistics.variance(one) / len(one)) ** 0.5
        if (diff != 0 and abs(diff) > self._z * se) or self._rounds >= self._max_rounds:
            self._hold_with(self.threads if diff <= 0 else 1)

    def _hold_with(self, winner: int) -> None:
        self._hold = min(2 * self._hold, self._max_hold) if winner == self.chosen else self._hold0
        self.chosen = winner
        self._plan = [winner] * self._hold
        self._trialling = False
