"""Window geometry, blending weights and the seam score for large-image synthesis.

A large canvas is covered by overlapping windows of the model's training size. At every
denoising step each window's prediction is weighted by a ramp that falls towards the window
edge, summed, and divided by the summed weights (MultiDiffusion, Bar-Tal et al. 2023, eq. 3-5:
the step that best agrees with all windows in the least-squares sense is the weighted mean).
"""

from __future__ import annotations

import numpy as np

from histosynth.sample.paged import release

__all__ = ["blend_weights", "seam_score", "window_origins"]


def window_origins(length: int, window: int, overlap: int) -> list[int]:
    """Origins along one axis: stride ``window - overlap``, the last window flush with the end.

    Every position in ``[0, length)`` is covered; ``length <= window`` gives ``[0]``.
    """
    if window <= 0 or not 0 <= overlap < window:
        raise ValueError(f"need window > 0 and 0 <= overlap < window, got window={window}, overlap={overlap}")
    if length <= window:
        return [0]
    stride = window - overlap
    origins = list(range(0, length - window + 1, stride))
    if origins[-1] != length - window:
        origins.append(length - window)
    return origins


def blend_weights(window: int, overlap: int) -> np.ndarray:
    """``(window, window)`` float32 weights: 1 inside, a raised-cosine ramp over ``overlap``.

    The ramp never reaches zero (the first pixel keeps a small weight), so a pixel covered by
    one window only, at the canvas border, is still defined.
    """
    ramp = np.ones(window, np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float32) + 1) / (overlap + 1)
        edge = 0.5 - 0.5 * np.cos(np.pi * t)
        ramp[:overlap] = edge
        ramp[-overlap:] = np.minimum(ramp[-overlap:], edge[::-1])
    return np.outer(ramp, ramp)


def seam_score(
    image: np.ndarray, boundaries_x: list[int], boundaries_y: list[int], band_px: int = 1 << 20
) -> float:
    """Gradient energy on window boundaries relative to everywhere else (1.0 = seamless).

    Parameters
    ----------
    image
        (H, W, 3) uint8 image (an array or a memory map: it is read in bands of about
        ``band_px`` pixels, each memory map's pages released after its band, so memory does
        not grow with the image, nor with its width).
    boundaries_x, boundaries_y
        Pixel columns / rows where a window edge lies (a seam would show as a step there).
    band_px
        Pixels per band.

    Returns
    -------
    float
        Mean absolute horizontal (vertical) difference across the boundary columns (rows),
        divided by the mean over all columns (rows). Values well above 1 reveal seams.
    """
    H, W = image.shape[:2]
    bx = [b - 1 for b in boundaries_x if 0 < b < W]  # dx[:, j] is the step between columns j and j+1
    by = {b - 1 for b in boundaries_y if 0 < b < H}
    on = [0.0, 0]  # sum and count of the steps across boundaries
    total = [0.0, 0]  # ... and of all steps
    band = max(1, band_px // W)
    for r0 in range(0, H, band):
        rows = np.asarray(image[r0 : r0 + band + 1], dtype=np.float32).mean(-1)  # one row more, for dy
        release(image)
        dx, dy = np.abs(np.diff(rows[:band], axis=1)), np.abs(np.diff(rows, axis=0))
        for part in (dx, dy):
            total[0], total[1] = total[0] + float(part.sum(dtype=np.float64)), total[1] + part.size
        picks = [dx[:, bx]] if bx else []
        picks += [dy[[b - r0 for b in sorted(by) if r0 <= b < r0 + len(dy)]]]
        for part in picks:
            on[0], on[1] = on[0] + float(part.sum(dtype=np.float64)), on[1] + part.size
    if on[1] == 0:
        return 1.0
    return float((on[0] / on[1]) / max(total[0] / max(total[1], 1), 1e-6))
