"""Speckle ratio: noise raises the Laplacian energy, blur lowers it, a constant image has none."""

import numpy as np
from scipy import ndimage

from histosynth.evaluate.sharpness import laplacian_energy


def test_laplacian_energy_orders_noise_and_blur():
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.uniform(0, 255, (4, 32, 32, 3)), (0, 1.5, 1.5, 0))
    noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255)
    blurred = ndimage.gaussian_filter(base, (0, 2, 2, 0))
    e = laplacian_energy(base)
    assert laplacian_energy(noisy) > 2 * e > 4 * laplacian_energy(blurred)
    assert laplacian_energy(np.full((1, 8, 8, 3), 90, np.uint8)) == 0.0
