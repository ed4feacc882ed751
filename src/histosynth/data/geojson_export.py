"""Label maps to QuPath-compatible GeoJSON (one annotation feature per class).

The layout is QuPath's own export (0.4 and later): a FeatureCollection of ``Feature`` objects,
each with an ``id`` (a UUID; here derived from the class and the outline, so the same map
always gives the same file), a ``geometry`` and ``properties`` holding ``objectType:
"annotation"`` and ``classification: {"name", "color": [r, g, b]}``. QuPath imports the file
by drag and drop onto the image; ``histosynth dataset --annotations`` reads it back.

Polygons are exact pixel outlines: each class mask is the union of its row runs (rectangles),
merged with shapely, so a round trip through a polygon rasteriser gives the same pixels.
Coordinates are level-0 pixels (``scale`` maps label pixels to level-0 pixels).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.data.classmap import ClassMap

__all__ = ["feature_id_of_text", "label_to_geojson", "write_geojson"]


def _mask_polygons(mask: np.ndarray):  # -> shapely geometry
    from shapely.geometry import box
    from shapely.ops import unary_union

    rects = []
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    for r, row in enumerate(np.diff(padded, axis=1)):
        starts, ends = np.flatnonzero(row == 1), np.flatnonzero(row == -1)
        rects.extend(box(s, r, e, r + 1) for s, e in zip(starts, ends, strict=True))
    return unary_union(rects)


def label_to_geojson(
    label: np.ndarray, classes: ClassMap, scale: float = 1.0, skip: tuple[int, ...] = (0,)
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with one (Multi)Polygon feature per present class.

    Parameters
    ----------
    label
        (H, W) class ids.
    classes
        Names and colours (QuPath reads ``classification.name`` and ``color``).
    scale
        Level-0 pixels per label pixel.
    skip
        Class ids not exported (background by default).
    """
    from shapely import affinity
    from shapely.geometry import mapping

    features = []
    for c in classes.classes:
        if c.id in skip or not (label == c.id).any():
            continue
        geom = _mask_polygons(label == c.id)
        if scale != 1.0:
            geom = affinity.scale(geom, xfact=scale, yfact=scale, origin=(0, 0))
        geometry = mapping(geom)
        features.append(
            {
                "type": "Feature",
                "id": _feature_id(c.name, geometry),
                "geometry": geometry,
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": c.name, "color": list(c.color)},
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _feature_id(name: str, geometry: dict[str, Any]) -> str:
    """A UUID (QuPath keeps one per object) that depends only on the class and its outline."""
    return feature_id_of_text(name, [json.dumps(geometry)])


def feature_id_of_text(name: str, geometry_text: Iterable[str]) -> str:
    """The feature id of a class whose geometry's JSON text (``json.dumps`` of the GeoJSON
    geometry) comes in pieces, so that a large outline need not be one string."""
    import hashlib
    import uuid

    digest = hashlib.sha256(f"{name}\n".encode())
    for piece in geometry_text:
        digest.update(piece.encode())
    return str(uuid.UUID(bytes=digest.digest()[:16], version=5))


def write_geojson(path: str | Path, label: np.ndarray, classes: ClassMap, scale: float = 1.0) -> Path:
    """Write :func:`label_to_geojson` atomically."""
    from histosynth.artifacts import atomic_write_text

    atomic_write_text(path, json.dumps(label_to_geojson(label, classes, scale)))
    return Path(path)
