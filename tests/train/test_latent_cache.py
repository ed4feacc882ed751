"""Training from cached KL latents equals encoding every step (up to convolution rounding)."""

import json

import pytest
import torch

from histosynth.config import build_config
from histosynth.diffusion.codec import build_codec
from histosynth.train import latent_cache
from histosynth.train.config import TrainConfig
from histosynth.train.latent_cache import LatentCache
from histosynth.train.loop import run


def _gens(n):
    return [torch.Generator().manual_seed(100 + i) for i in range(n)]


def test_cached_draw_is_the_codecs_draw():
    torch.manual_seed(0)
    codec = build_codec("kl-f4-tiny").eval()
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    cache, keys = LatentCache(codec, 1 << 20), [(0, 0), (1, 5), (2, 3)]
    with torch.no_grad():
        want, g_want = codec.encode_latents(images, generator=(g := _gens(3))), g
        first, g_first = cache.encode_latents(images, keys, g := _gens(3)), g
        again = cache.encode_latents(images[:2], keys[:2], _gens(2))  # served from the cache
    assert torch.equal(first, want)  # same batch, same moments: the same numbers
    assert torch.allclose(again, want[:2], atol=1e-5) and (cache.hits, cache.misses) == (2, 3)
    # the generators advanced alike, so every later draw of the step is the same too
    assert all(
        torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
        for a, b in zip(g_want, g_first, strict=True)
    )


def test_training_from_cached_latents_gives_the_same_losses(make_dataset, tmp_path):
    data = make_dataset(tmp_path / "ds", n=2, size=32)
    torch.manual_seed(0)
    build_codec("kl-f4-tiny").save_pretrained(tmp_path / "codec")
    over = ["model.backbone=test", f"model.codec={tmp_path / 'codec'}", "data.image_size=32", "optim.batch_size=1",
            "run.steps=4", "run.log_every=1", "run.sample_every=0", "run.sample_steps=2", "run.grid_rows=1",
            "data.workers=0", "model.measure_scale=false", "data.augment=false"]  # fmt: skip
    losses = {}
    latent_cache._CURRENT.clear()
    # 4 steps of batch 1 over 2 patches, no symmetries: steps 3 and 4 are cache hits. The encoder
    # sees each patch alone either way, so the moments, and with them the losses, are the same up
    # to float32 rounding: the same bits on AVX-512 CPUs; on an AVX2-only one (2026-12-06) step 2
    # differed in the 7th digit (1.3219042 vs 1.3219041), the latent reaching the loss by another
    # memory layout, probably (stacked moments against the encoder's own output).
    for gb in (0.0, 1.0):
        cfg = build_config(TrainConfig, preset="cpu-tiny", overrides=[*over, f"data.latent_cache_gb={gb}"])
        run(data, tmp_path / f"run{gb}", cfg, show_progress=False)
        rows = (tmp_path / f"run{gb}" / "stats.jsonl").read_text().splitlines()
        losses[gb] = [json.loads(r)["loss"] for r in rows]
    (cache,) = latent_cache._CURRENT.values()
    assert len(losses[0.0]) == 4 and (cache.hits, cache.misses) == (2, 2)
    assert losses[1.0] == pytest.approx(losses[0.0], rel=1e-6, abs=0)
