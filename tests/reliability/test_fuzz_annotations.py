"""Fuzzing the annotation parsers: any file gives annotations or one user error, never a crash.

The tiling geometry is fuzzed in tests/wsi/test_grid.py and the config override parser in
test_fuzz_config.py; these cover QuPath GeoJSON and ASAP XML, from random bytes to nearly
valid documents with random coordinates, types and nesting.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from histosynth.errors import USER_ERRORS
from histosynth.wsi.annotations import read_polygons

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1", None, [], {}]),
)
points = st.lists(numbers, min_size=0, max_size=3)
rings = st.lists(points, min_size=0, max_size=6)
coords = st.one_of(st.lists(rings, max_size=3), st.lists(st.lists(rings, max_size=2), max_size=2), numbers)
geometry = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString", "Nope", 3]),
        "coordinates": coords,
    }
)
properties = st.one_of(
    st.none(),
    st.fixed_dictionaries({"classification": st.one_of(st.none(), st.text(max_size=5),
                                                        st.fixed_dictionaries({"name": st.text(max_size=8)}))}),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    st.lists(st.integers(), max_size=2),
    st.fixed_dictionaries({"name": st.one_of(st.text(max_size=3), st.integers())}),
)  # fmt: skip
feature = st.fixed_dictionaries({"type": st.just("Feature"), "geometry": st.one_of(st.none(), geometry),
                                 "properties": properties})  # fmt: skip
geojson = st.one_of(
    feature,
    st.fixed_dictionaries({"type": st.just("FeatureCollection"), "features": st.lists(feature, max_size=4)}),
    st.lists(feature, max_size=3),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3)),
)  # fmt: skip


def _parse(suffix: str, data: bytes):
    """Parse ``data`` as an annotation file: the annotations, or the user error it raised."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            anns = read_polygons(path)
        except USER_ERRORS as exc:
            message = str(exc)
            assert "fuzz" + suffix in message and "\n" not in message, message
            return exc
    for a in anns:  # what parses is usable: a named, non-empty, valid area
        assert a.name and a.geometry.is_valid and not a.geometry.is_empty and a.geometry.area > 0
    return anns


@FUZZ
@given(geojson)
def test_geojson_documents(doc):
    _parse(".geojson", json.dumps(doc).encode())


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([".geojson", ".json", ".xml"]))
def test_random_bytes(data, suffix):
    _parse(suffix, data)


@FUZZ
@given(geojson, st.floats(0.0, 1.0))
def test_truncated_geojson(doc, cut):
    text = json.dumps(doc)
    _parse(".geojson", text[: int(len(text) * cut)].encode())


coordinate = st.builds(
    lambda o, x, y: f'<Coordinate Order="{o}" X="{x}" Y="{y}"/>',
    st.one_of(st.integers(-2, 8), st.just("a")),
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just("nan"), st.just("")),
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just("inf"), st.just("x")),
)
annotation = st.builds(
    lambda kind, group, cs: f'<Annotation Name="A" Type="{kind}" PartOfGroup="{group}"><Coordinates>'
    + "".join(cs) + "</Coordinates></Annotation>",
    st.sampled_from(["Polygon", "Rectangle", "Spline", "Dot", "PointSet", ""]),
    st.sampled_from(["_0", "_1", "_2", "Tumor", "None", ""]),
    st.lists(coordinate, max_size=6),
)  # fmt: skip
asap = st.builds(
    lambda anns, cut: ("<ASAP_Annotations><Annotations>" + "".join(anns) + "</Annotations></ASAP_Annotations>")[
        : None if cut is None else cut
    ],
    st.lists(annotation, max_size=4),
    st.one_of(st.none(), st.integers(0, 400)),
)  # fmt: skip


@FUZZ
@given(asap)
def test_asap_xml_documents(text):
    _parse(".xml", text.encode())


@FUZZ
@given(st.sampled_from(['<!DOCTYPE a [<!ENTITY e "x">]>', '<!DOCTYPE a SYSTEM "file:///etc/passwd">',
                        '<!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1/">%p;]>']), asap)  # fmt: skip
def test_xml_with_a_doctype_is_always_refused(doctype, text):
    result = _parse(".xml", (doctype + text).encode())
    assert isinstance(result, Exception), "a document with entities or external references was parsed"
