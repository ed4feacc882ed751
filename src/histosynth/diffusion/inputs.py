"""The conditioning inputs of the model, documented in one place.

Maps
    ``maps``: integer class ids, ``(B, H, W)`` at image resolution (a ``torch.LongTensor``, or
    anything :func:`as_maps` accepts: a uint8 array, a list of ``(H, W)`` arrays). Ids lie in
    ``0 .. num_classes - 1``, the pixel values of the patch dataset's ``maps/*.png``.

Crops
    ``crops``: per sample, a list of exemplars; each exemplar is a
    :class:`histosynth.data.crops.Crop` or a tuple ``(class_id, pixels)`` or
    ``(class_id, pixels, (row, col))`` where ``pixels`` is RGB uint8 ``(h, w, 3)`` or a float
    tensor ``(3, h, w)`` in [-1, 1]. Any number per class, from any image; at most
    ``max_crops`` per sample are kept (the first ones). ``(row, col)`` is where the
    ``map+crops-spatial`` wiring pastes the crop (the paper's "at its own place"); without
    it the crop is pasted at the centre of its class region, as the paper does at test time.
    The ``map+crops-tokens`` conditioning ignores positions.

    :func:`make_crop_batch` turns that into a padded :class:`CropBatch`: every crop is fitted
    to a ``canvas × canvas`` square *without rescaling* (cut when larger, tiled when smaller,
    :func:`histosynth.data.crops.fit_to_canvas`), so a crop keeps its magnification, and a mask
    marks the real entries. ``crops=None`` (or an empty list) means "no exemplars": the model
    then runs map-only, which is what crop dropout trains it for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from histosynth.data.crops import Crop, fit_to_canvas, interior_point

__all__ = ["CropBatch", "as_maps", "make_crop_batch", "to_crop"]


@dataclass
class CropBatch:
    """Padded exemplar crops of a batch (``N`` = most crops of any sample, at least 1).

    Attributes
    ----------
    pixels
        ``(B, N, 3, S, S)`` float in [-1, 1], each crop fitted to the ``S × S`` canvas.
    classes
        ``(B, N)`` long class id of each crop (0 where padded).
    mask
        ``(B, N)`` bool, True for real crops.
    positions
        ``(B, N, 2)`` long ``(row, col)`` of the crop's top-left in the map.
    sizes
        ``(B, N, 2)`` long ``(h, w)`` of the crop's own extent on the canvas (``≤ S``).
    """

    pixels: torch.Tensor
    classes: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    sizes: torch.Tensor

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def canvas(self) -> int:
        return self.pixels.shape[-1]

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> CropBatch:
        """Move to ``device``; ``dtype`` applies to ``pixels`` only."""
        out = {f.name: getattr(self, f.name).to(device) for f in fields(self)}
        if dtype is not None:
            out["pixels"] = out["pixels"].to(dtype)
        return CropBatch(**out)

    def kept(self, drop: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N)`` bool: real crops of samples whose crops are not dropped (``drop (B,)``)."""
        return self.mask if drop is None else self.mask & ~drop.view(-1, 1)

    def index(self, idx: torch.Tensor | slice | list[int]) -> CropBatch:
        """The crops of samples ``idx``."""
        return CropBatch(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def repeat(self, k: int) -> CropBatch:
        """``k`` copies stacked along the batch (for classifier-free guidance branches)."""
        return CropBatch(**{f.name: torch.cat([getattr(self, f.name)] * k) for f in fields(self)})

    @classmethod
    def empty(cls, batch: int, canvas: int, device: Any = None) -> CropBatch:
        """A batch with no crops at all."""
        return cls(
            torch.zeros(batch, 1, 3, canvas, canvas, device=device),
            torch.zeros(batch, 1, dtype=torch.long, device=device),
            torch.zeros(batch, 1, dtype=torch.bool, device=device),
            torch.zeros(batch, 1, 2, dtype=torch.long, device=device),
            torch.zeros(batch, 1, 2, dtype=torch.long, device=device),
        )


def as_maps(maps: Any) -> torch.Tensor:
    """Class-id maps as a ``(B, H, W)`` long tensor (a single ``(H, W)`` map gets ``B = 1``)."""
    if isinstance(maps, list | tuple):
        maps = np.stack([np.asarray(m) for m in maps])
    t = torch.as_tensor(np.asarray(maps) if not isinstance(maps, torch.Tensor) else maps)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.is_floating_point():
        raise ValueError(f"maps must be integer class ids of shape (B, H, W), got {tuple(t.shape)} {t.dtype}")
    return t.long()


def to_crop(entry: Crop | Sequence[Any]) -> Crop:
    """A :class:`Crop` from a crop or a ``(class_id, pixels[, (row, col)])`` tuple."""
    if isinstance(entry, Crop):
        return entry
    if not 2 <= len(entry) <= 3:
        raise ValueError("a crop is (class_id, pixels) or (class_id, pixels, (row, col))")
    pos = tuple(int(v) for v in entry[2]) if len(entry) == 3 and entry[2] is not None else None
    return Crop(int(entry[0]), entry[1], pos)  # type: ignore[arg-type]


def _as_hwc_float(pixels: Any) -> np.ndarray:
    """RGB ``(h, w, 3)`` float32 in [-1, 1] from uint8 HWC or a float ``(3, h, w)`` tensor."""
    if isinstance(pixels, torch.Tensor):
        if pixels.ndim != 3 or pixels.shape[0] != 3:
            raise ValueError(f"a crop tensor must be (3, h, w) in [-1, 1], got {tuple(pixels.shape)}")
        return pixels.detach().float().permute(1, 2, 0).cpu().numpy()
    arr = np.asarray(pixels)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"a crop array must be RGB uint8 (h, w, 3), got {arr.shape} {arr.dtype}")
    return arr.astype(np.float32) / 127.5 - 1.0


