"""Visual crops of real tissue: where to cut them, how to fit them, how to pick them in training.

The paper (Alfasly et al. 2025, *Model*) conditions each class region on a crop of real
tissue from that region: "the largest square (side 200 down to 40 px) inside the region, or a
random sub-rectangle of it when the side exceeds 100 px". Those numbers are for 256 px patches;
here they scale with the patch side (:func:`crop_sides`). Choices the paper leaves open, and
ours:

- the square is searched from the largest side down in steps of 10 px (scaled); among all
  positions where it fits, one is drawn at random (an augmentation);
- the sub-rectangle drawn from a square larger than the threshold has each side uniform in
  ``[threshold, side]``, so it is never smaller than a square that would be kept whole;
- when no square of the smallest side fits, the crop is the region's bounding box with the
  pixels outside the region set to the region's mean colour;
- regions smaller than ``min_area`` pixels get no crop (a few pixels are no exemplar).

Everything here is numpy-only, so the sampling stage's crop bank reuses it without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Crop",
    "CropSampler",
    "centre_position",
    "crop_sides",
    "fit_to_canvas",
    "interior_point",
    "largest_square",
    "region_crop",
]

# The paper's numbers at 256 px patches.
_REF_SIZE, _MAX_SIDE, _MIN_SIDE, _STEP, _SPLIT_SIDE = 256, 200, 40, 10, 100


@dataclass(frozen=True)
class Crop:
    """One exemplar crop of tissue for one class.

    Attributes
    ----------
    class_id
        The class (pixel value of the semantic map) the crop shows.
    pixels
        RGB uint8 ``(h, w, 3)``, or a float tensor ``(3, h, w)`` in [-1, 1].
    position
        ``(row, col)`` of the crop's top-left in the map it conditions, used only by the
        ``map+crops-spatial`` conditioning; ``None`` pastes it at the centre of its class region.
    source
        Where the crop came from (free text for provenance: ``"<patch id>:<row>,<col>"``).
    """

    class_id: int
    pixels: Any
    position: tuple[int, int] | None = None
    source: str | None = None


def crop_sides(patch_size: int) -> list[int]:
    """Square sides tried, largest first: the paper's 200 → 40 px in steps of 10 at 256 px."""
    scale = patch_size / _REF_SIZE
    sides = [max(1, round(s * scale)) for s in range(_MAX_SIDE, _MIN_SIDE - 1, -_STEP)]
    return sorted(set(sides), reverse=True)


def split_side(patch_size: int) -> int:
    """Square side above which a random sub-rectangle is taken (100 px at 256 px)."""
    return max(1, round(_SPLIT_SIDE * patch_size / _REF_SIZE))


def canvas_size(patch_size: int) -> int:
    """Side of the square canvas crops are fitted to: the largest crop side (200 px at 256)."""
    return crop_sides(patch_size)[0]


