"""The PNG modes of the patch dataset: same pixels, and ``compat`` keeps Pillow's bytes."""

import io

import numpy as np
import pytest
from PIL import Image

from histosynth.data.png import PNG_MODES, decode_png_bytes, encode_png


@pytest.mark.parametrize("shape", [(1, 1, 3), (37, 53, 3), (64, 64), (5, 300)])
@pytest.mark.parametrize("mode", PNG_MODES)
def test_every_mode_decodes_to_the_same_pixels(shape, mode):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    arr[: shape[0] // 2] = 7  # flat rows too: the filters' easy case
    out = decode_png_bytes(encode_png(arr, mode))
    assert out.dtype == np.uint8 and out.shape == arr.shape and (out == arr).all()


def test_compat_is_pillow_level_1():
    arr = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    assert encode_png(arr, "compat") == buf.getvalue()


def test_default_is_fast():
    arr = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert encode_png(arr) == encode_png(arr, "fast") != encode_png(arr, "compat")


def test_unknown_mode_and_bad_shape_refused():
    with pytest.raises(ValueError, match="unknown PNG mode"):
        encode_png(np.zeros((2, 2), np.uint8), "best")
    with pytest.raises(ValueError, match="expected an"):
        encode_png(np.zeros((2, 2, 4), np.uint8), "fast")
