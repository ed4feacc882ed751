"""Writing pyramidal tiled TIFFs that OpenSlide, tiffslide and QuPath open.

Layout: levels as consecutive IFDs (each half the previous), tiled, photometric RGB (or
min-is-black for label maps), resolution tags in pixels per centimetre so readers report mpp.
Level-0 tiles are produced on demand by a region function (a few at once, on threads: the
synthetic slide's texture is numpy work that releases the GIL); each level is written and, tile
by tile, halved into a file beside the output (2×2 box average for images, the top-left pixel
for label maps), from which the next level is written, as scanners build their pyramids. The
file is read and written by rows (not memory-mapped, whose touched pages would count as the
process's memory). Memory is thus a few tiles at any image size, the source is read once, and
the temporary files hold a third of level 0 at most.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

__all__ = ["array_region_fn", "write_pyramid_tiff"]

# region(x0, y0, width, height, step) -> (height, width[, C]) uint8 array whose pixels each
# cover step × step level-0 pixels (box average for images, nearest for labels);
# write_pyramid_tiff asks for step 1 only.
RegionFn = Callable[[int, int, int, int, int], np.ndarray]


def array_region_fn(arr: np.ndarray, labels: bool = False) -> RegionFn:
    """A region function over an in-memory or memory-mapped level-0 array.

    Out-of-bounds pixels read as white (images) or 0 (labels).
    """
    fill = 0 if labels else 255

    def region(x0: int, y0: int, width: int, height: int, step: int) -> np.ndarray:
        shape = (height * step, width * step, *arr.shape[2:])
        out = np.full(shape, fill, np.uint8)
        h = max(0, min(arr.shape[0] - y0, shape[0]))
        w = max(0, min(arr.shape[1] - x0, shape[1]))
        if h and w:
            out[:h, :w] = arr[y0 : y0 + h, x0 : x0 + w]
        if step == 1:
            return out
        if labels:  # nearest: the label at each block's top-left pixel
            return out[::step, ::step]
        blocks = out.reshape(height, step, width, step, -1).mean(axis=(1, 3))
        return np.round(blocks).astype(np.uint8).reshape(height, width, *arr.shape[2:])

    return region


def write_pyramid_tiff(
    path: str | Path,
    region: RegionFn,
    size: tuple[int, int],
    mpp: float,
    channels: int = 3,
    levels: int | None = None,
    tile: int = 256,
    compression: str = "jpeg",
    quality: int = 90,
    description: str | None = None,
    labels: bool | None = None,
) -> Path:
    """Write a pyramidal TIFF atomically.

    Parameters
    ----------
    path
        Output file.
    region
        Tile source, see :data:`RegionFn`.
    size
        Level-0 (width, height).
    mpp
        Level-0 µm per pixel.
    channels
        3 for RGB, 1 for a label map (written min-is-black; use ``compression="deflate"``).
    levels
        Pyramid levels; default: halve until the image fits in one tile.
    tile
        Tile side in pixels (multiple of 16).
    compression
        ``"jpeg"``, ``"deflate"`` or ``"none"``.
    description
        The ImageDescription of level 0.
    labels
        Lower levels by nearest pixel (label maps) instead of box average; default: for one
        channel.
    """
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    if levels is None:
        levels = 1
        while max(width, height) / 2**levels >= tile:
            levels += 1
    if channels == 1 and compression == "jpeg":
        raise ValueError(f"{path}: label maps must be written losslessly (deflate or none), not JPEG")
    comp = {"jpeg": "jpeg", "deflate": "deflate", "none": None}[compression]
    px_per_cm = 1e4 / mpp
    shape_tail = (channels,) if channels > 1 else ()
    labels = channels == 1 if labels is None else labels
    dims = [(max(1, width // 2**k), max(1, height // 2**k)) for k in range(levels)]
    tmp = path.with_name(f".{path.name}.tmp")
    halves: list[_RowFile] = []

    def level_tiles(level: int, src: _RowFile | None, dst: _RowFile | None) -> Iterator[np.ndarray]:
        lw, lh = dims[level]
        origins = [(tx, ty) for ty in range(0, lh, tile) for tx in range(0, lw, tile)]
        for (tx, ty), t in zip(
            origins, _produce(origins, src, region, tile, 255 * (not labels)), strict=True
        ):
            t = t.reshape(tile, tile, channels)
            if dst is not None:
                _halve_into(dst, t, tx, ty, labels)
            yield t.reshape(tile, tile, *shape_tail)

    try:
        with tifffile.TiffWriter(tmp, bigtiff=width * height * channels > 2**31) as tw:
            src = None
            for level in range(levels):
                ds = 2**level
                lw, lh = dims[level]
                dst = None
                if level + 1 < levels:
                    nw, nh = dims[level + 1]
                    dst = _RowFile(path.with_name(f".{path.name}.level{level + 1}.u8"), (nh, nw, channels))
                    halves.append(dst)
                tw.write(
                    level_tiles(level, src, dst),
                    shape=(lh, lw, *shape_tail),
                    dtype=np.uint8,
                    tile=(tile, tile),
                    photometric="rgb" if channels == 3 else "minisblack",
                    compression=comp,
                    compressionargs={"level": quality} if comp == "jpeg" else None,
                    resolution=(px_per_cm / ds, px_per_cm / ds),
                    resolutionunit="CENTIMETER",
                    subfiletype=1 if level else 0,
                    description=description if level == 0 else None,
                    metadata=None,
                )
                src = dst
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for half in halves:
            half.remove()
    return path


class _RowFile:
    """A ``(height, width, channels)`` uint8 array in a file, read and written by rows."""

    def __init__(self, path: Path, shape: tuple[int, int, int]) -> None:
        self.path, self.shape = path, shape
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self.fd, int(np.prod(shape)))

    def write(self, y: int, x: int, block: np.ndarray) -> None:
        row, px = self.shape[1] * self.shape[2], self.shape[2]
        for i, line in enumerate(block):
            os.pwrite(self.fd, np.ascontiguousarray(line).tobytes(), (y + i) * row + x * px)

    def read(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        """Rows ``y..y+h`` and columns ``x..x+w``, clipped to the array."""
        h, w = max(0, min(h, self.shape[0] - y)), max(0, min(w, self.shape[1] - x))
        row, px = self.shape[1] * self.shape[2], self.shape[2]
        data = b"".join(os.pread(self.fd, w * px, (y + i) * row + x * px) for i in range(h))
        return np.frombuffer(data, np.uint8).reshape(h, w, self.shape[2])

    def remove(self) -> None:
        os.close(self.fd)
        self.path.unlink(missing_ok=True)


def _produce(
    origins: list[tuple[int, int]], src: _RowFile | None, region: RegionFn, tile: int, fill: int
) -> Iterator[np.ndarray]:
    """The tiles at ``origins`` in order: cut from the previous level's halving ``src``, or, for
    level 0, asked of ``region`` a few at a time on threads (bounded, so memory stays flat)."""
    if src is not None:
        for tx, ty in origins:
            out = np.full((tile, tile, src.shape[2]), fill, np.uint8)
            part = src.read(ty, tx, tile, tile)
            out[: part.shape[0], : part.shape[1]] = part
            yield out
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    ahead = 2 * (os.cpu_count() or 1)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        pending: deque = deque()
        for tx, ty in origins:
            pending.append(pool.submit(region, tx, ty, tile, tile, 1))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _halve_into(dst: _RowFile, t: np.ndarray, tx: int, ty: int, labels: bool) -> None:
    """Write the half-size version of tile ``t`` (level origin ``tx, ty``) into ``dst``."""
    rows = max(0, min(t.shape[0] // 2, dst.shape[0] - ty // 2))
    cols = max(0, min(t.shape[1] // 2, dst.shape[1] - tx // 2))
    if not rows or not cols:
        return
    block = t[: 2 * rows, : 2 * cols]
    if labels:
        half = block[::2, ::2]
    else:
        half = np.round(block.reshape(rows, 2, cols, 2, -1).mean(axis=(1, 3), dtype=np.float32)).astype(
            np.uint8
        )
    dst.write(ty // 2, tx // 2, half)