def largest_square(
    mask: np.ndarray, sides: Sequence[int], rng: np.random.Generator | None = None
) -> tuple[int, int, int] | None:
    """The largest square of ``sides`` lying wholly inside ``mask``.

    Parameters
    ----------
    mask
        Boolean ``(H, W)`` region.
    sides
        Candidate sides, largest first.
    rng
        Draws the position among all that fit; ``None`` takes the first in raster order.

    Returns
    -------
    tuple or None
        ``(row, col, side)`` of the square's top-left, or ``None`` when none fits.
    """
    h, w = mask.shape
    sat = np.zeros((h + 1, w + 1), np.int32)  # summed-area table
    sat[1:, 1:] = mask.astype(np.int32).cumsum(0).cumsum(1)
    area = int(sat[-1, -1])
    cands = [int(s) for s in sides if s <= h and s <= w and s * s <= area]

    def hits(s: int) -> np.ndarray:
        window = sat[s:, s:] - sat[:-s, s:] - sat[s:, :-s] + sat[:-s, :-s]  # (H-s+1, W-s+1)
        return np.flatnonzero(window == s * s)

    # A square that fits contains smaller ones, so "fits" is monotone in the side: bisect.
    lo, hi, best = 0, len(cands) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        found = hits(cands[mid])
        if found.size:
            best, hi = (cands[mid], found), mid - 1
        else:
            lo = mid + 1
    if best is None:
        return None
    s, found = best
    k = found[rng.integers(found.size)] if rng is not None else found[0]
    return int(k // (w - s + 1)), int(k % (w - s + 1)), s


def region_crop(
    image: np.ndarray,
    label: np.ndarray,
    class_id: int,
    rng: np.random.Generator | None = None,
    min_area: int = 0,
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Cut a crop of class ``class_id`` from a patch, as in the paper (see the module notes).

    Parameters
    ----------
    image
        RGB uint8 ``(H, W, 3)``.
    label
        Class ids ``(H, W)``.
    class_id
        The class whose region is cut.
    rng
        Randomness for the position and sub-rectangle; ``None`` is deterministic (the first
        fitting square, kept whole).
    min_area
        Regions with fewer pixels get no crop.

    Returns
    -------
    tuple or None
        ``(crop uint8 (h, w, 3), (row, col) of its top-left)``, or ``None`` when the region is
        empty or smaller than ``min_area``.
    """
    mask = label == class_id
    area = int(mask.sum())
    if area == 0 or area < min_area:
        return None
    size = min(label.shape)
    square = largest_square(mask, crop_sides(size), rng)
    if square is not None:
        r, c, s = square
        h = w = s
        thr = split_side(size)
        if s > thr and rng is not None:
            h, w = (int(v) for v in rng.integers(thr, s + 1, size=2))
            r += int(rng.integers(0, s - h + 1))
            c += int(rng.integers(0, s - w + 1))
        return np.ascontiguousarray(image[r : r + h, c : c + w]), (r, c)
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    crop = image[r0:r1, c0:c1].copy()
    inside = mask[r0:r1, c0:c1]
    crop[~inside] = image[mask].mean(0).round().astype(np.uint8)
    return crop, (int(r0), int(c0))


def centre_position(mask: np.ndarray, h: int, w: int) -> tuple[int, int]:
    """Top-left ``(row, col)`` that centres an ``h × w`` crop on the most interior point of ``mask``.

    The paper pastes test-time exemplars "at the centre of their class region"; the centroid
    of a curved region can lie outside it, so the point farthest from the region's border is
    used. The box is clipped to stay inside the map. An empty mask centres on the map.
    """
    H, W = mask.shape
    cy, cx = interior_point(mask)
    r = int(np.clip(cy - h // 2, 0, max(H - h, 0)))
    c = int(np.clip(cx - w // 2, 0, max(W - w, 0)))
    return r, c


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """``(row, col)`` of the pixel of ``mask`` farthest from its border (the map centre if empty)."""
    from scipy.ndimage import distance_transform_edt

    if not mask.any():
        return mask.shape[0] // 2, mask.shape[1] // 2
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    cy, cx = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(cy), int(cx)


def fit_to_canvas(crop: np.ndarray, canvas: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Fit a crop to a ``canvas × canvas`` square without changing its pixel scale.

    A side longer than the canvas is cut (a random window with ``rng``, else the centre); a
    shorter one is filled by repeating the crop (tiling), so a texture exemplar keeps its
    magnification and statistics whatever its size. Works on ``(h, w, C)`` arrays.
    """
    h, w = crop.shape[:2]
    if h > canvas or w > canvas:
        dh, dw = max(h - canvas, 0), max(w - canvas, 0)
        r = int(rng.integers(0, dh + 1)) if rng is not None else dh // 2
        c = int(rng.integers(0, dw + 1)) if rng is not None else dw // 2
        crop = crop[r : r + canvas, c : c + canvas]
        h, w = crop.shape[:2]
    if h < canvas or w < canvas:
        reps = (-(-canvas // h), -(-canvas // w)) + (1,) * (crop.ndim - 2)
        crop = np.tile(crop, reps)[:canvas, :canvas]
    return np.ascontiguousarray(crop)


# A function returning (image, label, source) of another patch holding a class, or None.
ForeignFn = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray, str] | None]


@dataclass(frozen=True)
class CropSampler:
    """Training-time crops of a patch: own regions, and foreign exemplars of the same classes.

    Parameters
    ----------
    per_class
        At most this many crops per class (each sample draws 1..per_class).
    max_crops
        At most this many crops per patch; classes are covered round-robin before seconds.
    foreign_prob
        Chance that a crop is cut from another patch of the same class, so the model learns to
        use exemplars from any image (our extension; the paper's training crops are own-patch).
    min_area_frac
        Regions under this fraction of the patch get no crop.
    """

    per_class: int = 2
    max_crops: int = 8
    foreign_prob: float = 0.5
    min_area_frac: float = 0.02

    def __call__(
        self,
        image: np.ndarray,
        label: np.ndarray,
        rng: np.random.Generator,
        foreign: ForeignFn | None = None,
        source: str = "",
    ) -> list[Crop]:
        """Crops for one training patch (own crops carry their position, foreign ones none)."""
        min_area = max(1, int(self.min_area_frac * label.size))
        ids, counts = np.unique(label, return_counts=True)
        classes = [int(k) for k, n in zip(ids, counts, strict=True) if n >= min_area]
        rng.shuffle(classes)
        per_class: list[list[Crop]] = []
        for cls in classes:
            crops = []
            for _ in range(int(rng.integers(1, self.per_class + 1))):
                crop = None
                if foreign is not None and rng.random() < self.foreign_prob:
                    other = foreign(cls, rng)
                    if other is not None:
                        got = region_crop(other[0], other[1], cls, rng, min_area)
                        if got is not None:
                            crop = Crop(cls, got[0], None, f"{other[2]}:{got[1][0]},{got[1][1]}")
                if crop is None:
                    got = region_crop(image, label, cls, rng, min_area)
                    if got is not None:
                        crop = Crop(cls, got[0], got[1], f"{source}:{got[1][0]},{got[1][1]}")
                if crop is not None:
                    crops.append(crop)
            per_class.append(crops)
        out: list[Crop] = []
        for i in range(self.per_class):  # round-robin: first crop of every class, then seconds
            out += [crops[i] for crops in per_class if i < len(crops)]
        return out[: self.max_crops]
