"""OpenSlide's pixels from a pyramidal TIFF's tiles, decoded directly.

Reading a 256 px patch through OpenSlide costs about five times decoding its JPEG tile
(1.3 ms against 0.26 ms on the tiling benchmark's slide, AMD EPYC): the rest is painting the
tile into a premultiplied ARGB surface with cairo and converting it back to RGBA, then to RGB.
For the formats where a level *is* one tiled TIFF directory (OpenSlide's ``aperio`` and
``generic-tiff`` vendors), :class:`TiffTiles` reads the compressed tiles with ``os.pread``
and decodes them with tifffile (libjpeg-turbo, through imagecodecs), which gives the same
bytes as OpenSlide: tested tile by tile and region by region against OpenSlide
(``tests/wsi/test_tiff_tiles.py``), and :class:`~histosynth.wsi.readers.OpenSlideReader` uses
it only where that holds:

* levels that match one tiled, 8-bit, 3-channel, chunky directory of the file, compressed
  losslessly or with JPEG (JPEG 2000 is left to OpenSlide: its colour conversion differs);
* regions whose level position is a whole pixel (OpenSlide interpolates a fractional one);
* regions whose tiles are all present (a missing tile is OpenSlide's transparency).

Everything else returns ``None`` and the caller asks OpenSlide. The reads hold no lock
(``pread`` has no file position) and the decoder releases the GIL, so the threads of the
``dataset`` stage decode in parallel; decoded tiles are kept in a small LRU cache shared by
those threads, as OpenSlide keeps its own.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DIRECT_VENDORS", "TiffTiles"]

DIRECT_VENDORS = ("aperio", "generic-tiff")  # one TIFF directory per level, tiles as stored
# Compressions whose decoded bytes are OpenSlide's (lossless ones by definition; JPEG tested).
_COMPRESSIONS = {1, 5, 7, 8, 32946}  # none, LZW, JPEG, Adobe deflate, deflate
_DEFAULT_CACHE = 32 * 2**20  # bytes of decoded tiles, OpenSlide's default


@dataclass(frozen=True)
class _Level:
    """One pyramid level's directory: where its tiles are and how to decode them."""

    decode: Any  # the directory's tile decoder (tifffile's TiffPage.decode)
    jpegtables: bytes | None
    width: int
    height: int
    tile_w: int
    tile_h: int
    across: int  # tiles in a row
    offsets: tuple[int, ...]
    counts: tuple[int, ...]


