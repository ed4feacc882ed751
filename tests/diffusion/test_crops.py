"""Crop extraction: the paper's largest-square rule, scaled, and the training crop sampler."""

import numpy as np
import pytest

from histosynth.data.crops import (
    Crop,
    CropSampler,
    centre_position,
    crop_sides,
    fit_to_canvas,
    largest_square,
    region_crop,
    split_side,
)


def test_sides_follow_the_paper_at_256_and_scale():
    assert crop_sides(256) == list(range(200, 39, -10))
    assert crop_sides(64)[0] == 50 and crop_sides(64)[-1] == 10
    assert split_side(256) == 100 and split_side(128) == 50


def test_largest_square_fits_wholly_inside():
    mask = np.zeros((64, 64), bool)
    mask[5:35, 10:60] = True  # 30 x 50: the largest square has side 30
    r, c, s = largest_square(mask, list(range(40, 0, -2)))
    assert s == 30 and mask[r : r + s, c : c + s].all()
    rng = np.random.default_rng(0)
    positions = {largest_square(mask, [30], rng)[:2] for _ in range(20)}
    assert len(positions) > 1  # drawn among all that fit
    assert largest_square(np.zeros((8, 8), bool), [4]) is None


def test_region_crop_square_subrectangle_and_fallback():
    rng = np.random.default_rng(1)
    image = np.random.default_rng(2).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    label = np.zeros((256, 256), np.uint8)
    label[:, 100:] = 1  # 256 x 156 region: a 150 px square fits (> 100 px: sub-rectangle)
    label[10:60, 10:40] = 2  # 50 x 30: no 40 px square fits -> bounding box
    crop, (r, c) = region_crop(image, label, 0, None)  # deterministic: the square kept whole
    assert crop.shape[:2] == (100, 100) and (label[r : r + 100, c : c + 100] == 0).all()
    for _ in range(5):
        crop, (r, c) = region_crop(image, label, 1, rng)
        h, w = crop.shape[:2]
        assert 100 <= h <= 150 and 100 <= w <= 150
        assert (label[r : r + h, c : c + w] == 1).all()
        np.testing.assert_array_equal(crop, image[r : r + h, c : c + w])
    crop, (r, c) = region_crop(image, label, 2, rng)
    assert crop.shape[:2] == (50, 30) and (r, c) == (10, 10)
    assert region_crop(image, label, 3, rng) is None
    assert region_crop(image, label, 2, rng, min_area=5000) is None


def test_fallback_fills_outside_pixels_with_region_mean():
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = 200
    label = np.zeros((64, 64), np.uint8)
    label[np.arange(20, 40), np.arange(20, 40)] = 1  # a thin diagonal: no square fits
    crop, _ = region_crop(image, label, 1, None)
    assert crop.shape[:2] == (20, 20) and (crop[..., 0] == 200).all()


def test_fit_to_canvas_keeps_scale():
    crop = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    out = fit_to_canvas(crop, 12)
    assert out.shape == (12, 12, 3)
    np.testing.assert_array_equal(out[:5, :7], crop)
    np.testing.assert_array_equal(out[5:10, 7:12], crop[:, :5])  # tiled, not resized
    big = np.arange(20 * 20).reshape(20, 20, 1)
    np.testing.assert_array_equal(fit_to_canvas(big, 10), big[5:15, 5:15])


def test_centre_position_lies_inside_a_curved_region():
    mask = np.zeros((60, 60), bool)
    mask[5:55, 5:15] = mask[45:55, 5:55] = True  # an L: its centroid is outside it
    r, c = centre_position(mask, 6, 6)
    assert mask[r + 3, c + 3]
    assert centre_position(np.zeros((10, 10), bool), 4, 4) == (3, 3)
    assert centre_position(mask, 100, 100) == (0, 0)  # clipped


@pytest.mark.parametrize("foreign_prob", [0.0, 1.0])
def test_crop_sampler_covers_classes_first(foreign_prob):
    label = np.zeros((64, 64), np.uint8)
    label[:, 32:] = 1
    label[:16, :16] = 2
    image = np.full((64, 64, 3), 100, np.uint8)
    other = np.full((64, 64, 3), 7, np.uint8)

    def foreign(cls, rng):
        return other, label, "other"

    sampler = CropSampler(per_class=3, max_crops=3, foreign_prob=foreign_prob)
    crops = sampler(image, label, np.random.default_rng(0), foreign, source="me")
    assert len(crops) == 3 and {c.class_id for c in crops} == {0, 1, 2}
    assert all(isinstance(c, Crop) for c in crops)
    if foreign_prob == 1.0:
        assert all(
            c.position is None and c.source.startswith("other") and (c.pixels == 7).all() for c in crops
        )
    else:
        assert all(c.position is not None and c.source.startswith("me") for c in crops)
