"""The QuPath GeoJSON of a large image's label map, outlined band by band in bounded memory.

:func:`histosynth.data.geojson_export.write_geojson` outlines a map held whole: a boolean mask
per class and one shapely rectangle per row run of the whole map (some 120 MB above the model at
4096 px, ten times the map). Here the memory-mapped map is read in bands of about
:data:`BAND_PX` pixels (its pages released after each), each band's runs are merged into that
band's polygons, and each class's band polygons are merged when the class is written: the same
region (so the re-imported map is the same). The file is written as it is made, polygon by
polygon, never held as Python objects or as one string: at 16k px those took 270 MB above the
model for an 18 MB file, 180 MB now. What stays is one class's outline as shapely geometry, which
grows with the outline's length: a region can span the whole map, so its polygon is whole only at
the end (a sweep that writes regions as they close measured no better, at twice the time). The
file is byte for byte what ``json.dumps`` of the whole collection gives, the layout of
``write_geojson`` (one feature per class present, background skipped, ids from the class and the
outline).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.sample.paged import release

__all__ = ["write_large_geojson"]

BAND_PX = 1 << 21  # label pixels per band: a few MB of masks and rectangles
_COPY = 1 << 20  # characters per read when the spooled geometry is copied into the file


def write_large_geojson(
    path: str | Path, label: np.ndarray, classes: Any, step: int = 1, skip: tuple[int, ...] = (0,)
) -> Path:
    """Write the outlines of every ``step``-th pixel of ``label`` (``(H, W)`` class ids, a memory
    map) as QuPath annotations in level-0 pixels (``step`` level-0 pixels per label pixel)."""
    from shapely import affinity
    from shapely.geometry import shape
    from shapely.ops import unary_union

    from histosynth.artifacts import atomic_writer
    from histosynth.data.geojson_export import feature_id_of_text, label_to_geojson
    from histosynth.heap import trim

    path = Path(path)
    H, W = label.shape
    rows = step * max(1, BAND_PX // -(-W // step))  # map rows per band: a multiple of step
    kept: dict[str, tuple[dict, list[Any]]] = {}  # class name -> (a band's feature, band polygons)
    for r in range(0, H, rows):
        band = np.array(label[r : r + rows : step, ::step])
        release(label)
        for f in label_to_geojson(band, classes, skip=skip)["features"]:
            name = f["properties"]["classification"]["name"]
            kept.setdefault(name, (f, []))[1].append(affinity.translate(shape(f["geometry"]), yoff=r // step))
        trim()  # each band's masks, rectangles and dicts, freed between the polygons kept
    # json.dumps of {"type": "FeatureCollection", "features": [feature, ...]}, written in pieces;
    # a feature is {"type", "id", "geometry", "properties"} in that order, as write_geojson's.
    with atomic_writer(path, "w") as out:
        out.write('{"type": "FeatureCollection", "features": [')
        first = True
        for c in classes.classes:  # the order write_geojson gives
            if c.name not in kept:
                continue
            feature, parts = kept.pop(c.name)
            geom = unary_union(parts)
            del parts  # the band pieces go before the outline is written
            # The geometry's text goes to a spool first: the feature's id, written before it,
            # is a hash of that text.
            with tempfile.TemporaryFile("w+", encoding="utf-8", dir=path.parent) as spool:
                fid = feature_id_of_text(c.name, _written(_geometry_text(geom, step), spool))
                del geom
                spool.seek(0)
                head = json.dumps({"type": feature["type"], "id": fid})[:-1]  # without its "}"
                out.write(("" if first else ", ") + head + ', "geometry": ')
                shutil.copyfileobj(spool, out, _COPY)
            out.write(', "properties": ' + json.dumps(feature["properties"]) + "}")
            first = False
            trim()
        out.write("]}")
    return path


def _geometry_text(geom: Any, step: int) -> Iterator[str]:
    """``json.dumps(shapely.geometry.mapping(geom scaled by step))`` in pieces, one polygon at a
    time (``json.dumps`` writes tuples as lists and joins items with ``", "``)."""
    from shapely import affinity
    from shapely.geometry import mapping

    def scaled(g: Any) -> Any:
        return g if step == 1 else affinity.scale(g, xfact=step, yfact=step, origin=(0, 0))

    if geom.geom_type != "MultiPolygon":  # a Polygon (or anything else): one piece
        yield json.dumps(mapping(scaled(geom)))
        return
    yield '{"type": "MultiPolygon", "coordinates": ['
    for i, poly in enumerate(geom.geoms):
        yield ("" if i == 0 else ", ") + json.dumps(mapping(scaled(poly))["coordinates"])
    yield "]}"


def _written(pieces: Iterator[str], fh: Any) -> Iterator[str]:
    """Each piece, once it is written to ``fh`` (the text is hashed and spooled in one pass)."""
    for piece in pieces:
        fh.write(piece)
        yield piece