def _match_level(pages: list[Any], size: tuple[int, int]) -> _Level | None:
    """The one tiled directory of ``size`` that decodes to OpenSlide's pixels, else ``None``."""
    width, height = size
    found = [p for p in pages if p.is_tiled and tuple(p.shape[:2]) == (height, width)]
    if len(found) != 1:
        return None
    p = found[0]
    if (
        p.samplesperpixel != 3
        or p.bitspersample != 8
        or p.planarconfig != 1  # chunky RGBRGB
        or int(p.compression) not in _COMPRESSIONS
        or p.tiledepth != 1
        or p.imagedepth != 1
    ):
        return None
    return _Level(
        decode=p.decode,
        jpegtables=p.jpegtables,
        width=width,
        height=height,
        tile_w=p.tilewidth,
        tile_h=p.tilelength,
        across=-(-width // p.tilewidth),
        offsets=tuple(p.dataoffsets),
        counts=tuple(p.databytecounts),
    )


# Stages open a slide once per chunk of patches, and a scanner's slide has 10⁵ tiles whose
# offsets tifffile reads on every parse: the parsed levels are kept per file state (path,
# size, modification time, inode), for the last two slides of a process (a slide's offsets
# are a few MB as Python ints; a process works through one slide's chunks at a time).
@functools.lru_cache(maxsize=2)
def _parse_levels(
    path: str, nbytes: int, mtime_ns: int, inode: int, level_dimensions: tuple[tuple[int, int], ...]
) -> tuple[_Level | None, ...]:
    """The levels of the file at ``path`` (``nbytes``, ``mtime_ns``, ``inode``: the cache key)."""
    import tifffile

    with tifffile.TiffFile(path) as tiff:  # parsed, then closed: tiles are read by descriptor
        pages = list(tiff.pages)
        return tuple(_match_level(pages, level) for level in level_dimensions)


class TiffTiles:
    """Region reads from a pyramidal TIFF's tiles, for the levels that decode as OpenSlide does.

    Parameters
    ----------
    path
        The TIFF (``.tif``, ``.tiff``, ``.svs``).
    level_dimensions
        OpenSlide's level sizes (width, height), level 0 first; each is matched with one
        directory of the file (levels without an exact match are not served).
    level_downsamples
        OpenSlide's downsample of each level (level-0 pixels per level pixel).
    cache_bytes
        Decoded tiles kept for the next reads (0: none).
    """

    def __init__(
        self,
        path: str | Path,
        level_dimensions: list[tuple[int, int]],
        level_downsamples: list[float],
        cache_bytes: int = _DEFAULT_CACHE,
    ) -> None:
        self.path = str(path)
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(self._fd)
            sizes = tuple((int(w), int(h)) for w, h in level_dimensions)
            self.levels = list(_parse_levels(self.path, st.st_size, st.st_mtime_ns, st.st_ino, sizes))
        except BaseException:
            os.close(self._fd)
            raise
        self.downsamples = list(level_downsamples)
        # A reader dropped without close() (as OpenSlide's may be) still gives its descriptor back.
        self._release = weakref.finalize(self, os.close, self._fd)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cache_bytes, self._held = max(0, int(cache_bytes)), 0
        self._lock = threading.Lock()

    @property
    def serves_any(self) -> bool:
        """Whether at least one level is read here."""
        return any(lv is not None for lv in self.levels)

    def set_cache_bytes(self, nbytes: int) -> None:
        """Keep at most ``nbytes`` of decoded tiles (0 empties the cache)."""
        with self._lock:
            self._cache_bytes = max(0, int(nbytes))
            self._evict()

    def read(self, x0: int, y0: int, level: int, width: int, height: int) -> np.ndarray | None:
        """``(height, width, 3)`` uint8 RGB whose top-left is level-0 ``(x0, y0)``, white outside
        the level; ``None`` when this region is not served here (see the module's docstring)."""
        lv = self.levels[level] if 0 <= level < len(self.levels) else None
        if lv is None:
            return None
        ds = self.downsamples[level]
        lx, ly = x0 / ds, y0 / ds
        if lx != math.floor(lx) or ly != math.floor(ly):
            return None  # OpenSlide would interpolate between level pixels
        lx, ly = int(lx), int(ly)
        # The part of the region inside the level, and the tiles that cover it.
        sx0, sy0 = max(lx, 0), max(ly, 0)
        sx1, sy1 = min(lx + width, lv.width), min(ly + height, lv.height)
        tiles = []
        if sx1 > sx0 and sy1 > sy0:
            tiles = [
                (tx, ty)
                for ty in range(sy0 // lv.tile_h, (sy1 - 1) // lv.tile_h + 1)
                for tx in range(sx0 // lv.tile_w, (sx1 - 1) // lv.tile_w + 1)
            ]
            if any(lv.counts[ty * lv.across + tx] == 0 for tx, ty in tiles):
                return None  # a missing tile: OpenSlide's transparency, let it say so
        out = np.full((height, width, 3), 255, np.uint8)
        for tx, ty in tiles:
            tile = self._tile(level, lv, tx, ty)
            # This tile's pixels within the wanted part, in level coordinates.
            ax0, ay0 = max(sx0, tx * lv.tile_w), max(sy0, ty * lv.tile_h)
            ax1, ay1 = min(sx1, (tx + 1) * lv.tile_w), min(sy1, (ty + 1) * lv.tile_h)
            out[ay0 - ly : ay1 - ly, ax0 - lx : ax1 - lx] = tile[
                ay0 - ty * lv.tile_h : ay1 - ty * lv.tile_h, ax0 - tx * lv.tile_w : ax1 - tx * lv.tile_w
            ]
        return out

    def _tile(self, level: int, lv: _Level, tx: int, ty: int) -> np.ndarray:
        """Tile ``(tx, ty)`` of a level, decoded: ``(tile_h, tile_w, 3)`` uint8 (cached)."""
        key = (level, ty * lv.across + tx)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        index = key[1]
        data = os.pread(self._fd, lv.counts[index], lv.offsets[index])
        # Decoded outside the lock: two threads may decode one tile, never wait on each other.
        segment, _, _ = lv.decode(data, index, jpegtables=lv.jpegtables)
        tile = np.asarray(segment).reshape(segment.shape[-3:])[..., :3]
        if self._cache_bytes:
            with self._lock:
                if key not in self._cache:
                    self._cache[key] = tile
                    self._held += tile.nbytes
                    self._evict()
        return tile

    def _evict(self) -> None:
        while self._cache and self._held > self._cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._held -= old.nbytes

    def close(self) -> None:
        """Release the file (reads after this fail rather than read a reused descriptor)."""
        self._release()
        self._fd = -1
