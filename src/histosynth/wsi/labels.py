"""The label-source protocol: where a patch's semantic map comes from, and label sets of them.

Annotations (XML/GeoJSON polygons, label-mask rasters), maps derived from the stain and
pseudo-maps painted from cluster ids all implement it, so the ``dataset`` stage treats annotated
and unannotated slides alike. A :class:`LabelSet` is what that stage takes: one source per
slide, their classes and an identity. Each kind has its factory:

- :func:`histosynth.wsi.label_sources.annotation_labels` (annotation files of a folder);
- :func:`histosynth.data.derived_labels.stain_labels` (colour deconvolution, no annotations);
- :func:`histosynth.cluster.pseudo_maps.pseudo_labels` (tissue clusters of the embeddings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from histosynth.data.classmap import ClassMap

__all__ = ["LabelSet", "LabelSource"]


@runtime_checkable
class LabelSource(Protocol):
    """Per-slide semantic labels, queried by level-0 square regions."""

    classes: ClassMap

    def label_region(self, x0: int, y0: int, size0: float, out_size: int) -> np.ndarray:
        """``(out_size, out_size)`` uint8 class ids of the level-0 square
        ``[x0, x0 + size0) × [y0, y0 + size0)``; pixels outside every region are class 0."""
        ...


@dataclass(frozen=True)
class LabelSet:
    """Per-slide label sources of one kind, as the ``dataset`` stage takes them.

    Attributes
    ----------
    classes
        The class map of every source.
    sources
        Slide name → :class:`LabelSource`, or a zero-argument callable returning one (loaded
        inside the slide's work item, so a malformed annotation fails that slide only).
    id
        An identity of the labels (their files' content, a cluster artefact's id), recorded
        among the dataset's inputs.
    fill
        The class of tissue that no label covers, unless the stage's config names one.
    files
        File name → JSON object written into the dataset (the ``hierarchy.json`` of pseudo-maps).
    """

    classes: ClassMap
    sources: Mapping[str, LabelSource | Callable[[], LabelSource]]
    id: str
    fill: str | None = None
    files: Mapping[str, Any] = field(default_factory=dict)
