"""The crops input format: padding, masks, canvas fitting and default positions."""

import numpy as np
import pytest
import torch

from histosynth.data.crops import Crop
from histosynth.diffusion.inputs import CropBatch, as_maps, make_crop_batch


def test_make_crop_batch_pads_and_places():
    maps = torch.zeros(2, 32, 32, dtype=torch.long)
    maps[1, 16:, 16:] = 2
    red = np.zeros((6, 8, 3), np.uint8)
    red[..., 0] = 255
    crops = [[(0, red, (1, 2)), Crop(2, red)], [(2, torch.zeros(3, 4, 4))]]
    cb = make_crop_batch(crops, maps, canvas=10)
    assert cb.pixels.shape == (2, 2, 3, 10, 10) and len(cb) == 2 and cb.canvas == 10
    assert cb.mask.tolist() == [[True, True], [True, False]]
    assert cb.classes.tolist() == [[0, 2], [2, 0]]
    assert cb.positions[0, 0].tolist() == [1, 2] and cb.sizes[0, 0].tolist() == [6, 8]
    assert torch.allclose(cb.pixels[0, 0, 0, :6, :8], torch.ones(6, 8))  # uint8 255 -> 1
    assert cb.positions[1, 0].tolist() == [21, 21]  # a 4 px crop centred in the class-2 square (16..31)
    r, c = cb.positions[0, 1].tolist()  # class 2 absent from map 0: centred on the map
    assert (r, c) == (13, 12)
    assert make_crop_batch(crops, maps, 10, max_crops=1).pixels.shape[1] == 1


def test_no_crops_and_repeat():
    maps = torch.zeros(3, 8, 8, dtype=torch.long)
    cb = make_crop_batch(None, maps, 4)
    assert not cb.mask.any() and cb.pixels.shape == (3, 1, 3, 4, 4)
    assert len(make_crop_batch([[], [], []], maps, 4)) == 3
    assert len(cb.repeat(2)) == 6 and len(cb.index([0])) == 1
    assert isinstance(cb.to("cpu", torch.float64), CropBatch)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="uint8"):
        make_crop_batch([[(0, np.zeros((4, 4, 3), np.float32))]], torch.zeros(1, 8, 8, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="2 samples"):
        make_crop_batch([[], []], torch.zeros(1, 8, 8, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="class ids"):
        as_maps(torch.zeros(1, 8, 8))
    assert as_maps(np.zeros((8, 8), np.uint8)).shape == (1, 8, 8)
