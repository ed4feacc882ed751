"""FD ≈ 0 for identical sets and grows with a controlled colour shift, under two detectors."""

import numpy as np
import pytest

from histosynth.evaluate.detectors import build_detector
from histosynth.evaluate.distribution import fd_between
from histosynth.evaluate.features import extract, image_set


@pytest.mark.parametrize("name", ["pixels-32", "random-init-cnn"])
def test_fd_zero_for_identical_sets_and_monotone_in_colour_shift(toy, tmp_path, name):
    from histosynth.evaluate.toy import shift_colour, write_patch_dataset

    det = build_detector(name)
    real = toy["real"]
    ref = extract(image_set(real, range(24)), det)
    again = extract(image_set(real, range(24)), det)
    assert fd_between(ref, again) == pytest.approx(0.0, abs=1e-6 * np.trace(ref.stats.sigma))
    fds = []
    for k, delta in enumerate((0, 10, 25, 60)):
        ds = write_patch_dataset(tmp_path / f"s{k}", shift_colour(toy["images"][:24], (delta, -delta, 0)),
                                 toy["labels"][:24], slide=f"shift{delta}")  # fmt: skip
        fds.append(fd_between(ref, extract(image_set(ds), det)))
    assert fds[0] == pytest.approx(0.0, abs=1e-6 * np.trace(ref.stats.sigma))
    assert all(a < b for a, b in zip(fds, fds[1:], strict=False)), fds
