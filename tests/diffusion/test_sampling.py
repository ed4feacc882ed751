"""The one denoising loop: sampler noise per sample, from the sample's own generator."""

import pytest
import torch

from histosynth.diffusion.pipeline import make_scheduler
from histosynth.diffusion.sampling import denoise
from histosynth.diffusion.schedule import NoiseSchedule


def _gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def _shrink(x, t):
    return 0.5 * x  # element-wise: a sample's prediction does not depend on its batch


@pytest.mark.parametrize("sampler, eta", [("ddim", 1.0), ("dpm++-sde", 0.0)])
def test_sampler_noise_comes_from_each_samples_generator(sampler, eta):
    kw = dict(num_inference_steps=4, eta=eta)
    global_rng = torch.get_rng_state()
    batch = denoise(
        make_scheduler(NoiseSchedule(), sampler), _shrink, (3, 2, 4, 4), generator=_gens([0, 1, 2]), **kw
    )
    alone = denoise(
        make_scheduler(NoiseSchedule(), sampler), _shrink, (1, 2, 4, 4), generator=_gens([1]), **kw
    )
    torch.testing.assert_close(batch[1:2], alone, atol=0, rtol=0)
    assert torch.equal(torch.get_rng_state(), global_rng)  # nothing drawn from torch's global RNG

    # The sampler's own noise is drawn: the same initial noise ends elsewhere without it.
    quiet = make_scheduler(NoiseSchedule(), "ddim" if sampler == "ddim" else "dpm++")
    without = denoise(quiet, _shrink, (1, 2, 4, 4), generator=_gens([1]), num_inference_steps=4)
    assert not torch.allclose(without, alone)


def test_predict_sees_scaled_latents_and_every_timestep():
    sched = make_scheduler(NoiseSchedule(), "euler")  # scales its input: x / sqrt(sigma² + 1)
    seen = []

    def predict(x, t):
        seen.append((float(x.abs().max()), int(t)))
        return torch.zeros_like(x)

    denoise(sched, predict, (1, 1, 8, 8), generator=_gens([0]), num_inference_steps=3)
    assert [t for _, t in seen] == [int(t) for t in sched.timesteps]
    assert seen[0][0] < 5  # the initial noise has std sigma_max (≈ 80); its scaled input does not
