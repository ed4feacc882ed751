"""Encoders: the offline ones (handcrafted, random-init CNN, SSL) and the foundation-model entries."""

import numpy as np
import pytest

from histosynth.embed.encoders import ENCODERS, load_encoder
from histosynth.samples import render_region


def _textures(cls: int, n: int, size: int = 64) -> np.ndarray:
    """n crops of one synthetic tissue class at distinct places."""
    grid = np.full((1, 1), cls, np.uint8)
    return np.stack([render_region(grid, 10**6, 97 * i, 53 * i, size, size) for i in range(n)])


def test_handcrafted_is_deterministic_and_named():
    from histosynth.embed.handcrafted import FEATURE_NAMES

    enc = load_encoder("handcrafted")
    assert enc.identity == "handcrafted-v1" and enc.dim == ENCODERS.get("handcrafted").dim == len(
        FEATURE_NAMES
    )
    imgs = np.random.default_rng(0).integers(0, 256, (7, 50, 50, 3), dtype=np.uint8)
    a = enc.encode(imgs)
    assert a.shape == (7, enc.dim) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, enc.encode(imgs)) and np.array_equal(a[2:3], enc.encode(imgs[2:3]))
    assert enc.encode(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, enc.dim)
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(imgs.astype(np.float32))


def test_handcrafted_separates_tissue_textures():
    enc = load_encoder("handcrafted")
    feats = [enc.encode(_textures(c, 6)) for c in (1, 2, 3)]
    allf = np.concatenate(feats)
    mu, sd = allf.mean(0), allf.std(0) + 1e-6
    z = [(f - mu) / sd for f in feats]
    cents = np.stack([f.mean(0) for f in z])
    for c, f in enumerate(z):  # every crop is nearest to its own class centroid
        d = ((f[:, None] - cents[None]) ** 2).sum(-1)
        assert (d.argmin(1) == c).all()


def test_tissue_fraction_rule():
    from histosynth.embed.handcrafted import tissue_fraction

    glass = np.full((1, 16, 16, 3), 245, np.uint8)
    pink = np.tile(np.array([230, 140, 170], np.uint8), (1, 16, 16, 1))
    half = glass.copy()
    half[:, :8] = pink[:, :8]
    assert tissue_fraction(np.concatenate([glass, pink, half])).tolist() == [0.0, 1.0, 0.5]


def test_random_init_cnn_seeded_and_independent_of_global_rng():
    import torch

    torch.manual_seed(123)
    a = load_encoder("random-init-cnn")
    torch.manual_seed(999)
    b = load_encoder("random-init-cnn")
    assert a.identity == "random-init-cnn-v1-seed0" and a.dim == 360
    imgs = _textures(2, 3)
    assert np.array_equal(a.encode(imgs), b.encode(imgs))


def test_ssl_fit_then_load(tmp_path):
    from histosynth.embed.ssl import SSLConfig, fit_ssl

    imgs = np.concatenate([_textures(c, 6, 32) for c in (1, 2, 3)])
    cfg = SSLConfig(images=18, steps=2, batch_size=8)
    path = tmp_path / "ssl-tiny.safetensors"
    rec = fit_ssl(imgs, cfg, path, show_progress=False)
    assert np.isfinite(rec["loss_last"]) and rec["images_used"] == 18
    enc = load_encoder("ssl-tiny", weights=path)
    assert enc.identity.startswith("ssl-tiny:sha256-") and enc.training["steps"] == 2
    f = enc.encode(imgs[:4])
    assert f.shape == (4, 360) and np.isfinite(f).all()
    # the same seed trains the same weights
    path2 = tmp_path / "again.safetensors"
    fit_ssl(imgs, cfg, path2, show_progress=False)
    assert np.array_equal(f, load_encoder("ssl-tiny", weights=path2).encode(imgs[:4]))


def test_ssl_augment_and_loss():
    import torch

    from histosynth.embed.ssl import augment, nt_xent

    x = torch.rand(6, 3, 32, 32)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a, b = augment(x, g1), augment(x, g2)
    assert a.shape == x.shape and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    z = torch.randn(4, 8)
    assert nt_xent(z, z, 0.2) < nt_xent(z, torch.randn(4, 8), 0.2)


@pytest.mark.parametrize("name", [n for n in ENCODERS.names() if ENCODERS.get(n).backend == "timm"])
def test_timm_entries_build_with_their_declared_dim(name):
    """Every timm architecture is valid and yields ``dim`` features (on the meta device: no memory)."""
    import torch

    from histosynth.embed.foundation import _cls_mean, timm_module

    spec = ENCODERS.get(name)
    net = timm_module(spec, device="meta")
    x = torch.empty(2, 3, spec.input_size, spec.input_size, device="meta")
    out = _cls_mean(net, x) if spec.params.get("pool") == "cls_mean" else net(x)
    assert tuple(out.shape) == (2, spec.dim)
