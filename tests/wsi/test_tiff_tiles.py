"""Direct tile decoding (``wsi/tiff_tiles.py``) gives OpenSlide's pixels, or steps aside."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from histosynth.wsi import open_slide
from histosynth.wsi.tiff_tiles import TiffTiles


def _pair(path, monkeypatch):
    """(OpenSlide only, with direct tiles) readers of one file."""
    monkeypatch.setenv("HISTOSYNTH_DIRECT_TILES", "0")
    plain = open_slide(path, reader="openslide")
    monkeypatch.setenv("HISTOSYNTH_DIRECT_TILES", "1")
    direct = open_slide(path, reader="openslide")
    assert plain._tiles is None
    return plain, direct


def _regions(reader, seed: int, per_level: int = 25):
    """Whole-pixel regions at every level, some reaching outside the level."""
    rng = np.random.default_rng(seed)
    for level in range(reader.level_count):
        ds, (w, h) = reader.level_downsamples[level], reader.level_dimensions[level]
        for _ in range(per_level):
            lx, ly = int(rng.integers(-80, w + 20)), int(rng.integers(-80, h + 20))
            rw, rh = (int(v) for v in rng.integers(1, 400, 2))
            yield round(lx * ds), round(ly * ds), level, rw, rh


@pytest.mark.parametrize("which", ["synthetic", "cmu"])
def test_direct_reads_are_openslides_pixels(which, synthetic_slide, cmu_slide, monkeypatch):
    path = synthetic_slide.path if which == "synthetic" else cmu_slide  # generic TIFF, then Aperio SVS
    plain, direct = _pair(path, monkeypatch)
    with plain, direct:
        assert direct._tiles is not None and all(lv is not None for lv in direct._tiles.levels)
        served = []
        real_tile = direct._tiles._tile
        direct._tiles._tile = lambda *a: served.append(a[0]) or real_tile(*a)
        for region in _regions(direct, seed=len(which)):
            np.testing.assert_array_equal(direct.read_region(*region), plain.read_region(*region))
        assert sorted(set(served)) == list(range(direct.level_count))  # every level decoded here
        np.testing.assert_array_equal(
            direct.read_at_mpp(300, 200, 128, 1.0), plain.read_at_mpp(300, 200, 128, 1.0)
        )


def test_lossless_tiles_are_served(tmp_path, monkeypatch):
    from histosynth.samples import write_synthetic_slide

    slide = write_synthetic_slide(tmp_path / "deflate.tif", size=(900, 700), levels=2, compression="deflate")
    plain, direct = _pair(slide.path, monkeypatch)
    with plain, direct:
        assert direct._tiles is not None and direct._tiles.serves_any
        for region in _regions(direct, seed=3, per_level=10):
            np.testing.assert_array_equal(direct.read_region(*region), plain.read_region(*region))


def test_fractional_level_positions_and_missing_tiles_go_to_openslide(synthetic_slide, monkeypatch):
    plain, direct = _pair(synthetic_slide.path, monkeypatch)
    with plain, direct:
        tiles = direct._tiles
        assert tiles.read(3, 0, 1, 50, 50) is None  # level-1 x of 1.5 px: OpenSlide interpolates
        np.testing.assert_array_equal(direct.read_region(3, 0, 1, 50, 50), plain.read_region(3, 0, 1, 50, 50))
        assert tiles.read(2, 4, 1, 50, 50) is not None
        lv = tiles.levels[0]
        tiles.levels[0] = dataclasses.replace(lv, counts=(0,) + lv.counts[1:])  # tile 0 absent
        assert tiles.read(0, 0, 0, 10, 10) is None
        assert tiles.read(lv.tile_w, 0, 0, 10, 10) is not None  # other tiles still served
        assert tiles.read(0, 0, 7, 10, 10) is None  # no such level


def test_only_rgb_8_bit_chunky_directories_are_matched(tmp_path):
    import tifffile

    path = tmp_path / "rgba.tif"
    tifffile.imwrite(
        path, np.zeros((64, 64, 4), np.uint8), tile=(32, 32), photometric="rgb", extrasamples=[2]
    )
    tiles = TiffTiles(path, [(64, 64)], [1.0])
    try:
        assert not tiles.serves_any
    finally:
        tiles.close()
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.full((64, 48, 3), 7, np.uint8), tile=(32, 32), photometric="rgb")
    tiles = TiffTiles(path, [(48, 64), (10, 10)], [1.0, 4.8])
    try:
        assert tiles.serves_any and tiles.levels[1] is None  # no directory of that size
        region = tiles.read(40, 60, 0, 16, 8)  # over the right and bottom edges: white there
        assert region.shape == (8, 16, 3)
        assert (region[:4, :8] == 7).all() and (region[4:] == 255).all() and (region[:, 8:] == 255).all()
    finally:
        tiles.close()


def test_cache_is_bounded_and_threads_agree(synthetic_slide, monkeypatch):
    plain, direct = _pair(synthetic_slide.path, monkeypatch)
    with plain, direct:
        tiles = direct._tiles
        tile_bytes = tiles.levels[0].tile_w * tiles.levels[0].tile_h * 3
        direct.set_cache_bytes(3 * tile_bytes)
        regions = list(_regions(direct, seed=7, per_level=20))
        for region in regions:
            direct.read_region(*region)
            assert tiles._held <= 3 * tile_bytes and tiles._held == sum(
                t.nbytes for t in tiles._cache.values()
            )
        direct.set_cache_bytes(0)
        assert not tiles._cache and tiles._held == 0
        direct.set_cache_bytes(2**24)
        wanted = [plain.read_region(*r) for r in regions]
        got: dict[int, np.ndarray] = {}

        def work(k: int) -> None:
            for i in range(k, len(regions), 4):
                got[i] = direct.read_region(*regions[i])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, want in enumerate(wanted):
            np.testing.assert_array_equal(got[i], want)


def test_direct_tiles_can_be_turned_off(synthetic_slide, monkeypatch):
    monkeypatch.setenv("HISTOSYNTH_DIRECT_TILES", "0")
    with open_slide(synthetic_slide.path) as s:
        assert s._tiles is None


def test_a_tile_that_does_not_decode_is_openslides_error(synthetic_slide, tmp_path, monkeypatch):
    import shutil

    import tifffile

    from histosynth.wsi import SlideError

    path = tmp_path / "broken.tif"
    shutil.copy(synthetic_slide.path, path)
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        offset, count = page.dataoffsets[5], page.databytecounts[5]
        x, y = (5 % -(-page.shape[1] // page.tilewidth)) * page.tilewidth, 0
    with open(path, "r+b") as fh:  # tile 5 of level 0: no JPEG left in it
        fh.seek(offset)
        fh.write(b"\0" * count)
    monkeypatch.setenv("HISTOSYNTH_DIRECT_TILES", "0")
    with open_slide(path) as plain, pytest.raises(SlideError) as want:
        plain.read_region(x, y, 0, 16, 16)
    monkeypatch.setenv("HISTOSYNTH_DIRECT_TILES", "1")
    with open_slide(path) as direct:
        assert direct._tiles is not None
        direct.read_region(0, 0, 0, 16, 16)  # tile 0 still decodes here
        with pytest.raises(SlideError) as got:
            direct.read_region(x, y, 0, 16, 16)
    assert str(got.value) == str(want.value)


def test_closed_tiles_hold_no_file_and_read_nothing(synthetic_slide):
    import gc
    import os

    from histosynth.wsi.readers import OpenSlideReader

    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    reader = OpenSlideReader(synthetic_slide.path)
    tiles = reader._tiles
    reader.close()
    with pytest.raises(OSError):
        tiles.read(0, 0, 0, 8, 8)
    dropped = OpenSlideReader(synthetic_slide.path)  # never closed: its descriptor still goes
    del dropped
    gc.collect()
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) <= before


def test_a_slide_replaced_at_the_same_path_is_parsed_again(tmp_path, monkeypatch):
    import os

    from histosynth.samples import write_synthetic_slide

    monkeypatch.setenv("HISTOSYNTH_DIRECT_TILES", "1")
    path = tmp_path / "s.tif"
    write_synthetic_slide(path, size=(600, 500), levels=1, seed=1)
    with open_slide(path) as first:
        a = first.read_region(200, 200, 0, 64, 64)
    write_synthetic_slide(tmp_path / "other.tif", size=(700, 520), levels=1, seed=2)
    os.replace(tmp_path / "other.tif", path)
    with open_slide(path) as second, open_slide(path, reader="tiffslide") as check:
        assert second._tiles.levels[0].width == 700
        b = second.read_region(200, 200, 0, 64, 64)
        assert np.abs(b.astype(int) - check.read_region(200, 200, 0, 64, 64).astype(int)).max() <= 2
    assert not np.array_equal(a, b)
