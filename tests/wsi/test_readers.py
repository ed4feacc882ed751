import numpy as np
import pytest
from PIL import Image

from histosynth.errors import USER_ERRORS
from histosynth.wsi import READERS, ArrayReader, SlideError, open_slide


def test_readers_registered():
    assert {"openslide", "tiffslide", "image", "array"} <= set(READERS.names())


def test_auto_reader_and_metadata_mpp(synthetic_slide, cmu_slide):
    with open_slide(synthetic_slide.path) as s:
        assert type(s).__name__ == "OpenSlideReader"
        assert s.require_mpp() == pytest.approx(0.5)
        assert s.level_count == 3 and s.dimensions == (2048, 1536)
    with open_slide(cmu_slide) as s:
        assert s.mpp == pytest.approx(0.499) and s.dimensions == (2220, 2967)


def test_mpp_override_wins(synthetic_slide):
    with open_slide(synthetic_slide.path, mpp=0.25) as s:
        assert s.require_mpp() == 0.25


def test_openslide_and_tiffslide_agree(synthetic_slide):
    with (
        open_slide(synthetic_slide.path, reader="openslide") as a,
        open_slide(synthetic_slide.path, reader="tiffslide") as b,
    ):
        assert a.level_downsamples == b.level_downsamples
        for level in range(3):
            ra, rb = a.read_region(300, 200, level, 96, 80), b.read_region(300, 200, level, 96, 80)
            assert ra.shape == rb.shape == (80, 96, 3) and ra.dtype == np.uint8
            assert np.abs(ra.astype(int) - rb.astype(int)).max() <= 2  # same JPEG tiles, two decoders


@pytest.mark.parametrize("reader", ["openslide", "tiffslide"])
def test_out_of_bounds_reads_white(synthetic_slide, reader):
    with open_slide(synthetic_slide.path, reader=reader) as s:
        region = s.read_region(2000, -40, 0, 100, 100)
        assert (region[:40] == 255).all() and (region[:, 48:] == 255).all()


def test_plain_image_needs_mpp(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (700, 900, 3), np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    with open_slide(path) as s:
        assert type(s).__name__ == "ImageReader" and s.level_count == 1 + 0  # 900 px: one 2x level is < 512
        with pytest.raises(SlideError, match=r"photo\.png.*--mpp"):
            s.read_at_mpp(0, 0, 64, 1.0)
    with open_slide(path, mpp=0.5) as s:
        np.testing.assert_array_equal(s.read_region(10, 20, 0, 30, 40), img[20:60, 10:40])
        assert s.read_at_mpp(0, 0, 64, 1.0).shape == (64, 64, 3)


def test_untiled_tiff_and_jpeg_are_plain_images(tmp_path):
    import tifffile

    img = np.full((300, 400, 3), 120, np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", img)
    Image.fromarray(img).save(tmp_path / "b.jpg")
    for name in ("a.tif", "b.jpg"):
        with open_slide(tmp_path / name, mpp=1.0) as s:
            assert s.dimensions == (400, 300) and abs(int(s.read_region(0, 0, 0, 5, 5)[0, 0, 0]) - 120) <= 2


def test_bad_files_are_one_line_slide_errors(tmp_path):
    (tmp_path / "junk.svs").write_bytes(b"not a slide at all")
    (tmp_path / "notes.txt").write_text("hello")
    for name, match in [("missing.svs", "not found"), ("junk.svs", "junk.svs"), ("notes.txt", "unsupported")]:
        with pytest.raises(SlideError, match=match) as exc:
            open_slide(tmp_path / name)
        assert isinstance(exc.value, USER_ERRORS) and "\n" not in str(exc.value)


def test_read_at_mpp_uses_coarsest_level_that_serves(synthetic_slide):
    """Never read level 0 when a lower level serves: spy on the level each read uses."""
    with open_slide(synthetic_slide.path) as s:
        levels = []
        original = s.read_region

        def spy(x0, y0, level, w, h):
            levels.append((level, w))
            return original(x0, y0, level, w, h)

        s.read_region = spy
        for mpp, want in [(0.5, 0), (1.0, 1), (1.5, 1), (2.0, 2), (4.0, 2)]:
            levels.clear()
            patch = s.read_at_mpp(512, 512, 64, mpp)
            assert patch.shape == (64, 64, 3)
            assert levels[0][0] == want, (mpp, levels)


def test_best_level_tolerates_odd_downsamples():
    s = ArrayReader(np.zeros((8, 8, 3), np.uint8))
    s.level_downsamples = [1.0, 2.0004, 4.0011]
    assert s.best_level(4.0) == 2 and s.best_level(3.99) == 1 and s.best_level(1.0) == 0


def test_read_at_mpp_matches_level_content():
    """Area-averaged reading of a pyramid level equals the level itself where it serves exactly."""
    img = np.random.default_rng(1).integers(0, 255, (512, 512, 3), np.uint8)
    s = ArrayReader(img, mpp=0.25, levels=3)
    np.testing.assert_array_equal(s.read_at_mpp(64, 128, 32, 0.5), s.read_region(64, 128, 1, 32, 32))
