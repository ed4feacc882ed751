"""Stepping a large image's canvas block by block, on disk, equals stepping it whole."""

import numpy as np
import pytest
import torch

from histosynth.diffusion.pipeline import make_scheduler
from histosynth.diffusion.sampling import denoise, set_timesteps
from histosynth.diffusion.schedule import NoiseSchedule
from histosynth.sample.tiled_canvas import TiledCanvas

SHAPE = (1, 3, 20, 28)


def _model(x, t):  # an elementwise stand-in for the blended windows' prediction
    return torch.tanh(x) * 0.5 + t.float() / 2000


def _fill(canvas, t):
    canvas.weight[:] = 2.0  # as the windows' summed weights would be
    canvas.pred[:] = 2.0 * _model(torch.from_numpy(np.array(canvas.scaled)), t).numpy()


@pytest.mark.parametrize("sampler", ["ddim", "dpm++", "dpm++-karras", "unipc", "euler"])
def test_blocks_on_disk_step_like_the_whole_canvas(sampler, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    canvas = TiledCanvas(tmp_path / "a", SHAPE, seed=3, block=8)
    denoise(make_scheduler(NoiseSchedule(), sampler), _fill, SHAPE, num_inference_steps=4, canvas=canvas)
    # The same start, stepped whole in memory as the patches' loop does.
    ref = make_scheduler(NoiseSchedule(), sampler)
    start = TiledCanvas(tmp_path / "b", SHAPE, seed=3, block=8)
    start.start(ref)
    x = torch.from_numpy(np.array(start.x))[None]
    set_timesteps(ref, 4, "cpu")
    for t in ref.timesteps:
        x = ref.step(_model(ref.scale_model_input(x, t), t), t, x).prev_sample
    assert torch.allclose(torch.from_numpy(np.array(canvas.x))[None], x, atol=1e-6)
    canvas.remove()
    assert not list((tmp_path / "a").glob("_canvas-*"))


def test_noise_depends_on_the_seed_not_the_work_order(tmp_path):
    outs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        (tmp_path / name).mkdir()
        c = TiledCanvas(tmp_path / name, SHAPE, seed=seed, block=8)
        denoise(make_scheduler(NoiseSchedule(), "dpm++-sde"), _fill, SHAPE, num_inference_steps=3, canvas=c)
        outs.append(np.array(c.x))
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
