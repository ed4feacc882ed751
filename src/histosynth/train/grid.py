"""Pictures of a run: the sample grid (map | crops | sample | real) and the loss curve.

Both are drawn with Pillow alone (no plotting library is a dependency).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from histosynth.artifacts import atomic_write_bytes
from histosynth.data.classmap import ClassMap
from histosynth.data.crops import Crop
from histosynth.data.patch_dataset import encode_png

__all__ = ["crop_mosaic", "grid_image", "loss_curve"]

_GAP = 2


def crop_mosaic(crops: Sequence[Crop], size: int, classes: ClassMap | None = None) -> np.ndarray:
    """Up to 4 crops in a 2×2 mosaic of a ``size × size`` tile, each framed in its class colour.

    Crops are shown at their own scale when they fit a cell, else shrunk (nearest) to fit.
    """
    from PIL import Image

    tile = np.full((size, size, 3), 255, np.uint8)
    cell = size // 2
    for k, crop in enumerate(list(crops)[:4]):
        px = np.asarray(crop.pixels)
        if px.dtype != np.uint8:  # a float (3, h, w) tensor in [-1, 1]
            px = ((np.transpose(px, (1, 2, 0)) + 1) * 127.5).clip(0, 255).astype(np.uint8)
        inner = cell - 4
        h, w = px.shape[:2]
        if h > inner or w > inner:
            s = inner / max(h, w)
            px = np.asarray(Image.fromarray(px).resize((max(1, round(w * s)), max(1, round(h * s))), 0))
            h, w = px.shape[:2]
        r0, c0 = (k // 2) * cell, (k % 2) * cell
        colour = classes.colorize(np.array([[crop.class_id]]))[0, 0] if classes else np.array([0, 0, 0])
        tile[r0 : r0 + h + 4, c0 : c0 + w + 4] = colour
        tile[r0 + 2 : r0 + 2 + h, c0 + 2 : c0 + 2 + w] = px
    return tile


def grid_image(rows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Tiles ``rows[i][j]`` (equal-sized RGB uint8) on a white sheet with thin gaps."""
    h, w = rows[0][0].shape[:2]
    n_r, n_c = len(rows), max(len(r) for r in rows)
    sheet = np.full((n_r * (h + _GAP) + _GAP, n_c * (w + _GAP) + _GAP, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            y, x = _GAP + i * (h + _GAP), _GAP + j * (w + _GAP)
            sheet[y : y + h, x : x + w] = tile
    return sheet


def save_grid(
    path: str | Path,
    maps: Sequence[np.ndarray],
    crops: Sequence[Sequence[Crop]],
    samples: np.ndarray,
    reals: Sequence[np.ndarray],
    classes: ClassMap,
    scale: int = 2,
) -> None:
    """Write the sample grid: one row per example, columns map | crops | sample | real."""
    size = samples.shape[1]
    rows = [
        [classes.colorize(np.asarray(m, np.uint8)), crop_mosaic(c, size, classes), s, r]
        for m, c, s, r in zip(maps, crops, samples, reals, strict=True)
    ]
    sheet = grid_image(rows)
    if scale > 1:
        sheet = sheet.repeat(scale, 0).repeat(scale, 1)
    atomic_write_bytes(path, encode_png(sheet))


def loss_curve(
    steps: Sequence[float], values: Sequence[float], path: str | Path, title: str = "training loss"
) -> None:
    """A line plot (raw and smoothed) of ``values`` against ``steps``, as a PNG."""
    from PIL import Image, ImageDraw

    W, H, L, R, T, B = 640, 360, 60, 20, 30, 40
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    d.text((L, 8), title, fill="black")
    if len(values) >= 2:
        x = np.asarray(steps, float)
        y = np.asarray(values, float)
        smooth = np.empty_like(y)
        acc = y[0]
        for i, v in enumerate(y):  # exponential smoothing, for the trend
            acc = 0.9 * acc + 0.1 * v if i else v
            smooth[i] = acc
        x0, x1 = x.min(), max(x.max(), x.min() + 1)
        y0, y1 = min(y.min(), 0.0), y.max() * 1.05
        px = L + (x - x0) / (x1 - x0) * (W - L - R)

        def py(v: np.ndarray) -> np.ndarray:
            return H - B - (v - y0) / (y1 - y0) * (H - T - B)

        d.line(list(zip(px, py(y), strict=True)), fill=(170, 190, 230), width=1)
        d.line(list(zip(px, py(smooth), strict=True)), fill=(20, 60, 170), width=2)
        for frac in (0, 0.5, 1):
            v = y0 + frac * (y1 - y0)
            d.text((4, float(py(np.array(v))) - 6), f"{v:.3f}", fill="black")
        d.text((L, H - B + 8), f"step {int(x0)}", fill="black")
        d.text((W - R - 80, H - B + 8), f"step {int(x.max())}", fill="black")
    d.rectangle([L, T, W - R, H - B], outline="black")
    buf = __import__("io").BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
