"""The DiT backbone family: adaLN-zero start, DiT's position code, masks, the seam, save/load."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from histosynth.diffusion.codec import build_codec
from histosynth.diffusion.denoiser import DiTDenoiser, HistoDenoiser, build_denoiser, denoiser_class
from histosynth.diffusion.dit import DiT, DiTBlock, attend, sincos_2d, timestep_embedding
from histosynth.diffusion.inputs import make_crop_batch
from histosynth.diffusion.pipeline import HistoSynthPipeline, make_scheduler
from histosynth.diffusion.schedule import NoiseSchedule
from histosynth.seeding import torch_generator


def _dit(conditioning="map+crops-tokens", seed=0):
    torch.manual_seed(seed)
    return build_denoiser("dit-test", conditioning, 3, 32, 12, 2).eval()


def _perturb(module, seed=1):
    """Give every parameter random values, so zero-initialised paths carry signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def test_a_fresh_dit_outputs_zeros_and_its_blocks_are_identities(make_inputs):
    den = _dit()
    maps, crops = make_inputs(2)
    x = torch.randn(2, 12, 16, 16)
    with torch.no_grad():
        out = den(x, torch.tensor([3, 900]), maps, make_crop_batch(crops, maps, den.canvas))
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # adaLN-zero, zeroed final layer
    assert den.dit.final_conv is not None  # U-ViT's output conv keeps the zeros (zero bias)
    block = den.dit.blocks[0]
    h, c = torch.randn(2, 64, 32), torch.randn(2, 32)
    tokens, mask = torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(block(h, c, tokens, mask), h, rtol=0, atol=0)
        _perturb(den)
        assert den(x, torch.tensor([3, 900]), maps).abs().mean() > 1e-3  # and it is not stuck there


def _dit_reference_pos(embed_dim, grid_size):
    """facebookresearch/DiT ``get_2d_sincos_pos_embed``, transcribed (numpy, float64)."""

    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.stack(
        np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size, dtype=np.float32))
    )
    return np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)


def test_position_code_is_dits_and_timestep_embedding_is_glides():
    np.testing.assert_allclose(sincos_2d(64, 8, 8).numpy(), _dit_reference_pos(64, 8), atol=1e-6)
    assert sincos_2d(32, 3, 5).shape == (15, 32)
    emb = timestep_embedding(torch.tensor([0, 500]), 8)
    freqs = [math.exp(-math.log(10000) * k / 4) for k in range(4)]
    want = [math.cos(500 * f) for f in freqs] + [math.sin(500 * f) for f in freqs]
    torch.testing.assert_close(emb[1], torch.tensor(want), atol=1e-5, rtol=0)


def test_written_out_attention_equals_the_fused_kernel():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 8, generator=g) for n in (10, 6, 6))
    mask = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    mask[0, ..., 2:] = False
    torch.testing.assert_close(attend(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    torch.testing.assert_close(attend(q, k, v, None), F.scaled_dot_product_attention(q, k, v))


def test_masked_tokens_are_not_read_and_real_ones_are():
    torch.manual_seed(0)
    net = DiT(6, 4, patch_size=2, hidden_size=32, depth=2, num_heads=2, cross_attention_dim=16).eval()
    _perturb(net)
    x, t = torch.randn(2, 6, 8, 8), torch.tensor([10, 600])
    tokens, mask = torch.randn(2, 4, 16), torch.tensor([[True, True, False, False]] * 2)
    with torch.no_grad():
        out = net(x, t, tokens, mask)
        hidden = tokens.clone()
        hidden[:, 2:] = 100.0
        torch.testing.assert_close(net(x, t, hidden, mask), out)
        seen = tokens.clone()
        seen[:, 1] += 1.0
        assert (net(x, t, seen, mask) - out).abs().mean() > 1e-4
        # Positions are computed for the grid given: another latent size runs (large-image windows).
        assert net(torch.randn(1, 6, 12, 16), t[:1], tokens[:1], mask[:1]).shape == (1, 4, 12, 16)
    with pytest.raises(ValueError, match="dit.py: latent size 7"):
        net(torch.randn(1, 6, 7, 8), t[:1], tokens[:1], mask[:1])


def test_a_block_reads_the_timestep_through_its_modulation():
    torch.manual_seed(0)
    block = DiTBlock(32, 2, 16)
    _perturb(block)
    h, tokens, mask = torch.randn(2, 9, 32), torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool)
    c = torch.randn(1, 32).expand(2, -1)
    with torch.no_grad():
        same = block(h, c, tokens, mask)
        other = block(h, c + torch.tensor([[0.0], [1.0]]), tokens, mask)
    torch.testing.assert_close(other[0], same[0])
    assert (other[1] - same[1]).abs().mean() > 1e-3


def test_presets_pick_their_family_and_narrow_dits_are_refused():
    assert type(_dit()) is DiTDenoiser
    torch.manual_seed(0)
    assert type(build_denoiser("test", "map", 3, 32, 12, 2)) is HistoDenoiser
    with pytest.raises(ValueError, match="192 latent values of a patch"):
        build_denoiser("dit-tiny", "map", 3, 64, 48, 4)  # 192 wide cannot carry 2×2×48 values
    with pytest.raises(ValueError, match="times the DiT patch 2"):
        build_denoiser("dit-test", "map", 3, 34, 12, 2)  # a 17-wide latent does not split into 2×2 patches


@pytest.mark.parametrize("conditioning", ["map", "map+crops-spatial", "map+crops-tokens"])
def test_a_saved_dit_pipeline_loads_and_makes_the_same_images(conditioning, tmp_path, make_inputs):
    den = _dit(conditioning)
    _perturb(den)
    pipe = HistoSynthPipeline(den, build_codec("identity-p2"), make_scheduler(NoiseSchedule()))
    pipe.set_progress_bar_config(disable=True)
    maps, crops = make_inputs(2)
    gens = lambda: [torch_generator(7, "sample", i) for i in range(2)]  # noqa: E731
    kw = dict(guidance_map=1.5, guidance_crops=2.0, num_inference_steps=3, eta=1.0)
    before = pipe(maps, crops, generator=gens(), **kw).images
    pipe.save_pretrained(tmp_path / "p")
    again = HistoSynthPipeline.from_pretrained(tmp_path / "p")
    again.set_progress_bar_config(disable=True)
    assert type(again.denoiser) is DiTDenoiser and denoiser_class(tmp_path / "p" / "denoiser") is DiTDenoiser
    np.testing.assert_array_equal(again(maps, crops, generator=gens(), **kw).images, before)
    assert len(np.unique(before)) > 10  # a perturbed network draws something, not a flat image
    loaded = again.denoiser.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in den.state_dict().items())


def test_a_config_naming_an_unknown_class_is_one_sentence(tmp_path):
    _dit().save_pretrained(tmp_path / "d")
    cfg = tmp_path / "d" / "config.json"
    cfg.write_text(cfg.read_text().replace('"DiTDenoiser"', '"MambaDenoiser"'))
    with pytest.raises(ValueError, match="config.json: names the denoiser class 'MambaDenoiser'"):
        denoiser_class(tmp_path / "d")
