"""Where the semantic maps of a synthetic dataset come from.

- ``dataset``: held-out real maps (annotated or pseudo) of a patch dataset split, in order
  (cycled when more samples than maps are asked for);
- ``png``: a folder of the user's label PNGs (pixel values are class ids of ``--classes``);
- ``procedural``: generated layouts with target class fractions (:mod:`histosynth.sample.maps`).

Every source answers ``get(i, rng)`` with the ``i``-th map, a provenance string and, when it
has one, the slide and the real image the map belongs to (for same-slide or colour-matched
crop picking).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from histosynth.data.classmap import ClassMap, ClassMapError
from histosynth.data.patch_dataset import PatchDataset, decode_png
from histosynth.sample.maps import procedural_map

__all__ = ["MapItem", "DatasetMaps", "PngMaps", "ProceduralMaps"]


@dataclass
class MapItem:
    label: np.ndarray  # (H, W) uint8 class ids
    source: str  # provenance, e.g. "dataset:<id>:<patch>" or "procedural:noise"
    slide: str | None = None
    image: np.ndarray | None = None  # the real image of a dataset map (colour matching)


class DatasetMaps:
    """Maps of a patch dataset split."""

    def __init__(self, folder: str | Path, split: str = "test") -> None:
        self.ds = PatchDataset(folder, split=None if split == "all" else split)
        if len(self.ds) == 0:
            raise ClassMapError(f"{folder}: no patches in split {split!r} to take maps from")
        self.classes = self.ds.classes

    def __len__(self) -> int:
        return len(self.ds)

    def get(self, i: int, rng: np.random.Generator) -> MapItem:
        j = i % len(self.ds)
        row = self.ds.index.iloc[j]
        return MapItem(
            self.ds.label(j), f"dataset:{self.ds.id}:{row['id']}", str(row["slide"]), self.ds.image(j)
        )


class PngMaps:
    """A folder of label PNGs (sorted by name) with a class map file."""

    def __init__(self, folder: str | Path, classes: ClassMap) -> None:
        self.files = sorted(Path(folder).glob("*.png"))
        if not self.files:
            raise ClassMapError(f"{folder}: no label PNGs found")
        self.classes = classes

    def __len__(self) -> int:
        return len(self.files)

    def get(self, i: int, rng: np.random.Generator) -> MapItem:
        path = self.files[i % len(self.files)]
        label = decode_png(path, "L")
        self.classes.check_ids(np.unique(label), str(path))
        return MapItem(label, f"png:{path.name}")


class ProceduralMaps:
    """Procedural layouts of ``size`` px with target fractions per class id."""

    def __init__(
        self, classes: ClassMap, size: int, kind: str = "noise", fractions: dict[int, float] | None = None
    ):
        self.classes = classes
        self.size = size
        self.kind = kind
        tissue = [c for c in classes.ids if c != 0] or classes.ids
        self.fractions = fractions or {c: 1.0 / len(tissue) for c in tissue}
        classes.check_ids(self.fractions, "procedural fractions")

    def get(self, i: int, rng: np.random.Generator) -> MapItem:
        return MapItem(
            procedural_map(self.size, self.fractions, self.kind, rng=rng), f"procedural:{self.kind}"
        )
