"""OpenMP threads of the threads that run MXNet operators.

With the naive engine an operator runs in the thread that calls the model, and oneDNN
opens an OpenMP team of ``omp_get_max_threads()`` threads there: by default one per
host CPU, in every core's thread and every caller's runner. Their workers spin after
each operator, so on a host with few CPUs a dozen such teams take turns on the same
CPUs (a 4-layer MLP ran 1.5-3x slower in a new thread than in the main one, on the
2-CPU test host). :func:`limit_this_thread` caps the calling thread's team at
``MXNET_OMP_MAX_THREADS`` (the CPUs per worker, see :mod:`.execute`), once per thread.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Callable

__all__ = ["limit_this_thread", "thread_limit"]

_done = threading.local()


def thread_limit(environ: dict[str, str] | None = None) -> int:
    """The OpenMP threads one MXNet-running thread gets: ``MXNET_OMP_MAX_THREADS``, else 1."""
    value = (os.environ if environ is None else environ).get("MXNET_OMP_MAX_THREADS", "1")
    return max(1, int(value)) if value.isascii() and value.isdigit() else 1


def _openmp_setter() -> Callable[[int], None] | None:
    try:  # the libgomp MXNet (and torch, same soname) already loaded; none: nothing to cap
        return ctypes.CDLL("libgomp.so.1").omp_set_num_threads
    except (OSError, AttributeError):
        return None


_set_num_threads = _openmp_setter()


def limit_this_thread() -> None:
    """Cap the calling thread's OpenMP team at :func:`thread_limit` (the first time only)."""
    if getattr(_done, "limited", False):
        return
    _done.limited = True
    if _set_num_threads is not None:
        _set_num_threads(thread_limit())
