"""Tiling geometry as pure functions (no I/O): level-0 origins, extents and coverage.

Conventions: a patch is ``size × size`` pixels at the target resolution ``mpp``; on the slide it
covers the level-0 square ``[x0, x0 + size0) × [y0, y0 + size0)`` with
``size0 = size · mpp / slide_mpp`` (a float: 256 px at 0.5 µm/px on a 0.499 µm/px slide spans
256.51 level-0 px). Neighbouring patches overlap by ``overlap`` target pixels, so the stride
is the constant ``size - overlap`` target pixels, ``stride0 = (size - overlap) · mpp /
slide_mpp`` level-0 px. Origins are integers (level-0 pixels), the nearest to ``i · stride0``,
so they never drift from the constant stride by more than half a pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TileGeometry", "box_fractions", "grid_origins", "level_for_downsample", "tile_geometry"]


@dataclass(frozen=True)
class TileGeometry:
    """Patch geometry on one slide.

    Attributes
    ----------
    size
        Patch side in target pixels.
    mpp
        Target resolution (µm/px).
    downsample
        Level-0 pixels per target pixel (``mpp / slide_mpp``).
    size0
        Level-0 extent of a patch.
    stride0
        Level-0 distance between neighbouring origins.
    """

    size: int
    mpp: float
    downsample: float
    size0: float
    stride0: float


def tile_geometry(slide_mpp: float, mpp: float, size: int, overlap: int = 0) -> TileGeometry:
    """Level-0 extent and stride of ``size``-px patches at ``mpp`` on a slide of ``slide_mpp``.

    Raises
    ------
    ValueError
        When a resolution is not positive, ``size < 1`` or ``overlap`` is not in ``[0, size)``.
    """
    if not (slide_mpp > 0 and mpp > 0):
        raise ValueError(f"resolutions must be positive, got slide {slide_mpp} and target {mpp} µm/px")
    if size < 1:
        raise ValueError(f"patch size must be at least 1 px, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must lie in [0, size) = [0, {size}), got {overlap}")
    ds = mpp / slide_mpp
    return TileGeometry(size, mpp, ds, size * ds, (size - overlap) * ds)


def grid_origins(width0: int, height0: int, size0: float, stride0: float) -> tuple[np.ndarray, np.ndarray]:
    """Level-0 origins of every patch that lies fully inside a ``width0 × height0`` slide.

    Parameters
    ----------
    width0, height0
        Slide size in level-0 pixels.
    size0
        Patch extent in level-0 pixels.
    stride0
        Distance between origins in level-0 pixels (``>= 1``).

    Returns
    -------
    x0, y0
        int64 arrays in row-major order (rows of constant ``y0``, ``x0`` increasing).
        Each satisfies ``0 <= x0`` and ``x0 + size0 <= width0`` (likewise for y).
    """
    if stride0 < 1 or size0 <= 0:
        # Integer origins less than a pixel apart would repeat: such a grid oversamples the slide.
        raise ValueError(
            f"stride0 must be at least 1 level-0 px and size0 positive, got {stride0} and {size0}"
        )
    xs = _axis_origins(width0, size0, stride0)
    ys = _axis_origins(height0, size0, stride0)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    return gx.ravel(), gy.ravel()


def _axis_origins(extent0: int, size0: float, stride0: float) -> np.ndarray:
    if size0 > extent0:
        return np.zeros(0, np.int64)
    n = math.floor((extent0 - size0) / stride0) + 1
    origins = np.floor(np.arange(n + 1) * stride0 + 0.5).astype(np.int64)
    # Rounding can push the last origin half a pixel past the edge: keep only in-bounds ones.
    return origins[origins + size0 <= extent0 + 1e-9]


def level_for_downsample(
    level_downsamples: list[float] | tuple[float, ...], downsample: float, tolerance: float = 2e-3
) -> int:
    """The coarsest pyramid level whose downsample does not exceed ``downsample``.

    Mirrors :meth:`SlideReader.best_level`: reading that level and shrinking never reads
    level 0 when a lower level serves, and never upsamples by more than ``tolerance``.
    """
    best = 0
    for i, d in enumerate(level_downsamples):
        if d <= downsample * (1 + tolerance):
            best = i
    return best


def box_fractions(mask: np.ndarray, scale: float, x0: np.ndarray, y0: np.ndarray, size0: float) -> np.ndarray:
    """Mean of a low-resolution mask over level-0 boxes, with exact fractional pixel coverage.

    Parameters
    ----------
    mask
        ``(H, W)`` array (bool or float in [0, 1]) whose pixel ``(r, c)`` covers level-0
        ``[c·scale, (c+1)·scale) × [r·scale, (r+1)·scale)``.
    scale
        Level-0 pixels per mask pixel.
    x0, y0
        Level-0 origins of the boxes.
    size0
        Level-0 side of the boxes.

    Returns
    -------
    Fractions in [0, 1], one per box; parts of a box outside the mask count as 0.
    """
    mask = np.asarray(mask)
    h, w = mask.shape
    x0m, y0m = np.asarray(x0) / scale, np.asarray(y0) / scale
    x1m, y1m = x0m + size0 / scale, y0m + size0 / scale
    corner_rows = np.floor(np.clip(np.concatenate([y0m, y1m]), 0, h)).astype(int)
    corner_rows = np.minimum(corner_rows, h - 1)
    sat, row_of = _sat_rows(mask, np.union1d(corner_rows, corner_rows + 1))

    def area(xm: np.ndarray, ym: np.ndarray) -> np.ndarray:
        # Bilinear interpolation of the SAT gives exact coverage for fractional pixel edges.
        xm = np.clip(xm, 0, w)
        ym = np.clip(ym, 0, h)
        xi, yi = np.minimum(np.floor(xm).astype(int), w - 1), np.minimum(np.floor(ym).astype(int), h - 1)
        fx, fy = xm - xi, ym - yi
        r0, r1 = row_of[yi], row_of[yi + 1]
        s00, s01 = sat[r0, xi], sat[r0, xi + 1]
        s10, s11 = sat[r1, xi], sat[r1, xi + 1]
        return (s00 * (1 - fx) + s01 * fx) * (1 - fy) + (s10 * (1 - fx) + s11 * fx) * fy

    total = area(x1m, y1m) - area(x0m, y1m) - area(x1m, y0m) + area(x0m, y0m)
    return np.clip(total / (size0 / scale) ** 2, 0.0, 1.0)


def _sat_rows(mask: np.ndarray, rows: np.ndarray, strip: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` (sorted, in ``0..H``) of the summed-area table of ``mask`` (float64, a zero
    first row and column: ``S[y, x]`` sums ``[0, x) × [0, y)``), and a map from a SAT row to its
    place among them.

    Built strip by strip: a whole float64 table of a large slide's mask is eight times the mask
    (and ``cumsum`` makes two more), while the boxes need only the rows at their edges. Each
    column's running sum continues from the row above, in the order ``cumsum`` adds, so every
    value is bit-for-bit the full table's.
    """
    h, w = mask.shape
    out = np.zeros((len(rows), w + 1))
    row_of = np.zeros(h + 1, np.intp)
    row_of[rows] = np.arange(len(rows))
    above = np.zeros((1, w))  # column sums of the rows already passed
    for a in range(0, h, strip):
        b = min(a + strip, h)
        cols = np.cumsum(np.concatenate([above, mask[a:b]], dtype=np.float64), axis=0)
        want = rows[(rows > a) & (rows <= b)]  # SAT row y sums mask rows < y
        out[np.searchsorted(rows, want), 1:] = np.cumsum(cols[want - a], axis=1)
        above = cols[-1:]
    return out, row_of
