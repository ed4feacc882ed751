"""Pictures for the report: thumbnails inlined as base64 PNG data URIs."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

import numpy as np

from histosynth.data.patch_dataset import encode_png

__all__ = ["img_tag", "mosaic", "png_uri", "thumbnail"]


def thumbnail(image: np.ndarray, side: int = 128, nearest: bool = False) -> np.ndarray:
    """``image`` scaled so its longer side is ``side`` px (nearest-neighbour for label maps)."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.NEAREST if nearest else Image.LANCZOS
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, resample))


def png_uri(image: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of an RGB or grey uint8 array."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def img_tag(image: np.ndarray | None, title: str = "", side: int = 128, nearest: bool = False) -> str:
    """An ``<img>`` of a thumbnail (an empty cell when ``image`` is None)."""
    if image is None:
        return f'<div class="empty" style="width:{side}px;height:{side}px">—</div>'
    t = thumbnail(image, side, nearest)
    return (f'<img src="{png_uri(t)}" width="{t.shape[1]}" height="{t.shape[0]}" alt="{escape(title)}" '
            f'title="{escape(title)}">')  # fmt: skip


def mosaic(images: Sequence[np.ndarray], side: int = 128, gap: int = 2) -> np.ndarray | None:
    """Up to four images tiled 2×2 on white in one ``side × side`` square (exemplar crops)."""
    if not images:
        return None
    n = min(len(images), 4)
    cells = 1 if n == 1 else 2
    cell = (side - gap * (cells - 1)) // cells
    out = np.full((side, side, 3), 255, np.uint8)
    for k, im in enumerate(images[:n]):
        t = thumbnail(im, cell)
        r, c = divmod(k, cells)
        y, x = r * (cell + gap), c * (cell + gap)
        out[y : y + t.shape[0], x : x + t.shape[1]] = t[..., :3]
    return out
