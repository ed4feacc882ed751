"""The simulated-lab transform: deconvolution inverts, seeds reproduce, identity is identity."""

import numpy as np
import pytest

from histosynth.domains.labs import IDENTITY, Lab, LabRanges, apply_lab, draw_labs, jitter_lab
from histosynth.domains.stain import (
    RUIFROK_HED,
    concentrations,
    from_concentrations,
    rotate_vector,
    stain_matrix,
)


def _pixels(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    return np.concatenate([px, [[0, 0, 0], [255, 255, 255], [0, 255, 0], [255, 0, 255]]]).astype(np.uint8)


@pytest.mark.parametrize("lab", [IDENTITY, *draw_labs(3, seed=4)])
def test_stain_matrices_invert(lab):
    m = stain_matrix(lab.matrix())
    assert np.allclose(m @ np.linalg.inv(m), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.norm(m, axis=1), 1.0)


@pytest.mark.parametrize("matrix", [RUIFROK_HED, draw_labs(2, seed=9)[1].matrix()])
def test_rgb_to_hed_to_rgb_round_trip_changes_no_pixel(matrix):
    px = _pixels()
    back = from_concentrations(concentrations(px, matrix), matrix)
    assert np.abs(back - px).max() < 1e-9
    assert (np.clip(np.rint(back), 0, 255).astype(np.uint8) == px).all()


def test_identity_parameters_are_identity_and_jpeg_off():
    img = _pixels(64 * 64 - 4).reshape(64, 64, 3)
    assert (apply_lab(img, IDENTITY) == img).all()
    assert (apply_lab(img, Lab(h_angle=0.0, e_angle=0.0, blur_um=0.0, jpeg_quality=0)) == img).all()


def test_seeds_reproduce_labs_and_images():
    img = _pixels(32 * 32 - 4, seed=2).reshape(32, 32, 3)
    a, b = draw_labs(4, seed=7), draw_labs(4, seed=7)
    assert a == b and a != draw_labs(4, seed=8)
    for lab in a:
        assert (apply_lab(img, lab) == apply_lab(img, lab)).all()
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    assert jitter_lab(rng1) == jitter_lab(rng2)


def test_labs_are_stratified_within_the_ranges():
    ranges = LabRanges()
    labs = draw_labs(5, seed=0, ranges=ranges)
    for name, (lo, hi) in (("h_scale", ranges.scale), ("e_bias", ranges.bias), ("e_angle", ranges.e_angle)):
        values = np.array([getattr(lab, name) for lab in labs])
        assert ((values >= lo) & (values <= hi)).all()
        strata = np.floor((values - lo) / (hi - lo) * 5).astype(int)  # one lab per fifth of the range
        assert sorted(strata.tolist()) == [0, 1, 2, 3, 4], (name, values)


def test_rotation_turns_by_the_angle_and_more_hematoxylin_darkens():
    h, e = RUIFROK_HED[0], RUIFROK_HED[1]
    for direction in (0.0, 90.0, 200.0):
        v = rotate_vector(h, e, 7.0, direction)
        cos = v @ h / np.linalg.norm(h)
        assert np.linalg.norm(v) == pytest.approx(1.0) and np.degrees(np.arccos(cos)) == pytest.approx(7.0)
    tissue = np.full((8, 8, 3), (180, 100, 170), np.uint8)
    assert apply_lab(tissue, Lab(h_scale=1.2)).astype(int).sum() < tissue.astype(int).sum()


def test_bad_ranges_are_one_sentence():
    with pytest.raises(ValueError, match="low ≤ high"):
        LabRanges(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="1..26"):
        draw_labs(0)


def test_negative_shift_stops_at_no_stain():
    # Pale pink tissue with less eosin: a shift below zero stain would add light where eosin
    # absorbs (green) and the channels would clip at 255 unequally: a green cast.
    pale = np.array([[[236, 226, 236], [250, 250, 250], [255, 255, 255]]], np.uint8)
    for h_bias, e_bias in ((0.0, -0.2), (-0.2, 0.0), (-0.2, -0.2)):
        lab = Lab(h_bias=h_bias, e_bias=e_bias, h_angle=0.0, e_angle=0.0, blur_um=0.0, jpeg_quality=0)
        out = apply_lab(pale, lab).astype(int)
        assert (out >= pale).all()  # less stain: never darker
        assert out[0, 0, 1] < max(out[0, 0, 0], out[0, 0, 2]), (h_bias, e_bias, out[0, 0])  # not green
        assert (out[0, 2] == 255).all()  # glass stays glass
