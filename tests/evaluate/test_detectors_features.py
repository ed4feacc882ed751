import numpy as np
import pytest

from histosynth.errors import USER_ERRORS
from histosynth.evaluate.detectors import DETECTORS, build_detector, detector_names
from histosynth.evaluate.features import FeatureCache, ImageSet, cache_key, clean_resize, extract, image_set
from histosynth.registry import RegistryError


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """Random-init torchvision Inception-v3 weights saved as safetensors (no download)."""
    import torch
    from safetensors.torch import save_file
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path_factory.mktemp("w") / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_inception_from_local_weights(inception_file, toy):
    det = build_detector("inception-v3", weights=inception_file)
    assert det.dim == 2048 and det.input_size == 299
    from histosynth.artifacts import file_sha256

    assert det.identity["weights_sha256"] == file_sha256(inception_file)
    imgs = np.stack([clean_resize(toy["images"][i], 299) for i in range(2)])
    f = det.features(imgs)
    assert f.shape == (2, 2048) and f.dtype == np.float32 and np.isfinite(f).all()
    assert not np.allclose(f[0], f[1])


def test_inception_refuses_missing_and_foreign_weights(tmp_path):
    import torch

    with pytest.raises(FileNotFoundError, match="--detector-weights inception-v3=PATH"):
        build_detector("inception-v3")
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a torchvision inception_v3 state dict"):
        build_detector("inception-v3", weights=tmp_path / "other.safetensors")
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "pickled.pth")
    from histosynth.errors import UnsafeFileError

    with pytest.raises(UnsafeFileError, match="never loads"):
        build_detector("inception-v3", weights=tmp_path / "pickled.pth")


def test_unknown_detector_suggests():
    assert "inception-v3" in detector_names() and "pixels-32" in DETECTORS
    with pytest.raises(RegistryError, match="did you mean 'pixels-32'"):
        build_detector("pixel-32")


def test_clean_resize_is_per_channel_float_bicubic():
    from PIL import Image

    img = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    out = clean_resize(img, 17)
    assert out.shape == (17, 17, 3) and out.dtype == np.float32
    ref = np.asarray(Image.fromarray(img[..., 1].astype(np.float32)).resize((17, 17), Image.BICUBIC))
    np.testing.assert_allclose(out[..., 1], np.clip(ref, 0, 255))
    assert np.array_equal(clean_resize(img[:17, :17], 17), img[:17, :17].astype(np.float32))


def test_extract_streams_caches_and_never_reuses_other_keys(toy, tmp_path):
    real = toy["real"]
    det = build_detector("pixels-32")
    cache = FeatureCache(tmp_path / "cache")
    images = image_set(real, range(12))
    first = extract(images, det, cache, workers=2)
    direct = np.stack([det.features(clean_resize(real.image(i), 32)[None])[0] for i in range(12)])
    np.testing.assert_allclose(first.features, direct, rtol=1e-6)
    np.testing.assert_allclose(first.stats.mu, direct.mean(0), rtol=1e-5, atol=1e-7)
    assert not first.cached and extract(images, det, cache).cached
    # another selection, another detector identity: both miss
    assert not extract(image_set(real, range(11)), det, cache).cached
    other = build_detector("pixels-32")
    other = type(other)(other.name, other.dim, other.input_size, other.input_dtype,
                        {**other.identity, "weights_sha256": "x"}, other.fn)  # fmt: skip
    assert cache_key(images, other) != cache_key(images, det)
    assert not extract(images, other, cache).cached
    # a tampered entry whose stored key differs is not served
    path = cache._path(cache_key(images, det))
    data = dict(np.load(path))
    data["key"] = np.array('{"tampered": true}')
    np.savez(path, **data)
    assert cache.get(cache_key(images, det)) is None


def test_png_only_and_every_png_flavour_reads_as_rgb(toy, tmp_path):
    from PIL import Image

    from histosynth.evaluate.features import read_png_rgb

    Image.fromarray(toy["images"][0]).save(tmp_path / "a.png", format="JPEG")
    s = ImageSet("x", tmp_path, ("a", "b"), ("a.png", "a.png"))
    with pytest.raises(USER_ERRORS, match="PNG images only"):  # one sentence from the CLI
        s.load(0)
    rgb = toy["images"][0]
    for mode in ("RGB", "RGBA", "L", "P"):
        im = Image.fromarray(rgb).convert(mode)
        im.save(tmp_path / f"{mode}.png")
        got = read_png_rgb(tmp_path / f"{mode}.png")
        assert got.shape == rgb.shape and got.dtype == np.uint8
        np.testing.assert_array_equal(got, np.asarray(im.convert("RGB")))


def test_embedding_encoders_are_detectors(toy):
    det = build_detector("handcrafted")
    assert det.identity["identity"] == "handcrafted-v1" and det.identity["name"] == "handcrafted"
    assert "weights" not in det.identity  # a path would split the cache for the same weights
    assert (
        det.input_dtype == "uint8"
        and det.input_size == 64
        and {"handcrafted", "random-init-cnn"} <= set(detector_names())
    )
    f = det.features(toy["images"][:3].astype(np.float32) + 0.4)  # rounded to the same uint8 pixels
    np.testing.assert_array_equal(f, det.features(toy["images"][:3].astype(np.float32)))
    assert f.shape == (3, det.dim)


def test_read_png_refuses_an_oversized_image_before_decoding(tmp_path):
    import struct
    import zlib

    from histosynth.evaluate.features import read_png_rgb

    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    with pytest.raises(USER_ERRORS, match="60000×60000 px is too large to decode safely") as info:
        read_png_rgb(tmp_path / "b.png")
    assert "b.png" in str(info.value)
