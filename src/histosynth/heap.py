"""Keep the C heap from growing with the amount of threaded work (glibc; a no-op elsewhere).

glibc gives each thread that allocates its own arena (up to eight per core), and memory freed
in an arena is kept there for reuse rather than returned. Threads that read slide tiles and
encode patches (a few hundred kilobytes each) leave every arena holding its high-water mark,
so a long extraction's resident memory grows with the number of patches it made although the
live data stay a chunk's worth: for a 40k × 30k px slide's dataset, 336 MB, against 219 MB with
two arenas (a 5k slide's dataset: 219 MB either way). :func:`limit_arenas` before starting the
threads and :func:`trim` after each unit of work keep it flat.

>>> limit_arenas(2) in (True, False), trim() in (True, False)
(True, True)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["limit_arenas", "trim"]

_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


@functools.cache
def _libc():
    """The C library when it is glibc (it has ``malloc_trim``), else ``None``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError, TypeError):  # musl, macOS, Windows: nothing to tune
        return None
    return libc


def limit_arenas(n: int) -> bool:
    """Let threads created from now on share at most ``n`` arenas; ``True`` when applied.

    Arenas exist to spare threads waiting on one another's allocations; for threads that
    spend their time in decoders and encoders, one per core is plenty.
    """
    libc = _libc()
    return bool(libc.mallopt(_M_ARENA_MAX, max(1, int(n)))) if libc is not None else False


def trim() -> bool:
    """Return free heap memory of every arena to the system; ``True`` when any was returned."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
