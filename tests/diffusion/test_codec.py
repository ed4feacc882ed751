"""Codecs: identity and KL, normalisation measured from data, save/load from local folders."""

import pytest
import torch
from diffusers import AutoencoderKL

from histosynth.diffusion.codec import IdentityCodec, KLCodec, build_codec, load_codec, measure_scale


@pytest.mark.parametrize("name, shape", [("identity", (2, 3, 16, 16)), ("identity-p4", (2, 48, 4, 4))])
def test_identity_codec_is_exact(name, shape):
    codec = load_codec(name)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    scale, shift = measure_scale(codec, [x])
    z = codec.encode_latents(x)
    assert z.shape == shape and codec.latent_channels == shape[1] and codec.downsample == 16 // shape[-1]
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-2  # measured normalisation
    assert codec.config.scaling_factor == pytest.approx(scale) and codec.config.shift_factor == shift
    torch.testing.assert_close(codec.decode_latents(z), x, atol=1e-6, rtol=0)


def test_identity_codec_save_load(tmp_path):
    codec = IdentityCodec(patch_size=2, scaling_factor=3.0, shift_factor=0.5)
    codec.save_pretrained(tmp_path)
    again = load_codec(tmp_path)
    assert isinstance(again, IdentityCodec) and again.config.scaling_factor == 3.0 and again.downsample == 2


@torch.no_grad()
def test_kl_codec_save_load_and_plain_autoencoder_folders(tmp_path):
    torch.manual_seed(0)
    codec = build_codec("kl-f4-tiny")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    measure_scale(codec, [x])
    codec.save_pretrained(tmp_path / "c")
    again = load_codec(tmp_path / "c")
    assert isinstance(again, KLCodec) and again.downsample == 4 and again.latent_channels == 3
    torch.testing.assert_close(again.encode_latents(x), codec.encode_latents(x))
    # Any local diffusers AutoencoderKL, alone or as the vae/ of a pipeline folder.
    vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4, latent_channels=4)  # fmt: skip
    vae.save_pretrained(tmp_path / "sd" / "vae")
    loaded = load_codec(tmp_path / "sd")
    assert isinstance(loaded, KLCodec) and loaded.config.scaling_factor == pytest.approx(0.18215)
    assert loaded.decode_latents(loaded.encode_latents(x)).shape == x.shape


def test_missing_codec_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no codec here"):
        load_codec(tmp_path)
    with pytest.raises(ValueError, match="unknown codec preset"):
        build_codec("vq-f4")


@torch.no_grad()
def test_whitened_codec_is_exact_white_and_reloads(tmp_path):
    # Correlated "images": smooth fields plus a little noise, so block pixels are far from white.
    g = torch.Generator().manual_seed(0)
    low = torch.rand(16, 3, 4, 4, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(low, size=16, mode="bilinear", align_corners=False)
    x = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    codec = load_codec("pca-p4")
    measure_scale(codec, [x[:8], x[8:]])
    z = codec.encode_latents(x)
    assert z.shape == (16, 48, 4, 4)
    cov = torch.cov(z.permute(0, 2, 3, 1).reshape(-1, 48).double().T)
    torch.testing.assert_close(cov, torch.eye(48, dtype=torch.float64), atol=0.05, rtol=0)  # white
    torch.testing.assert_close(codec.decode_latents(z), x, atol=1e-5, rtol=0)  # exact
    assert codec.std[0] > 10 * codec.std[-1]  # the axes really differ in variance
    codec.save_pretrained(tmp_path)
    again = load_codec(tmp_path)
    assert type(again).__name__ == "WhitenedCodec"
    torch.testing.assert_close(again.encode_latents(x), z)
    refit = load_codec("pca-p4")
    measure_scale(refit, [x[:8], x[8:]])
    torch.testing.assert_close(refit.basis, codec.basis)  # signs fixed: a refit reproduces
