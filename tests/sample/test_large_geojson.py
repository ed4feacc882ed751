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
