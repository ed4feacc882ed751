import base64
import io

import numpy as np
import pytest
from PIL import Image

from histosynth.studio.uploads import UploadError, UploadLimits, UploadStore, decode_label, read_image_upload


def png(arr_or_img, fmt="PNG") -> bytes:
    im = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def test_reads_png_jpeg_and_rgba():
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(read_image_upload(png(rgb), "a.png"), rgb)
    assert read_image_upload(png(rgb, "JPEG"), "a.jpg").shape == (20, 30, 3)
    rgba = np.dstack([rgb, np.full((20, 30), 255, np.uint8)])
    out = read_image_upload(png(rgba), "a.png")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "is empty"),
        (b"hello, not an image at all", "is not an image"),
        (png(np.zeros((20, 20, 3), np.uint8))[:60], "is not an image"),  # truncated
        (png(Image.new("P", (20, 20)), "GIF"), "is not an image"),  # format not offered
        (png(np.zeros((4, 40, 3), np.uint8)), "at least 8 px"),
        (png(Image.new("1", (3000, 3000))), "limited to 4,194,304 pixels"),  # small file, many pixels
    ],
)
def test_refusals_are_one_sentence(data, match):
    with pytest.raises(UploadError, match=match):
        read_image_upload(data, "x.png")


def test_too_large_file_and_bomb_header():
    with pytest.raises(UploadError, match="uploads are limited to 1 MB"):
        read_image_upload(b"\0" * (2**20 + 1), "big.png", UploadLimits(max_bytes=2**20))
    # far beyond PIL's own bomb threshold: refused with the pixel message, no warning raised
    bomb = png(Image.new("1", (15000, 15000)))
    with pytest.raises(UploadError, match="pixels"):
        read_image_upload(bomb, "bomb.png", UploadLimits(max_bytes=len(bomb) + 1))


def test_decode_label():
    lab = np.array([[0, 1], [2, 1]], np.uint8)
    text = base64.b64encode(lab.tobytes()).decode()
    assert np.array_equal(decode_label(text, 2, [0, 1, 2]), lab)
    with pytest.raises(UploadError, match="not valid base64"):
        decode_label("***", 2, [0, 1, 2])
    with pytest.raises(UploadError, match="needs 3×3"):
        decode_label(text, 3, [0, 1, 2])
    with pytest.raises(UploadError, match=r"class ids \[2\]"):
        decode_label(text, 2, [0, 1])


def test_store_dedups_and_forgets_oldest():
    store = UploadStore(capacity=2)
    imgs = [png(np.full((10, 10, 3), v, np.uint8)) for v in (1, 2, 3)]
    a = store.add(imgs[0], "a.png", 1)
    assert store.add(imgs[0], "a.png", 1).id == a.id
    b, c = store.add(imgs[1], "b.png", 1), store.add(imgs[2], "c.png", 2)
    assert store.get(a.id) is None and store.get(b.id) and store.get(c.id)
    assert '"upload": "c.png"' in c.provenance() and c.id.startswith("upload-2-")
