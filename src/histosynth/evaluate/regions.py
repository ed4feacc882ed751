"""Per-class regions: square tiles that lie (almost) wholly inside one class of the map.

Per-class Fréchet distance compares the *texture of each tissue class* between real and
synthetic images. Masking whole images would put the mask's shape into the features (and
masks differ between sets), so each class is represented instead by non-overlapping
``tile × tile`` windows of the image whose map is at least ``purity`` that class. Both real and
synthetic images are cut the same way, from their own maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from histosynth.evaluate.features import ImageSet
from histosynth.seeding import numpy_rng

__all__ = ["class_region_sets", "pure_tiles"]


def pure_tiles(label: np.ndarray, class_id: int, tile: int, purity: float) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the non-overlapping tiles on a ``tile`` grid that are ≥ ``purity`` ``class_id``."""
    h, w = label.shape
    rows, cols = h // tile, w // tile
    if rows == 0 or cols == 0:
        return []
    block = (
        (label[: rows * tile, : cols * tile] == class_id).reshape(rows, tile, cols, tile).mean(axis=(1, 3))
    )
    return [
        (int(c * tile), int(r * tile), tile, tile) for r, c in zip(*np.nonzero(block >= purity), strict=True)
    ]


def class_region_sets(
    dataset,
    rows: Sequence[int],
    tile: int = 64,
    purity: float = 0.9,
    max_per_image: int = 4,
    seed: int = 0,
) -> dict[int, ImageSet]:
    """For each class id of ``dataset``, an :class:`ImageSet` of its pure tiles in ``rows``.

    At most ``max_per_image`` tiles per image and class are kept, drawn with a generator seeded
    by (seed, image id, class), so the choice does not depend on which other rows are present.
    """
    spec = {
        "kind": "class-tiles",
        "tile": tile,
        "purity": purity,
        "max_per_image": max_per_image,
        "seed": seed,
    }
    found: dict[int, tuple[list[str], list[str], list[tuple[int, int, int, int]]]] = {
        c: ([], [], []) for c in dataset.classes.ids
    }
    for i in rows:
        label = dataset.label(i)
        pid, path = str(dataset.index.at[i, "id"]), str(dataset.index.at[i, "image"])
        for c in np.unique(label):
            if int(c) not in found:
                continue
            boxes = pure_tiles(label, int(c), tile, purity)
            if len(boxes) > max_per_image:
                pick = numpy_rng(seed, pid, int(c)).choice(len(boxes), max_per_image, replace=False)
                boxes = [boxes[j] for j in sorted(pick)]
            ids, paths, bxs = found[int(c)]
            ids += [pid] * len(boxes)
            paths += [path] * len(boxes)
            bxs += boxes
    return {
        c: ImageSet(dataset.id, dataset.folder, tuple(ids), tuple(paths), tuple(bxs), {**spec, "class": c})
        for c, (ids, paths, bxs) in found.items()
    }
