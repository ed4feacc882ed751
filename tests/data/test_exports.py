import numpy as np
import pytest

from histosynth.data.classmap import ClassMap
from histosynth.data.geojson_export import label_to_geojson
from histosynth.data.pyramid_tiff import array_region_fn, write_pyramid_tiff
from histosynth.sample.maps import procedural_map


def test_geojson_polygons_rasterise_back_to_the_label():
    from shapely.geometry import Point, shape

    label = procedural_map(48, {0: 0.3, 1: 0.4, 2: 0.3}, rng=np.random.default_rng(0))
    classes = ClassMap.from_names(["background", "a", "b"])
    fc = label_to_geojson(label, classes)
    assert [f["properties"]["classification"]["name"] for f in fc["features"]] == ["a", "b"]
    geoms = {f["properties"]["classification"]["name"]: shape(f["geometry"]) for f in fc["features"]}
    back = np.zeros_like(label)
    for r in range(48):
        for c in range(48):
            p = Point(c + 0.5, r + 0.5)
            back[r, c] = 1 if geoms["a"].contains(p) else 2 if geoms["b"].contains(p) else 0
    assert np.array_equal(back, label)
    scaled = label_to_geojson(label, classes, scale=4.0)
    assert shape(scaled["features"][0]["geometry"]).area == pytest.approx(16 * (label == 1).sum())


def test_pyramid_tiff_image_and_label_align(tmp_path):
    import openslide
    import tifffile

    rng = np.random.default_rng(0)
    label = np.kron(procedural_map(40, {1: 0.5, 2: 0.5}, rng=rng), np.ones((16, 16), np.uint8))
    img = np.where(label[..., None] == 1, [200, 60, 160], [240, 170, 200]).astype(np.uint8)
    write_pyramid_tiff(tmp_path / "i.tif", array_region_fn(img), (640, 640), mpp=0.5, tile=128)
    write_pyramid_tiff(
        tmp_path / "l.tif", array_region_fn(label, labels=True), (640, 640), mpp=0.5, channels=1,
        tile=128, compression="deflate",
    )  # fmt: skip
    with openslide.OpenSlide(str(tmp_path / "i.tif")) as s:
        assert s.level_count == 3 and float(s.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        back = np.asarray(s.read_region((0, 0), 0, (640, 640)).convert("RGB")).astype(int)
    assert np.abs(back - img).mean() < 4
    with tifffile.TiffFile(tmp_path / "l.tif") as tf:
        assert np.array_equal(tf.pages[0].asarray(), label)
        assert np.array_equal(tf.pages[1].asarray(), label[::2, ::2])
    with pytest.raises(ValueError, match="losslessly"):
        write_pyramid_tiff(tmp_path / "x.tif", array_region_fn(label, True), (640, 640), 0.5, channels=1)
