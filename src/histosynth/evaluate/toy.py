"""Small real-like and synthetic-like patch datasets with known properties, for tests and demos.

Patches are cut from the synthetic tissue generator (:mod:`histosynth.samples`), whose classes
differ in colour and texture, so detectors see real differences. A "synthetic" variant can be
an exact copy of held-out patches, a colour-shifted copy, or patches from another layout, and
can carry ``crop_sources`` like the sampling stage writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import Kind, prepare_output
from histosynth.data.classmap import ClassMap
from histosynth.data.patch_dataset import PatchDataset, PatchDatasetWriter
from histosynth.samples import SYNTHETIC_CLASSES, make_label_grid, render_region

__all__ = ["shift_colour", "toy_patches", "write_patch_dataset"]


def shift_colour(images: np.ndarray, delta) -> np.ndarray:
    """Images with ``delta`` (per RGB channel) added, clipped to 0..255: a controlled colour shift."""
    return np.clip(images.astype(np.int16) + np.asarray(delta, np.int16), 0, 255).astype(np.uint8)


def toy_patches(n: int, size: int = 64, seed: int = 0, num_classes: int = 4, cell: int = 16):
    """``n`` (image, map) pairs cut at random places of a synthetic tissue section.

    Returns uint8 arrays of shape (n, size, size, 3) and (n, size, size), and the level-0
    origins (n, 2).
    """
    rng = np.random.default_rng(seed)
    side = 48  # grid cells per side of the section
    grid = make_label_grid(side, side, num_classes, "blobs", seed)
    span = side * cell - size
    images, labels, origins = [], [], []
    while len(images) < n:
        x0, y0 = (int(v) for v in rng.integers(0, span, 2))
        img = render_region(grid, cell, x0, y0, size, size)
        lab = grid[np.arange(y0, y0 + size)[:, None] // cell, np.arange(x0, x0 + size)[None, :] // cell]
        if (lab > 0).mean() < 0.5:  # keep tissue, as the tiling stage would
            continue
        images.append(img)
        labels.append(lab.astype(np.uint8))
        origins.append((x0, y0))
    return np.stack(images), np.stack(labels), np.array(origins)


def write_patch_dataset(
    folder: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    splits: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    slide: str = "toy",
    extra: Mapping[str, Sequence[Any]] | None = None,
    num_classes: int = 4,
    config: Mapping[str, Any] | None = None,
) -> PatchDataset:
    """Write a finished patch dataset of the given images and maps; returns it opened.

    ``extra`` adds index columns (e.g. the synthetic columns ``seed``, ``crop_sources``); dicts
    and lists in it are stored as JSON strings, as the sampling stage does.
    """
    classes = ClassMap(SYNTHETIC_CLASSES.classes[:num_classes], source="toy")
    ids = list(ids) if ids is not None else [f"{slide}-{i:05d}" for i in range(len(images))]
    config = dict(config or {"toy": True, "slide": slide, "n": len(images)})
    claim = prepare_output(folder, Kind.PATCH_DATASET, config, overwrite=True)
    writer = PatchDatasetWriter(claim.folder, classes)
    rows = []
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        row = writer.write_patch(ids[i], img, lab)
        row.update(split=splits[i] if splits is not None else "train", slide=slide, x0=0, y0=0,
                   size0=int(img.shape[0]), mpp=0.5)  # fmt: skip
        for key, values in (extra or {}).items():
            v = values[i]
            row[key] = json.dumps(v) if isinstance(v, dict | list) else v
        rows.append(row)
    writer.write_shard("all", rows)
    writer.finalize(["all"], config)
    return PatchDataset(claim.folder)
