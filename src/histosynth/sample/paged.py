"""Memory-mapped arrays of a large image whose touched pages are handed back to the file.

Every page of a memory map that the process reads or writes stays in its resident set (and in
``ru_maxrss``) until the map is closed, so a map walked end to end ends up counting as memory
the size of the image, although the data lives in the file. :func:`release` tells the kernel
the process no longer needs the pages it has touched (``madvise(MADV_DONTNEED)``): for a shared
file mapping the data is kept (dirty pages go to the page cache, written back by the kernel)
and reading the pages again brings them back from the cache or the file. Callers walking a map
release it every few windows, blocks or bands, so the resident part of each map is bounded by
what one such unit touches.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["open_map", "paged_region_fn", "release", "to_tensor"]

_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)  # Linux and most Unix; elsewhere: no-op


def open_map(path: str | Path, shape: tuple[int, ...], dtype: Any = np.float32) -> np.memmap:
    """A new zero-filled ``.npy`` memory map of ``shape`` at ``path`` (read and written)."""
    return np.lib.format.open_memmap(Path(path), mode="w+", dtype=dtype, shape=tuple(shape))


def release(*arrays: Any) -> None:
    """Drop the touched pages of each memory map in ``arrays`` from this process's memory.

    Anything that is not a memory map (an in-memory array, a tensor, ``None``) is left alone,
    so callers need not know where an array lives. The data stays in the map's file.
    """
    for arr in arrays:
        m = getattr(arr, "_mmap", None)  # np.memmap and its views share the base's mmap
        if m is None or _DONTNEED is None or m.closed:
            continue
        m.madvise(_DONTNEED)


def paged_region_fn(arr: np.ndarray, labels: bool = False, every: int = 8) -> Any:
    """:func:`histosynth.data.pyramid_tiff.array_region_fn` over a memory map whose pages are
    released every ``every`` tiles, so writing a large image's pyramid reads it in flat memory."""
    from itertools import count

    from histosynth.data.pyramid_tiff import array_region_fn

    read, calls = array_region_fn(arr, labels=labels), count(1)

    def region(x0: int, y0: int, width: int, height: int, step: int) -> np.ndarray:
        tile = read(x0, y0, width, height, step)
        if next(calls) % every == 0:  # tiles are read on threads: any of them may release
            release(arr)
        return tile

    return region


def to_tensor(view: np.ndarray) -> Any:
    """A float or uint8 region of a memory map as a new CPU tensor, in memory torch allocated.

    One copy, like ``np.array``; but torch aligns its buffers (64 bytes) and numpy's depend on
    the heap, and the networks' vector kernels round differently at other alignments, which
    would make the image depend on the order of the work.
    """
    import torch

    out = torch.from_numpy(np.empty(0, view.dtype)).new_empty(view.shape)
    out.numpy()[...] = view
    return out
