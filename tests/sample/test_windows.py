import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from histosynth.sample.windows import blend_weights, seam_score, window_origins


@settings(deadline=None)  # a loaded shared CPU exceeds hypothesis' 200 ms default
@given(st.integers(1, 2000), st.integers(1, 300), st.data())
def test_windows_cover_everything_in_bounds(length, window, data):
    overlap = data.draw(st.integers(0, window - 1))
    origins = window_origins(length, window, overlap)
    covered = np.zeros(max(length, window), bool)
    for o in origins:
        assert 0 <= o and (o + window <= length or length <= window)
        covered[o : o + window] = True
    assert covered[:length].all()
    assert origins == sorted(set(origins))


def test_bad_geometry():
    with pytest.raises(ValueError, match="overlap"):
        window_origins(100, 10, 10)


def test_weights_positive_and_ramped():
    w = blend_weights(16, 4)
    assert w.shape == (16, 16) and w.min() > 0 and w[8, 8] == 1
    assert w[0, 8] < w[2, 8] < w[8, 8]


def test_seam_score_detects_a_step():
    rng = np.random.default_rng(0)
    smooth = (rng.normal(128, 10, (64, 64, 3))).clip(0, 255).astype(np.uint8)
    assert seam_score(smooth, [32], [32]) == pytest.approx(1.0, abs=0.25)
    stepped = smooth.copy()
    stepped[:, 32:] = (stepped[:, 32:].astype(int) + 60).clip(0, 255)
    assert seam_score(stepped, [32], []) > 3
