"""Truncated TIFF slides, found before any reader sees them.

A slide cut short by an interrupted copy or download reads, depending on where the cut falls,
as "no pages" (an ``IndexError`` deep in a reader), as blank glass ("no tissue found"), as a
slide without resolution metadata, or as tiles that fail to decode later. Every one of these
is the same fault, so it gets the same sentence: the TIFF's own structure says how long the
file must be, and a file shorter than that is truncated.

Two checks, both reading only the file's directories (milliseconds, even for a large slide):

1. the chain of image directories (IFDs), classic TIFF and BigTIFF: every directory must lie
   inside the file;
2. every image's data: the largest ``offset + byte count`` of its strips or tiles must not pass
   the end of the file.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import struct
from pathlib import Path

import numpy as np

from histosynth.wsi.base import SlideError

__all__ = ["check_not_truncated"]

_MAX_IFDS = 100_000  # a cycle or a corrupt offset must not loop for ever
_AGAIN = "copy or download it again"


def _ifd_chain_end(fh, size: int) -> tuple[int, int] | None:
    """(directory number, offset) of the first directory that lies beyond the file, else None.

    Returns None as well for a file that is not a TIFF (the readers report those).
    """
    head = fh.read(16)
    if head[:4] in (b"II*\0", b"MM\0*"):
        end, word, entry, count_fmt, off_fmt = head[:2], 4, 12, "H", "I"
    elif head[:4] in (b"II+\0", b"MM\0+"):
        end, word, entry, count_fmt, off_fmt = head[:2], 8, 20, "Q", "Q"
    else:
        return None
    order = "<" if end == b"II" else ">"
    start = 4 if word == 4 else 8
    if len(head) < start + word:
        return (0, start)
    (offset,) = struct.unpack(order + off_fmt, head[start : start + word])
    seen: set[int] = set()
    for number in range(_MAX_IFDS):
        if offset == 0 or offset in seen:
            return None
        seen.add(offset)
        count_size = 2 if word == 4 else 8
        if offset + count_size > size:
            return (number, offset)
        fh.seek(offset)
        (count,) = struct.unpack(order + count_fmt, fh.read(count_size))
        next_at = offset + count_size + count * entry
        if next_at + word > size:
            return (number, offset)
        fh.seek(next_at)
        (offset,) = struct.unpack(order + off_fmt, fh.read(word))
    return None


@contextlib.contextmanager
def _quiet_tifffile():
    """tifffile logs each damaged structure it skips; the one sentence below replaces them."""
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _data_end(path: Path) -> int:
    """The largest ``offset + byte count`` of any strip or tile of any image (0 when unknown)."""
    import tifffile

    end = 0
    with _quiet_tifffile(), tifffile.TiffFile(path) as tf:
        for page in tf.pages:
            offsets, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
            n = min(len(offsets), len(counts))
            if n:  # in int64 arrays: a slide has ~10⁵ tiles, a Python loop took 20 ms a call
                ends = np.asarray(offsets[:n], np.int64) + np.asarray(counts[:n], np.int64)
                end = max(end, int(ends.max()))
    return end


def check_not_truncated(path: str | Path) -> None:
    """Raise :class:`~histosynth.wsi.base.SlideError` when a TIFF-based slide is cut short.

    Files that are not TIFFs pass unchecked (their readers report them); so do TIFFs whose
    structure is whole, even if their pixels are damaged otherwise.
    """
    path = Path(path)
    stat = path.stat()
    _check_file(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


# A slide is opened once per chunk of patches by every stage: a file that passed is not read
# again until it changes (size, modification time or inode: a copy replacing it).
@functools.lru_cache(maxsize=1024)
def _check_file(path_str: str, size: int, mtime_ns: int, inode: int) -> None:
    path = Path(path_str)
    with open(path, "rb") as fh:
        cut = _ifd_chain_end(fh, size)
    if cut is not None:
        number, offset = cut
        where = "its first image directory" if number == 0 else f"image directory #{number + 1}"
        raise SlideError(
            f"{path}: the file is truncated: {where} lies at byte {offset:,}, beyond its end at "
            f"{size:,} bytes; {_AGAIN}"
        )
    try:
        end = _data_end(path)
    except Exception:  # a structure tifffile cannot parse at all: the readers say what they can
        return
    if end > size:
        raise SlideError(
            f"{path}: the file is truncated: it holds {size:,} bytes but its image data runs to byte "
            f"{end:,}; {_AGAIN}"
        )
