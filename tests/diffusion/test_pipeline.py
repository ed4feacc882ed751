"""The inference pipeline: save/load, per-sample seeds, guidance branches, swappable samplers."""

import numpy as np
import pytest
import torch

from histosynth.diffusion.codec import build_codec
from histosynth.diffusion.pipeline import SAMPLERS, HistoSynthPipeline, make_scheduler
from histosynth.diffusion.schedule import NoiseSchedule
from histosynth.seeding import torch_generator


def _pipe(make_denoiser, conditioning="map+crops-tokens"):
    den = make_denoiser(conditioning)
    pipe = HistoSynthPipeline(den, build_codec("identity-p2"), make_scheduler(NoiseSchedule()))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _gens(idx):
    return [torch_generator(7, "sample", i) for i in idx]


def test_save_from_pretrained_same_output(tmp_path, make_denoiser, make_inputs):
    pipe = _pipe(make_denoiser)
    maps, crops = make_inputs(2)
    kw = dict(guidance_map=1.5, guidance_crops=2.0, num_inference_steps=3, eta=1.0)
    before = pipe(maps, crops, generator=_gens([0, 1]), **kw).images
    pipe.save_pretrained(tmp_path / "p")
    again = HistoSynthPipeline.from_pretrained(tmp_path / "p")
    again.set_progress_bar_config(disable=True)
    assert type(again.denoiser).__name__ == "HistoDenoiser"
    np.testing.assert_array_equal(again(maps, crops, generator=_gens([0, 1]), **kw).images, before)
    assert before.shape == (2, 32, 32, 3) and before.dtype == np.uint8


@pytest.mark.parametrize("sampler, eta", [("ddim", 1.0), ("dpm++-sde", 0.0)])
def test_per_sample_seeds_do_not_depend_on_batch_size(sampler, eta, make_denoiser, make_inputs):
    pipe = _pipe(make_denoiser)
    pipe.set_sampler(sampler)
    maps, crops = make_inputs(3)
    kw = dict(num_inference_steps=3, eta=eta, output_type="pt", guidance_crops=2.0)
    batch = pipe(maps, crops, generator=_gens([0, 1, 2]), **kw).images
    single = pipe(maps[1:2], crops[1:2], generator=_gens([1]), **kw).images
    # Equal up to float reassociation in batched kernels (well under one uint8 level).
    torch.testing.assert_close(single[0], batch[1], atol=5e-4, rtol=0)
    assert not torch.allclose(batch[0], batch[1])
    with pytest.raises(ValueError, match="one per sample"):
        pipe(maps, crops, generator=_gens([0]))


def test_guidance_uses_only_the_branches_it_needs(make_denoiser, make_inputs):
    pipe = _pipe(make_denoiser)
    maps, crops = make_inputs(2)
    calls = []
    orig = pipe.denoiser.forward

    def spy(sample, *a, **k):
        calls.append(sample.shape[0])
        return orig(sample, *a, **k)

    pipe.denoiser.forward = spy
    for gm, gc, branches in [(1.0, 1.0, 1), (1.0, 3.0, 2), (2.0, 1.0, 3), (2.0, 3.0, 3)]:
        calls.clear()
        pipe(maps, crops, guidance_map=gm, guidance_crops=gc, num_inference_steps=2, generator=_gens([0, 1]))
        assert calls == [2 * branches] * 2
    calls.clear()
    pipe(maps, None, guidance_map=2.0, num_inference_steps=2, generator=_gens([0, 1]))
    assert calls == [4, 4]  # map-only: (map) and (nothing)


def test_guidance_formula():
    full, map_only, empty = torch.tensor(3.0), torch.tensor(2.0), torch.tensor(1.0)
    out = HistoSynthPipeline._guide((full, map_only, empty), True, 2.0, 3.0)
    assert float(out) == 1.0 + 2.0 * (2.0 - 1.0) + 3.0 * (3.0 - 2.0)
    assert float(HistoSynthPipeline._guide((full,), True, 1.0, 1.0)) == 3.0


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_runs(name, make_denoiser, make_inputs):
    pipe = _pipe(make_denoiser, "map")
    pipe.set_sampler(name)
    maps, _ = make_inputs(1)
    out = pipe(maps, None, num_inference_steps=3, generator=_gens([0]), output_type="pil").images
    assert out[0].size == (32, 32)
    assert type(pipe.scheduler).__name__ == SAMPLERS[name][0].__name__


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_samplers_follow_the_training_schedule(prediction, make_denoiser):
    """With an oracle denoiser for a one-point data set, every sampler lands on that point."""
    schedule = NoiseSchedule(prediction=prediction)
    abar = schedule.alphas_cumprod().float()
    target = torch.full((1, 12, 16, 16), 0.7)

    def oracle(sample, timestep, maps, crops=None, drop_map=None, drop_crops=None, conditions=None):
        a = abar[timestep.long()].view(-1, 1, 1, 1)
        eps = (sample - a.sqrt() * target) / (1 - a).sqrt()
        return eps if prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * target

    den = make_denoiser("map")
    den.forward = oracle
    pipe = HistoSynthPipeline(den, build_codec("identity-p2"), make_scheduler(schedule))
    pipe.set_progress_bar_config(disable=True)
    maps = torch.zeros(1, 32, 32, dtype=torch.long)
    for name in SAMPLERS:
        pipe.set_sampler(name)
        out = pipe(maps, None, num_inference_steps=10, generator=_gens([0]), output_type="latent").images
        torch.testing.assert_close(out, target, atol=1e-4, rtol=0)


def test_the_cli_offers_every_sampler():
    from histosynth.cli.sample import SAMPLER_CHOICES  # a literal: the CLI does not import diffusers

    assert SAMPLER_CHOICES == list(SAMPLERS)


def test_karras_levels_spend_more_steps_at_low_noise():
    from histosynth.diffusion.sampling import set_timesteps

    plain, karras = make_scheduler(NoiseSchedule(), "dpm++"), make_scheduler(NoiseSchedule(), "dpm++-karras")
    for s in (plain, karras):
        set_timesteps(s, 20, "cpu")
    assert int((karras.timesteps < 200).sum()) > int((plain.timesteps < 200).sum())
