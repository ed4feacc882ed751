"""Polygon annotations: Camelyon16/ASAP XML and QuPath/GeoJSON, parsed into shapely geometry.

Both readers return :class:`Annotation` records in level-0 pixel coordinates. XML is parsed
with ``defusedxml`` (no DTD entities, no external references, no entity expansion), so a
hostile file is refused with :class:`~histosynth.errors.UnsafeFileError` instead of reading
local files or exhausting memory. Every error names the file and the offending annotation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histosynth.wsi.base import SlideError

__all__ = ["Annotation", "AnnotationError", "check_within", "read_asap_xml", "read_geojson", "read_polygons"]

# ASAP annotation types that enclose an area; dots and point sets carry none and are skipped.
_AREA_TYPES = {"polygon", "spline", "rectangle", "polygonal"}
# Annotations may touch the slide's edge; a few level-0 pixels beyond it is drawing slack.
EDGE_SLACK = 2.0


class AnnotationError(SlideError):
    """An annotation file that is malformed or does not fit its slide; the message names both."""


@dataclass(frozen=True)
class Annotation:
    """One annotated region.

    Attributes
    ----------
    name
        The class name as written in the file (ASAP ``PartOfGroup``, GeoJSON
        ``classification.name``), before any alias is applied.
    geometry
        A valid shapely Polygon or MultiPolygon in level-0 pixels (holes kept).
    label
        Where it came from, for messages (``"annotation 'Annotation 3'"``, ``"feature #2"``).
    """

    name: str
    geometry: Any
    label: str


def _valid_area(geom: Any, path: Path, label: str) -> Any | None:
    """``geom`` made valid and reduced to its polygonal part (``None`` when it has no area)."""
    import shapely
    from shapely.geometry import GeometryCollection, MultiPolygon, Polygon

    if not geom.is_valid:
        geom = shapely.make_valid(geom)  # self-intersections are common in hand-drawn outlines
    if isinstance(geom, GeometryCollection):
        parts = [g for g in geom.geoms if isinstance(g, Polygon | MultiPolygon)]
        geom = shapely.union_all(parts) if parts else Polygon()
    if not isinstance(geom, Polygon | MultiPolygon) or geom.is_empty or geom.area <= 0:
        return None
    if not all(map(math.isfinite, geom.bounds)):
        raise AnnotationError(f"{path}: {label} has non-finite coordinates")
    return geom


# ------------------------------------------------------------------------------------- XML
def read_asap_xml(path: str | Path) -> list[Annotation]:
    """Read a Camelyon16/ASAP XML annotation file.

    ``<Annotation Name=... Type="Polygon" PartOfGroup="Tumor">`` elements with
    ``<Coordinate Order=... X=... Y=...>`` children, in level-0 pixels. Vertices are joined in
    ``Order``; dot and point-set annotations are skipped.

    Raises
    ------
    UnsafeFileError
        When the file declares entities or references external resources.
    AnnotationError
        When the XML is malformed or an area annotation has bad or too few coordinates.
    """
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException
    from shapely.geometry import Polygon

    from histosynth.errors import UnsafeFileError

    path = Path(path)
    try:
        # ASAP/Camelyon16 files have no DOCTYPE; one that names an external DTD is refused too,
        # so no parser setting can ever make it fetch anything.
        root = SafeET.parse(path, forbid_dtd=True, forbid_entities=True, forbid_external=True).getroot()
    except DefusedXmlException as exc:
        raise UnsafeFileError(
            f"{path}: refused to parse XML that uses a DOCTYPE, entities or external references "
            f"({type(exc).__name__})"
        ) from None
    except SafeET.ParseError as exc:
        raise AnnotationError(f"{path}: not well-formed XML ({exc})") from None
    out = []
    for i, el in enumerate(root.iter("Annotation")):
        label = f"annotation {el.get('Name') or f'#{i}'!r}"
        if (el.get("Type") or "polygon").lower() not in _AREA_TYPES:
            continue
        group = el.get("PartOfGroup")
        if not group:
            raise AnnotationError(f"{path}: {label} has no PartOfGroup (class)")
        # PartOfGroup="None" is a group name like any other (Camelyon16 uses it); the label
        # scheme says what it means (camelyon16: normal), see histosynth.wsi.schemes.
        coords = []
        for c in el.iter("Coordinate"):
            try:
                order = float(c.get("Order", len(coords)))
                coords.append((order, float(c.get("X")), float(c.get("Y"))))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise AnnotationError(f"{path}: {label} has a coordinate without numeric X/Y") from None
        if len(coords) < 3:
            raise AnnotationError(f"{path}: {label} has {len(coords)} vertices; a polygon needs at least 3")
        if not all(math.isfinite(v) for c in coords for v in c):
            raise AnnotationError(f"{path}: {label} has non-finite coordinates (nan or inf)")
        coords.sort(key=lambda t: t[0])
        try:
            polygon = Polygon([(x, y) for _, x, y in coords])
        except Exception as exc:  # GEOS refuses some degenerate rings
            raise AnnotationError(f"{path}: {label} has a malformed outline ({exc})") from None
        geom = _valid_area(polygon, path, label)
        if geom is not None:
            out.append(Annotation(group, geom, label))
    return out


# --------------------------------------------------------------------------------- GeoJSON
def _class_name(props: Mapping[str, Any]) -> str | None:
    cls = props.get("classification")
    if isinstance(cls, Mapping):
        name = cls.get("name")
        parts = cls.get("names")  # QuPath 0.5 writes a derived class as its parts: ["Tumor", "Positive"]
        if not name and isinstance(parts, list) and parts:
            name = ": ".join(map(str, parts))
        return str(name) if name else None
    if isinstance(cls, str) and cls:
        return cls
    return None


def read_geojson(path: str | Path) -> list[Annotation]:
    """Read a QuPath/GeoJSON annotation file.

    Accepts a FeatureCollection, a bare list of Features (QuPath's export) or one Feature.
    Polygon and MultiPolygon geometries are kept with their holes; the class is
    ``properties.classification.name``. Features without a classification (QuPath's
    unclassified objects) and geometries without area are skipped.

    Raises
    ------
    AnnotationError
        When the JSON is malformed or a geometry cannot be read.
    """
    from shapely.geometry import shape

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, Mapping) and data.get("type") == "FeatureCollection":
        features = data.get("features")
    elif isinstance(data, Mapping) and data.get("type") == "Feature":
        features = [data]
    else:
        features = data
    if not isinstance(features, list):
        raise AnnotationError(f"{path}: expected a GeoJSON FeatureCollection or a list of Features")
    out = []
    for i, feat in enumerate(features):
        if not isinstance(feat, Mapping) or not isinstance(feat.get("geometry"), Mapping):
            raise AnnotationError(f"{path}: feature #{i} is not a GeoJSON Feature with a geometry")
        props = feat.get("properties")
        props = props if isinstance(props, Mapping) else {}
        name = _class_name(props)
        label = f"feature #{i}" + (f" ({props['name']!r})" if props.get("name") else "")
        if name is None:
            continue
        if feat["geometry"].get("type") not in ("Polygon", "MultiPolygon", "GeometryCollection"):
            continue
        try:
            geom = shape(feat["geometry"])
        except Exception as exc:  # shapely raises several types on bad coordinate arrays
            raise AnnotationError(f"{path}: {label} has a malformed geometry ({exc})") from None
        geom = _valid_area(geom, path, label)
        if geom is not None:
            out.append(Annotation(name, geom, label))
    return out


def read_polygons(path: str | Path) -> list[Annotation]:
    """Read ``.xml`` (ASAP) or ``.geojson``/``.json`` (GeoJSON) annotations by suffix."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return read_asap_xml(path)
    if suffix in (".geojson", ".json"):
        return read_geojson(path)
    raise AnnotationError(f"{path}: unknown annotation format {suffix!r}; expected .xml, .geojson or .json")


def check_within(annotations: list[Annotation], path: str | Path, width0: int, height0: int) -> None:
    """Raise when an annotation reaches outside the ``width0 × height0`` level-0 slide."""
    for a in annotations:
        minx, miny, maxx, maxy = a.geometry.bounds
        if (
            minx < -EDGE_SLACK
            or miny < -EDGE_SLACK
            or maxx > width0 + EDGE_SLACK
            or maxy > height0 + EDGE_SLACK
        ):
            raise AnnotationError(
                f"{path}: {a.label} ({a.name}) spans x {minx:.0f}..{maxx:.0f}, y {miny:.0f}..{maxy:.0f}, "
                f"outside the {width0}×{height0} px slide"
            )
