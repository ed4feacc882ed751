"""Annotations for the cluster report, from label-mask images.

A folder of ``<slide>.labels.png`` (uint8 class ids, the slide's level 0 or a uniform
downsample of it, as ``histosynth synth-slide`` writes) plus a ``classes.json`` (or
``<slide>.classes.json``) becomes a slide → :class:`~histosynth.wsi.labels.LabelSource` map,
so the report can measure how pure the pseudo-classes are against real classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.data.classmap import ClassMap

__all__ = ["MaskLabelSource", "load_truth_masks"]


@dataclass(frozen=True)
class MaskLabelSource:
    """Labels from an in-memory mask whose pixel is ``downsample`` level-0 pixels wide."""

    mask: np.ndarray
    downsample: float
    classes: ClassMap

    def label_region(self, x0: int, y0: int, size0: float, out_size: int) -> np.ndarray:
        centres = (np.arange(out_size) + 0.5) * (size0 / out_size)
        cols = np.floor((x0 + centres) / self.downsample).astype(int)
        rows = np.floor((y0 + centres) / self.downsample).astype(int)
        vc = (cols >= 0) & (cols < self.mask.shape[1])
        vr = (rows >= 0) & (rows < self.mask.shape[0])
        out = np.zeros((out_size, out_size), np.uint8)
        out[np.ix_(vr, vc)] = self.mask[np.ix_(rows[vr], cols[vc])]
        return out


def load_truth_masks(folder: str | Path, slides: dict[str, tuple[str, float]], opener: Any) -> dict[str, Any]:
    """Label sources for the slides that have a ``<slide>.labels.png`` in ``folder``.

    Parameters
    ----------
    folder
        The mask folder.
    slides
        Slide name → (slide path, level-0 mpp), to learn each slide's level-0 width.
    opener
        ``opener(path, mpp) -> SlideReader``.
    """
    from histosynth.data.patch_dataset import decode_png

    folder = Path(folder)
    shared = folder / "classes.json"
    out: dict[str, Any] = {}
    for slide, (path, mpp) in slides.items():
        mask_path = folder / f"{slide}.labels.png"
        if not mask_path.is_file():
            continue
        own = folder / f"{slide}.classes.json"
        classes = ClassMap.from_json(own if own.is_file() else shared)
        mask = decode_png(mask_path, "L")
        classes.check_ids(np.unique(mask), str(mask_path))
        reader = opener(path, mpp)
        try:
            width0 = reader.dimensions[0]
        finally:
            reader.close()
        out[slide] = MaskLabelSource(mask, width0 / mask.shape[1], classes)
    return out
