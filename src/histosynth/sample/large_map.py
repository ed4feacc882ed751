"""The label map of a large image, in a memory-mapped file: made or read without holding it.

A procedural map (:mod:`histosynth.sample.maps`) of a large image would hold one float field per
class at full size (a 16k² map of four classes: 4 GB). Here the fields are made on a coarse grid,
one cell per eighth of the region scale (they are Gaussian-smoothed noise or distances, smooth at
that scale), the class biases are tuned on them, and the map is written tile by tile into a
memory-mapped ``uint8`` file, each tile from the fields interpolated bilinearly to its pixels. A
map given as a PNG is decoded (Pillow holds it once) and copied into the same kind of file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from histosynth.sample.maps import class_targets, score_fields, tune_bias
from histosynth.sample.paged import open_map, release
from histosynth.seeding import numpy_rng

__all__ = ["large_map", "present_classes"]

TILE = 256  # output pixels per tile side: each tile's temporaries are a few MB


def large_map(cfg: Any, classes: Any, window: int, folder: str | Path) -> np.memmap:
    """The ``(height, width)`` label map of a :class:`~histosynth.sample.large.LargeConfig`, in
    ``folder/_label.u8`` (the caller deletes it)."""
    out = open_map(Path(folder) / "_label.u8", (cfg.height, cfg.width), np.uint8)
    if cfg.maps == "png":
        from histosynth.data.patch_dataset import decode_png

        label = decode_png(cfg.maps_dir, "L")
        if label.shape != (cfg.height, cfg.width):
            raise ValueError(
                f"{cfg.maps_dir}: map is {label.shape[::-1]}, asked for {cfg.width}x{cfg.height}"
            )
        classes.check_ids(np.unique(label), cfg.maps_dir)
        for r in range(0, cfg.height, TILE):
            out[r : r + TILE] = label[r : r + TILE]
            release(out)
        return out
    tissue = [c for c in classes.ids if c != 0] or classes.ids
    fr = {i: f for i, f in enumerate(cfg.fractions) if f > 0} or {c: 1.0 / len(tissue) for c in tissue}
    scale = cfg.region_scale or window * 0.75  # regions about a window wide: each window mixes classes
    _coarse_map(out, fr, cfg.procedural_kind, scale, numpy_rng(cfg.seed, "large-map"))
    return out


def _coarse_map(out: np.ndarray, fractions: dict[int, float], kind: str, scale: float,
                rng: np.random.Generator) -> None:  # fmt: skip
    ids, target = class_targets(fractions, kind)
    cell = max(1.0, scale / 8)
    H, W = out.shape
    side = int(np.ceil(max(H, W) / cell)) + 2
    fields = score_fields(rng, kind, side, scale / cell, target)
    bias = tune_bias(fields, target)
    for y0 in range(0, H, TILE):
        rows = _linear(np.arange(y0, min(y0 + TILE, H)), cell, side)
        for x0 in range(0, W, TILE):
            cols = _linear(np.arange(x0, min(x0 + TILE, W)), cell, side)
            (r0, r1, a), (c0, c1, b) = rows, cols
            f = fields[:, r0] * (1 - a)[None, :, None] + fields[:, r1] * a[None, :, None]  # (k, h, side)
            f = f[:, :, c0] * (1 - b) + f[:, :, c1] * b
            out[y0 : y0 + len(a), x0 : x0 + len(b)] = ids[(f + bias[:, None, None]).argmax(0)]
        release(out)  # a row of tiles written: its pages go to the file


def _linear(px: np.ndarray, cell: float, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two coarse cells around each pixel centre and the weight of the second."""
    v = np.clip((px + 0.5) / cell - 0.5, 0, side - 1)
    i0 = np.minimum(np.floor(v).astype(np.int64), side - 2)
    return i0, i0 + 1, (v - i0).astype(np.float32)


def present_classes(label: np.ndarray, band_px: int = 1 << 20) -> list[int]:
    """The class ids present in ``label``, counted in bands of about ``band_px`` pixels (no
    sorted copy of the map; ``bincount``'s integer copy of a band stays a few MB)."""
    counts = np.zeros(256, np.int64)
    band = max(1, band_px // label.shape[1])
    for r in range(0, label.shape[0], band):
        counts += np.bincount(np.asarray(label[r : r + band]).ravel(), minlength=256)
        release(label)
    return np.flatnonzero(counts).tolist()
