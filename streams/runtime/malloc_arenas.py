"""glibc's malloc arenas, limited for a long-running worker with threads.

glibc gives each thread that allocates its own arena (up to 8 per core), and freed memory
in one arena is not reused by another. The worker's main thread, Faust's producer thread
and aiokafka's threads allocate and free the same kinds of objects, so its resident memory
crept up with every million events as the arenas fragmented: 8.1 MB per million events
after warm-up with glibc's default, -1.0 MB (flat, within noise) with two arenas, at the
same throughput (``load_tests/memory.py``, 3.8 million events). ``MALLOC_ARENA_MAX=2``
in the environment does the same; this sets it from the settings, before the worker
starts its threads.

>>> limit_malloc_arenas(0)
False
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: ``M_ARENA_MAX`` of glibc's ``mallopt``.
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int) -> bool:
    """Let glibc's malloc use at most ``arenas`` arenas (0: leave its default); whether it
    took effect (``False`` on a C library other than glibc). Call before starting threads."""
    if arenas <= 0:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
