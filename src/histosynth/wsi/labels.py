"""The label-source protocol: where a patch's semantic map comes from.

Annotations (XML/GeoJSON polygons, label-mask rasters) and pseudo-maps painted from cluster ids
all implement it, so the ``dataset`` stage treats annotated and unannotated slides alike.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from histosynth.data.classmap import ClassMap

__all__ = ["LabelSource"]


@runtime_checkable
class LabelSource(Protocol):
    """Per-slide semantic labels, queried by level-0 square regions."""

    classes: ClassMap

    def label_region(self, x0: int, y0: int, size0: float, out_size: int) -> np.ndarray:
        """``(out_size, out_size)`` uint8 class ids of the level-0 square
        ``[x0, x0 + size0) × [y0, y0 + size0)``; pixels outside every region are class 0."""
        ...
