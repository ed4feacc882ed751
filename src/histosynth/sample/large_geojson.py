"""The QuPath GeoJSON of a large image's label map, outlined band by band in bounded memory.

:func:`histosynth.data.geojson_export.write_geojson` outlines a map held whole: a boolean mask
per class and one shapely rectangle per row run of the whole map (some 120 MB above the model at
4096 px, ten times the map). Here the memory-mapped map is read in bands of about
:data:`BAND_PX` pixels (its pages released after each), each band's runs are merged into that
band's polygons, and each class's band polygons are merged at the end: the same region (so the
re-imported map is the same), in memory that grows with the outline's length, not the map's
area. The file has the layout of ``write_geojson`` (one feature per class present, background
skipped, ids from the class and the outline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.sample.paged import release

__all__ = ["write_large_geojson"]

BAND_PX = 1 << 21  # label pixels per band: a few MB of masks and rectangles


def write_large_geojson(
    path: str | Path, label: np.ndarray, classes: Any, step: int = 1, skip: tuple[int, ...] = (0,)
) -> Path:
    """Write the outlines of every ``step``-th pixel of ``label`` (``(H, W)`` class ids, a memory
    map) as QuPath annotations in level-0 pixels (``step`` level-0 pixels per label pixel)."""
    from shapely import affinity
    from shapely.geometry import mapping, shape
    from shapely.ops import unary_union

    from histosynth.artifacts import atomic_write_text
    from histosynth.data.geojson_export import _feature_id, label_to_geojson

    H, W = label.shape
    rows = step * max(1, BAND_PX // -(-W // step))  # map rows per band: a multiple of step
    kept: dict[str, tuple[dict, list[Any]]] = {}  # class name -> (a band's feature, band polygons)
    for r in range(0, H, rows):
        band = np.array(label[r : r + rows : step, ::step])
        release(label)
        for f in label_to_geojson(band, classes, skip=skip)["features"]:
            name = f["properties"]["classification"]["name"]
            kept.setdefault(name, (f, []))[1].append(affinity.translate(shape(f["geometry"]), yoff=r // step))
    features = []
    for c in classes.classes:  # the order write_geojson gives
        if c.name not in kept:
            continue
        feature, parts = kept[c.name]
        geom = unary_union(parts)
        if step != 1:
            geom = affinity.scale(geom, xfact=step, yfact=step, origin=(0, 0))
        geometry = mapping(geom)
        features.append({**feature, "id": _feature_id(c.name, geometry), "geometry": geometry})
    atomic_write_text(path, json.dumps({"type": "FeatureCollection", "features": features}))
    return Path(path)
