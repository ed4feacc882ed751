"""QC pictures: the thumbnail, its tissue mask, and the kept patch grid coloured by class."""

from __future__ import annotations

import numpy as np

from histosynth.wsi.tissue import TissueMask

__all__ = ["qc_picture"]

# Outline of patches when no classes are known.
_PLAIN = (0, 170, 0)


def qc_picture(
    tissue: TissueMask,
    x0: np.ndarray,
    y0: np.ndarray,
    size0: float,
    colors: np.ndarray | None = None,
    max_side: int = 1024,
) -> np.ndarray:
    """A two-panel RGB picture for checking tiling by eye.

    Left: the thumbnail with each kept patch outlined. Right: the tissue mask (tissue white,
    glass black) with each kept patch filled in its class colour.

    Parameters
    ----------
    tissue
        The slide's tissue mask and thumbnail.
    x0, y0
        Level-0 origins of the kept patches.
    size0
        Level-0 side of a patch.
    colors
        ``(N, 3)`` uint8 colour per patch (its dominant class); ``None`` draws all in green.
    max_side
        Longer side of each panel, in pixels.
    """
    from PIL import Image, ImageDraw

    th, tw = tissue.mask.shape
    f = min(1.0, max_side / max(th, tw)) if max(th, tw) > max_side else max(1.0, max_side / max(th, tw) // 1)
    size = (max(1, round(tw * f)), max(1, round(th * f)))
    left = Image.fromarray(tissue.thumbnail).resize(size, Image.Resampling.BILINEAR)
    right = (
        Image.fromarray(tissue.mask.astype(np.uint8) * np.uint8(255))  # not mask * 255: int64
        .resize(size, Image.Resampling.NEAREST)
        .convert("RGB")
    )
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    dl, do = ImageDraw.Draw(left), ImageDraw.Draw(overlay)
    k = f / tissue.scale  # panel pixels per level-0 pixel
    for i in range(len(x0)):
        box = (x0[i] * k, y0[i] * k, (x0[i] + size0) * k - 1, (y0[i] + size0) * k - 1)
        color = tuple(int(v) for v in colors[i]) if colors is not None else _PLAIN
        dl.rectangle(box, outline=color, width=1)
        do.rectangle(box, fill=(*color, 150), outline=(*color, 255))
    right = Image.alpha_composite(right.convert("RGBA"), overlay).convert("RGB")
    gap = np.full((size[1], 4, 3), 128, np.uint8)
    return np.concatenate([np.asarray(left), gap, np.asarray(right)], axis=1)
