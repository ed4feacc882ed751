"""Outlining a large map band by band gives the regions of outlining it whole."""

import json

import numpy as np
import pytest
from shapely.geometry import shape

from histosynth.data.classmap import ClassMap
from histosynth.data.geojson_export import label_to_geojson
from histosynth.sample import large_geojson
from histosynth.sample.paged import open_map


@pytest.mark.parametrize("step", [1, 2])
def test_banded_outlines_cover_the_same_regions(step, tmp_path, monkeypatch):
    monkeypatch.setattr(large_geojson, "BAND_PX", 120)  # many bands, cut across the regions
    classes = ClassMap.from_names(["background", "tumour", "stroma"])
    label = open_map(tmp_path / "label.u8", (45, 38), np.uint8)
    yy, xx = np.mgrid[:45, :38]
    label[:] = np.where((yy - 20) ** 2 + (xx - 15) ** 2 < 150, 1, np.where(xx > 28, 2, 0))
    label[3:6, 30:34] = 1  # a second, separate piece of class 1
    path = large_geojson.write_large_geojson(tmp_path / "a.geojson", label, classes, step)
    got = {f["properties"]["classification"]["name"]: f for f in json.loads(path.read_text())["features"]}
    whole = label_to_geojson(np.array(label[::step, ::step]), classes, scale=float(step))["features"]
    assert set(got) == {f["properties"]["classification"]["name"] for f in whole} == {"tumour", "stroma"}
    for f in whole:
        mine = got[f["properties"]["classification"]["name"]]
        assert shape(mine["geometry"]).symmetric_difference(shape(f["geometry"])).area == 0
        assert mine["properties"] == f["properties"]


@pytest.mark.parametrize("step", [1, 3])
def test_streamed_text_is_json_dumps_of_the_whole(step, tmp_path, monkeypatch):
    """The file is written polygon by polygon, never as one object; its text is still exactly
    ``json.dumps`` of the collection, ids included (checked on Polygon and MultiPolygon)."""
    from shapely import affinity
    from shapely.geometry import box, mapping

    from histosynth.data.geojson_export import _feature_id, feature_id_of_text

    one = box(0, 0, 2, 3)
    several = box(0, 0, 2, 2).union(box(5, 5, 7, 9)).union(box(0, 5, 1, 6))
    for geom in (one, several):
        text = "".join(large_geojson._geometry_text(geom, step))
        whole = mapping(affinity.scale(geom, xfact=step, yfact=step, origin=(0, 0)))
        assert text == json.dumps(whole)
        assert feature_id_of_text("tumour", [text[:5], text[5:]]) == _feature_id("tumour", whole)
    monkeypatch.setattr(large_geojson, "_COPY", 7)  # the spool copied in many reads
    classes = ClassMap.from_names(["background", "tumour", "stroma"])
    label = open_map(tmp_path / "label.u8", (30, 24), np.uint8)
    label[2:9, 3:7], label[15:20, 1:22], label[22:, 10:] = 1, 2, 1
    path = large_geojson.write_large_geojson(tmp_path / "a.geojson", label, classes, step)
    fc = json.loads(path.read_text())
    assert path.read_text() == json.dumps(fc)  # the separators and order of json.dumps
    for f in fc["features"]:
        assert f["id"] == _feature_id(f["properties"]["classification"]["name"], f["geometry"])
    assert [f["geometry"]["type"] for f in fc["features"]] == ["MultiPolygon", "Polygon"]
