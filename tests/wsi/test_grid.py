import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from histosynth.wsi.grid import box_fractions, grid_origins, level_for_downsample, tile_geometry

slide_mpps = st.sampled_from([0.2425, 0.25, 0.499, 0.5, 1.0])
target_mpps = st.sampled_from([0.25, 0.5, 1.0, 2.0])


@settings(max_examples=150, deadline=None)
@given(
    w=st.integers(1, 5000),
    h=st.integers(1, 5000),
    slide_mpp=slide_mpps,
    mpp=target_mpps,
    size=st.integers(1, 512),
    overlap_frac=st.floats(0, 0.9),
)
def test_grid_in_bounds_constant_stride_and_maximal(w, h, slide_mpp, mpp, size, overlap_frac):
    overlap = min(size - 1, int(size * overlap_frac))
    geo = tile_geometry(slide_mpp, mpp, size, overlap)
    if geo.stride0 < 1:
        with pytest.raises(ValueError, match="stride0"):
            grid_origins(w, h, geo.size0, geo.stride0)
        return
    assert geo.stride0 == pytest.approx((size - overlap) * mpp / slide_mpp)
    x0, y0 = grid_origins(w, h, geo.size0, geo.stride0)
    assert x0.dtype == np.int64 and len(x0) == len(y0)
    # in bounds
    assert (x0 >= 0).all() and (y0 >= 0).all()
    assert (x0 + geo.size0 <= w + 1e-9).all() and (y0 + geo.size0 <= h + 1e-9).all()
    if len(x0) == 0:
        assert geo.size0 > w or geo.size0 > h
        return
    xs, ys = np.unique(x0), np.unique(y0)
    assert len(x0) == len(xs) * len(ys)  # a full grid, row-major
    for axis, extent in ((xs, w), (ys, h)):
        i = np.arange(len(axis))
        # constant stride: each origin is the nearest integer to i * stride0
        assert np.abs(axis - i * geo.stride0).max() <= 0.5 + 1e-9
        # maximal: the next origin would leave the slide
        nxt = math.floor(len(axis) * geo.stride0 + 0.5)
        assert nxt + geo.size0 > extent
    assert (np.diff(y0) >= 0).all()  # rows in order


@settings(max_examples=50, deadline=None)
@given(w=st.integers(1, 400), h=st.integers(1, 400), size0=st.floats(1, 500))
def test_no_tiles_when_slide_smaller_than_patch(w, h, size0):
    x0, _ = grid_origins(w, h, size0, size0)
    assert (len(x0) == 0) == (size0 > w or size0 > h)


@pytest.mark.parametrize("bad", [dict(size=0), dict(overlap=256), dict(overlap=-1), dict(mpp=0)])
def test_geometry_rejects_bad_settings(bad):
    kw = dict(slide_mpp=0.5, mpp=0.5, size=256, overlap=0) | bad
    with pytest.raises(ValueError):
        tile_geometry(**kw)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 1000),
    scale=st.sampled_from([1.0, 4.0, 16.0, 7.3]),
    size0=st.floats(4, 300),
    x=st.floats(-50, 600),
    y=st.floats(-50, 600),
)
def test_box_fractions_match_brute_force(seed, scale, size0, x, y):
    mask = np.random.default_rng(seed).random((40, 50)) > 0.5
    got = box_fractions(mask, scale, np.array([x]), np.array([y]), size0)[0]
    # brute force: supersample the box on a fine grid of points
    n = 200
    pts = x + (np.arange(n) + 0.5) * size0 / n
    qts = y + (np.arange(n) + 0.5) * size0 / n
    c, r = np.floor(pts / scale).astype(int), np.floor(qts / scale).astype(int)
    vals = np.zeros((n, n))
    vc, vr = (c >= 0) & (c < 50), (r >= 0) & (r < 40)
    vals[np.ix_(vr, vc)] = mask[np.ix_(r[vr], c[vc])]
    assert got == pytest.approx(vals.mean(), abs=2.5 * scale / size0 / n * 40 + 0.02)


def test_level_for_downsample():
    ds = [1.0, 4.000471, 16.00384]
    assert level_for_downsample(ds, 1.0) == 0
    assert level_for_downsample(ds, 3.9) == 0
    assert level_for_downsample(ds, 4.0) == 1  # a 0.01 % coarser level still serves
    assert level_for_downsample(ds, 64.0) == 2


def _box_fractions_whole_table(mask, scale, x0, y0, size0):
    """The reference: the whole float64 summed-area table, as box_fractions built it before."""
    m = np.asarray(mask, np.float64)
    sat = np.zeros((m.shape[0] + 1, m.shape[1] + 1))
    sat[1:, 1:] = m.cumsum(0).cumsum(1)

    def area(xm, ym):
        xm, ym = np.clip(xm, 0, m.shape[1]), np.clip(ym, 0, m.shape[0])
        xi = np.minimum(np.floor(xm).astype(int), m.shape[1] - 1)
        yi = np.minimum(np.floor(ym).astype(int), m.shape[0] - 1)
        fx, fy = xm - xi, ym - yi
        s00, s01, s10, s11 = sat[yi, xi], sat[yi, xi + 1], sat[yi + 1, xi], sat[yi + 1, xi + 1]
        return (s00 * (1 - fx) + s01 * fx) * (1 - fy) + (s10 * (1 - fx) + s11 * fx) * fy

    x0m, y0m = np.asarray(x0) / scale, np.asarray(y0) / scale
    x1m, y1m = x0m + size0 / scale, y0m + size0 / scale
    total = area(x1m, y1m) - area(x0m, y1m) - area(x1m, y0m) + area(x0m, y0m)
    return np.clip(total / (size0 / scale) ** 2, 0.0, 1.0)


@pytest.mark.parametrize("seed", range(12))
def test_box_fractions_by_strips_equal_the_whole_table_bit_for_bit(seed):
    # Masks taller than a strip (256 rows), boxes off the edges, bool and float masks.
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 900)), int(rng.integers(1, 400))
    mask = rng.random((h, w)) < 0.5 if seed % 2 else rng.random((h, w)).astype(np.float32)
    scale, size0 = rng.uniform(1, 30), rng.uniform(8, 3000)
    n = int(rng.integers(1, 200))
    x0 = rng.uniform(-size0, w * scale + size0, n)
    y0 = rng.uniform(-size0, h * scale + size0, n)
    got = box_fractions(mask, scale, x0, y0, size0)
    np.testing.assert_array_equal(got, _box_fractions_whole_table(mask, scale, x0, y0, size0))
