"""Crop colour statistics painted over their class's region (``crop_stats``)."""

import numpy as np
import pytest
import torch

from histosynth.diffusion.conditioning.base import make_conditioning
from histosynth.diffusion.conditioning.statistics import STAT_CHANNELS, paint_crop_statistics
from histosynth.diffusion.inputs import make_crop_batch

DUAL = ["map+crops-spatial", "map+crops-tokens"]


def _inputs():
    maps = torch.zeros(2, 8, 8, dtype=torch.long)
    maps[:, :, 4:] = 1  # class 0 on the left half, class 1 on the right
    flat = lambda v: np.full((4, 4, 3), v, np.uint8)  # noqa: E731
    striped = np.zeros((4, 4, 3), np.uint8)
    striped[::2] = 255  # rows alternate black and white: mean 0, std 1 in [-1, 1]
    crops = [[(0, flat(255)), (1, flat(0)), (1, striped)], [(1, flat(255))]]
    return maps, make_crop_batch(crops, maps, 4)


def test_each_region_carries_the_mean_and_spread_of_its_class_crops():
    maps, crops = _inputs()
    out = paint_crop_statistics(maps, crops, crops.mask, num_classes=2, downsample=1)
    assert out.shape == (2, STAT_CHANNELS, 8, 8)
    left, right = out[0, :, 0, 0], out[0, :, 0, -1]
    assert left.tolist() == pytest.approx([1, 1, 1, 0, 0, 0, 1])  # one white crop
    # two crops of class 1: black (mean -1, std 0) and striped (mean 0, std 1), averaged
    assert right.tolist() == pytest.approx([-0.5, -0.5, -0.5, 0.5, 0.5, 0.5, 1])
    assert out[1, :, 0, 0].abs().sum() == 0  # sample 1 has no crop of class 0: zeros, flag 0
    assert out[1, :, 0, -1].tolist() == pytest.approx([1, 1, 1, 0, 0, 0, 1])


def test_dropped_crops_and_maps_paint_nothing_and_pooling_averages():
    maps, crops = _inputs()
    keep = crops.mask & ~torch.tensor([True, False]).view(-1, 1)
    out = paint_crop_statistics(maps, crops, keep, 2, 1, drop_map=torch.tensor([False, True]))
    assert out.abs().sum() == 0
    pooled = paint_crop_statistics(maps, crops, crops.mask, 2, 4)
    full = paint_crop_statistics(maps, crops, crops.mask, 2, 1)
    assert torch.allclose(pooled, torch.nn.functional.avg_pool2d(full, 4))


@pytest.mark.parametrize("name", DUAL)
def test_variants_with_crop_stats_see_a_crop_colour_anywhere_in_its_region(name):
    maps, crops = _inputs()
    torch.manual_seed(0)
    plain = make_conditioning(name, 2, 2, 32)
    stats = make_conditioning(name, 2, 2, 32, crop_stats=True)
    assert stats.spatial_channels == plain.spatial_channels + STAT_CHANNELS
    with torch.no_grad():
        out = stats(maps, crops).spatial  # (B, c + 7, 4, 4)
        assert out.shape == (2, stats.spatial_channels, 4, 4)
        # the statistics reach every latent pixel of the right half, not only where a crop lies
        assert torch.allclose(
            out[0, -STAT_CHANNELS:, :, 2:], torch.tensor([-0.5] * 3 + [0.5] * 3 + [1.0]).view(-1, 1, 1)
        )
        none = stats(maps, None).spatial
        assert none.shape == out.shape and none[:, -STAT_CHANNELS:].abs().sum() == 0
        dropped = stats(maps, crops, drop_crops=torch.tensor([True, True])).spatial
        assert dropped[:, -STAT_CHANNELS:].abs().sum() == 0
