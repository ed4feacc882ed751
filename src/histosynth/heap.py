"""Give the C heap's free memory back to the system after a unit of threaded work (glibc; a
no-op on other C libraries).

glibc gives each thread that allocates its own arena (up to eight per core), and memory freed
in an arena is kept there for reuse rather than returned. Threads that read slide tiles and
encode patches (a few hundred kilobytes each) leave every arena holding its high-water mark,
so a long extraction's resident memory grows with the number of patches it made although the
live data stay a chunk's worth (for a 40k × 30k px slide's dataset, 336 MB at the peak
against 219 MB for a 5k slide's). :func:`trim` after each chunk, with threads that live as
long as the process (:func:`histosynth.data.durable_writes.shared_pool`), keeps it flat.

>>> trim() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["trim"]


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` on other C libraries (musl, macOS, Windows)."""
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def trim() -> bool:
    """Return free heap memory of every arena to the system; ``True`` when any was returned."""
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False
