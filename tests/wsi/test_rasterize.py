"""Rasterised maps against ground truth: exact for axis-aligned polygons, within a pixel otherwise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from histosynth.samples import write_synthetic_slide
from histosynth.wsi.label_sources import MaskLabels, load_label_source
from histosynth.wsi.rasterize import fill_rings
from histosynth.wsi.schemes import LabelScheme

from ._helpers import truth_at, write_geojson


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    d = tmp_path_factory.mktemp("blocks")
    slide = write_synthetic_slide(
        d / "blocks.tif", size=(1536, 1024), levels=2, layout="blocks", cell=32, compression="none", seed=3
    )
    return slide, write_geojson(slide, d / "blocks.geojson")


@pytest.mark.parametrize("mpp_ratio,size", [(1.0, 256), (2.0, 128), (1.0, 100), (4.0, 64)])
def test_axis_aligned_maps_exact(blocks, synthetic_slide, tmp_path, mpp_ratio, size):
    """Every patch of a grid over the slide equals the ground truth sampled at pixel centres."""
    for slide, geo in [blocks, (synthetic_slide, write_geojson(synthetic_slide, tmp_path / "syn.geojson"))]:
        src = load_label_source(geo, LabelScheme(slide.classes), (slide.width, slide.height))
        size0 = size * mpp_ratio
        for y0 in range(0, int(slide.height - size0) + 1, int(size0 * 0.75) + 5):
            for x0 in range(0, int(slide.width - size0) + 1, int(size0 * 0.75) + 5):
                got = src.label_region(x0, y0, size0, size)
                np.testing.assert_array_equal(got, truth_at(slide, x0, y0, size0, size), err_msg=f"{x0},{y0}")


def _centre_truth(geom, n):
    import shapely

    c = np.arange(n) + 0.5
    xx, yy = np.meshgrid(c, c)
    return shapely.contains_xy(geom, xx, yy)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), holes=st.booleans())
def test_free_polygons_within_a_pixel(seed, holes):
    """Star polygons (with a rotated hole): disagreements only within a pixel of the boundary."""
    import shapely
    from shapely.geometry import Polygon

    rng = np.random.default_rng(seed)
    n = 64
    ang = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 30)))
    rad = rng.uniform(8, 30, len(ang))
    outer = np.c_[32 + rad * np.cos(ang), 32 + rad * np.sin(ang)]
    inner = []
    if holes:
        t = rng.uniform(0, np.pi)
        sq = np.array([[-3, -3], [3, -3], [3, 3], [-3, 3]]) @ np.array(
            [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
        )
        inner = [sq + 32]
    poly = shapely.make_valid(Polygon(outer, inner))
    from histosynth.wsi.rasterize import geometry_rings

    got = fill_rings(geometry_rings(poly, 0, 0, 1.0), (n, n))
    want = _centre_truth(poly, n)
    bad = np.argwhere(got != want)
    if len(bad):
        pts = shapely.points(bad[:, 1] + 0.5, bad[:, 0] + 0.5)
        assert (shapely.distance(poly.boundary, pts) <= 1.0).all()
    assert (got != want).sum() <= 2  # in practice only exact ties on the boundary


def test_fill_rings_edge_cases():
    assert not fill_rings([], (4, 4)).any()
    assert not fill_rings([np.array([[0, 0], [3, 0]])], (4, 4)).any()  # degenerate
    full = fill_rings([np.array([[-5, -5], [10, -5], [10, 10], [-5, 10]])], (4, 4))
    assert full.all()  # a polygon larger than the output fills it


def test_label_mask_png_downsampled(blocks, tmp_path):
    from PIL import Image

    slide, _ = blocks
    # a 1/4-resolution label mask: each mask pixel is a 4×4 level-0 block (cells are 32 px)
    small = slide.label()[::4, ::4]
    Image.fromarray(small).save(tmp_path / "blocks_mask.png")
    src = load_label_source(
        tmp_path / "blocks_mask.png", LabelScheme(slide.classes), (slide.width, slide.height)
    )
    assert isinstance(src, MaskLabels)
    for x0, y0, size0, out in [(0, 0, 256, 256), (300, 200, 512, 128), (1280, 768, 256, 64)]:
        np.testing.assert_array_equal(
            src.label_region(x0, y0, size0, out), truth_at(slide, x0, y0, size0, out)
        )


def test_label_mask_tiled_tiff_pyramid(blocks, tmp_path):
    import tifffile

    slide, _ = blocks
    lab = slide.label()
    rgb = np.repeat(lab[..., None], 3, axis=2)  # PANDA masks keep the label in the red channel
    with tifffile.TiffWriter(tmp_path / "m.tif") as tw:
        tw.write(rgb, tile=(256, 256), photometric="rgb", compression="deflate", subfiletype=0)
        tw.write(
            np.ascontiguousarray(rgb[::2, ::2]),
            tile=(256, 256),
            photometric="rgb",
            compression="deflate",
            subfiletype=1,
        )
    src = load_label_source(tmp_path / "m.tif", LabelScheme(slide.classes), (slide.width, slide.height))
    for x0, y0, size0, out in [(0, 0, 256, 256), (320, 96, 512, 128), (1400, 900, 256, 64)]:
        np.testing.assert_array_equal(
            src.label_region(x0, y0, size0, out), truth_at(slide, x0, y0, size0, out)
        )


def test_label_mask_unknown_values_and_misalignment(tmp_path):
    from PIL import Image

    from histosynth.data.classmap import ClassMap
    from histosynth.wsi.annotations import AnnotationError

    classes = ClassMap.from_names(["bg", "a", "b"])
    mask = np.zeros((100, 100), np.uint8)
    mask[10:20, 10:20] = 9
    Image.fromarray(mask).save(tmp_path / "s.png")
    src = load_label_source(tmp_path / "s.png", LabelScheme(classes), (400, 400))
    assert src.label_region(200, 200, 100, 10).max() == 0
    with pytest.raises(AnnotationError, match=r"s\.png: label values \[9\]"):
        src.label_region(0, 0, 100, 50)
    with pytest.raises(AnnotationError, match="not aligned"):
        load_label_source(tmp_path / "s.png", LabelScheme(classes), (400, 200))
