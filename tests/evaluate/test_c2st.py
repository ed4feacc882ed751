"""C2ST: chance on one distribution, separable on a real difference, pairs kept in one fold."""

import numpy as np
import pytest

from histosynth.evaluate.c2st import c2st


def _texture(n: int, seed: int) -> np.ndarray:
    """Smooth random colour fields (uint8, 16 px): a stand-in for tissue."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(60, 200, (n, 4, 4, 3))
    return np.kron(low, np.ones((1, 4, 4, 1))).astype(np.uint8)


def test_c2st_separates_noise_and_not_a_set_from_itself():
    a = _texture(40, 0)
    noisy = np.clip(a + np.random.default_rng(1).normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    sep = c2st(a, noisy, steps=120, size=16, paired=True)
    assert sep.accuracy > 0.9 and sep.n_per_class == 40
    same = c2st(_texture(40, 2), _texture(40, 3), steps=120, size=16)
    assert 0.25 < same.accuracy < 0.75
    again = c2st(_texture(40, 2), _texture(40, 3), steps=120, size=16)
    assert again == same  # seeded


def test_c2st_refuses_too_few_or_unequal_pairs():
    with pytest.raises(ValueError, match="at least 5 images"):
        c2st(_texture(3, 0), _texture(3, 1))
    with pytest.raises(ValueError, match="one length"):
        c2st(_texture(10, 0), _texture(12, 1), paired=True)
