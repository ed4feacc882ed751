"""Speckle: the high-frequency energy of images against that of real ones.

``laplacian_energy`` is the mean absolute 4-neighbour Laplacian of the grey image (ITU-R 601
luma, 0..255), averaged over images. The *speckle ratio* of a synthetic set is its energy over
that of the held-out real patches: above 1 the images carry more pixel-level variation than
tissue does (residual noise, colour speckle), below 1 they are smoother (blur). It is a
sanity check, not a quality score: coloured noise of the right power has a ratio near 1 too,
which is why ``evaluate`` reports it beside the Fréchet distances and the C2ST.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["laplacian_energy"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def laplacian_energy(images: Iterable[np.ndarray]) -> float:
    """Mean over images of the mean ``|∇² grey|`` (uint8 RGB ``(H, W, 3)`` images, 0..255 scale)."""
    values = []
    for im in images:
        g = np.asarray(im, np.float32) @ _LUMA  # (H, W)
        p = np.pad(g, 1, mode="edge")
        lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * g
        values.append(float(np.abs(lap).mean()))
    if not values:
        raise ValueError("laplacian_energy needs at least one image")
    return float(np.mean(values))
