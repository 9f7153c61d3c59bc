"""How many threads and processes neutrosim uses: the one place for thread-count policy.

Parallelism has two levels. Ensembles and sweeps run one simulation per core, each on one
thread (:data:`ONE_THREAD_ENV` is set in their workers). A single simulation solves the
fields of a step side by side on :func:`default_threads` threads, at most one per solve
(:func:`field_threads`). Results never depend on either number.
"""

import operator
import os

from .errors import ParameterError
from .field_registry import FIELD_NAMES
from .numbers import whole_number

__all__ = ["ONE_THREAD_ENV", "available_cores", "check_threads", "default_threads",
           "env_threads", "field_threads"]

#: environment that pins numeric libraries in a worker process to one thread
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                  "NUMBA_NUM_THREADS": "1"}


def available_cores() -> int:
    """Cores this process may use (its CPU affinity where the system reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_threads(value, what: str = "threads") -> int:
    """``value`` as a thread count (an integer >= 1), else ValueError naming ``what``."""
    try:
        n = operator.index(value)
    except TypeError:
        n = None
    if n is None or isinstance(value, bool) or n < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return n


def default_threads() -> int:
    """Threads of one simulation: ``NUMBA_NUM_THREADS`` if set (the ensemble workers set 1,
    so parallel runs do not oversubscribe), else the cores this process may use."""
    env = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if env:
        return env_threads(env)
    return available_cores()


def env_threads(text: str) -> int:
    """``NUMBA_NUM_THREADS`` as a thread count; a :class:`ParameterError` naming the variable
    if it is not a whole number >= 1 (numba itself stops with a traceback on 0)."""
    try:
        n = whole_number(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ParameterError(f"environment variable NUMBA_NUM_THREADS={text!r}: expected a "
                             "whole number >= 1 (threads per simulation); unset it to use "
                             "every core")
    return n


def field_threads(threads: int | None = None) -> int:
    """Threads that solve a model's fields: ``threads`` (default :func:`default_threads`),
    at most one per field (each field is one solve a step)."""
    n = default_threads() if threads is None else check_threads(threads)
    return min(n, len(FIELD_NAMES))