def make_crop_batch(
    crops: Sequence[Sequence[Crop | Sequence[Any]]] | None,
    maps: torch.Tensor,
    canvas: int,
    max_crops: int | None = None,
    rng: np.random.Generator | None = None,
    place: bool = True,
) -> CropBatch:
    """Pad per-sample crop lists into a :class:`CropBatch` (see the module notes for the format).

    Parameters
    ----------
    crops
        Per sample, a list of crops; ``None`` for no crops at all.
    maps
        ``(B, H, W)`` class ids, used to place crops without a position.
    canvas
        Side of the square each crop is fitted to.
    max_crops
        Keep at most this many crops per sample (the first ones).
    rng
        Where a crop is larger than the canvas, draws the window kept (else the centre).
    place
        Centre crops without a position on their class region (only the spatial wiring reads
        positions; ``False`` skips that work and leaves such positions at ``(0, 0)``).
    """
    maps = as_maps(maps)
    B = maps.shape[0]
    if crops is None:
        return CropBatch.empty(B, canvas)
    if len(crops) != B:
        raise ValueError(f"got crops for {len(crops)} samples but {B} maps")
    lists = [[to_crop(c) for c in sample][:max_crops] for sample in crops]
    N = max([1, *map(len, lists)])
    pixels = np.zeros((B, N, 3, canvas, canvas), np.float32)
    classes = np.zeros((B, N), np.int64)
    mask = np.zeros((B, N), bool)
    positions = np.zeros((B, N, 2), np.int64)
    sizes = np.zeros((B, N, 2), np.int64)
    maps_np = maps.cpu().numpy() if place else None
    centres: dict[tuple[int, int], tuple[int, int]] = {}  # (sample, class) -> interior point
    for b, sample in enumerate(lists):
        for n, crop in enumerate(sample):
            hwc = _as_hwc_float(crop.pixels)
            h, w = min(hwc.shape[0], canvas), min(hwc.shape[1], canvas)
            pixels[b, n] = fit_to_canvas(hwc, canvas, rng).transpose(2, 0, 1)
            pos = crop.position
            if pos is None and maps_np is not None:
                key = (b, crop.class_id)
                if key not in centres:
                    centres[key] = interior_point(maps_np[b] == crop.class_id)
                cy, cx = centres[key]
                H, W = maps_np.shape[1:]
                pos = (min(max(cy - h // 2, 0), max(H - h, 0)), min(max(cx - w // 2, 0), max(W - w, 0)))
            elif pos is None:
                pos = (0, 0)
            classes[b, n], mask[b, n] = crop.class_id, True
            positions[b, n], sizes[b, n] = pos, (h, w)
    return CropBatch(
        torch.from_numpy(pixels),
        torch.from_numpy(classes),
        torch.from_numpy(mask),
        torch.from_numpy(positions),
        torch.from_numpy(sizes),
    )
