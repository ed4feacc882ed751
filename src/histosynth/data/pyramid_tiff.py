"""Writing pyramidal tiled TIFFs that OpenSlide, tiffslide and QuPath open.

Layout: levels as consecutive IFDs (each half the previous), tiled, photometric RGB (or
min-is-black for label maps), resolution tags in pixels per centimetre so readers report mpp.
Tiles are produced on demand by a region function, so memory is bounded by one tile row of
the coarsest level read, not by the image: a level-``k`` tile reads ``2**k`` times its side
from the source and downsamples it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

__all__ = ["array_region_fn", "write_pyramid_tiff"]

# region(x0, y0, width, height, step) -> (height, width[, C]) uint8 array whose pixels each
# cover step × step level-0 pixels (box average for images, nearest for labels).
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

    def tiles(level: int, lw: int, lh: int) -> Iterator[np.ndarray]:
        step = 2**level
        for ty in range(0, lh, tile):
            for tx in range(0, lw, tile):
                yield region(tx * step, ty * step, tile, tile, step).reshape(tile, tile, *shape_tail)

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tifffile.TiffWriter(tmp, bigtiff=width * height * channels > 2**31) as tw:
            for level in range(levels):
                ds = 2**level
                lw, lh = max(1, width // ds), max(1, height // ds)
                tw.write(
                    tiles(level, lw, lh),
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
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
