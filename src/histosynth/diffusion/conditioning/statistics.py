"""Crop colour statistics painted over their class's region (``crop_stats``, ours).

A crop says two things: what its tissue looks like (texture, nuclei) and how its lab stained
and scanned it (colour). The paper's wiring carries the colour only inside the pasted crop, and
a token encoder behind GroupNorm sees little of it; a model must then learn to spread a crop's
colour over a whole region through its receptive field or its cross-attention, which a short
CPU run does not (docs/domains.md: one map rendered with each lab's crops gave nearly the same
image). With ``crop_stats`` each class's region also carries, at every pixel, the mean and
standard deviation of the RGB values of that class's kept crops (averaged over the class's
crops) and a flag that the class has a crop: seven channels, area-downsampled to latent size
and concatenated with the latent like the map's. They add no parameters (the backbone's first
convolution reads them) and are position-free, so both dual variants can use them.

A dropped map, or a class without a kept crop, paints zeros (flag 0), so classifier-free
guidance on the crops contrasts the statistics with their absence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from histosynth.diffusion.inputs import CropBatch

__all__ = ["STAT_CHANNELS", "append_crop_statistics", "crop_colour_statistics", "paint_crop_statistics"]

STAT_CHANNELS = 7  # mean RGB, std RGB, "this class has a crop"


def crop_colour_statistics(pixels: torch.Tensor) -> torch.Tensor:
    """``[mean R, G, B, std R, G, B]`` of each crop ``(..., 3, S, S)`` → ``(..., 6)``.

    Crops are tiled to their canvas (:func:`~histosynth.data.crops.fit_to_canvas`), so the
    canvas's statistics are the crop's.
    """
    flat = pixels.flatten(-2)  # (..., 3, S·S)
    return torch.cat([flat.mean(-1), flat.std(-1, unbiased=False)], -1)


def paint_crop_statistics(
    maps: torch.Tensor,
    crops: CropBatch,
    keep: torch.Tensor,
    num_classes: int,
    downsample: int,
    drop_map: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-class crop statistics painted over the map, ``(B, 7, H/f, W/f)``.

    Parameters
    ----------
    maps
        ``(B, H, W)`` class ids.
    crops
        The batch's crops; ``keep (B, N)`` marks those not padded and not dropped.
    num_classes, downsample
        The conditioning's class count and codec factor ``f``.
    drop_map
        ``(B,)`` bool: samples whose map is dropped get zeros (no map, no regions to paint).
    """
    B = maps.shape[0]
    stats = crop_colour_statistics(crops.pixels.to(torch.float32))  # (B, N, 6)
    member = F.one_hot(crops.classes, num_classes).to(stats.dtype) * keep[..., None]  # (B, N, K)
    count = member.sum(1)  # (B, K)
    mean = torch.einsum("bnk,bnc->bkc", member, stats) / count.clamp(min=1)[..., None]  # (B, K, 6)
    table = torch.cat([mean, (count > 0).to(stats.dtype)[..., None]], -1)  # (B, K, 7)
    if drop_map is not None:
        table = table * (~drop_map).to(stats.dtype).view(-1, 1, 1)
    # A dropped map may already hold the "absent" id num_classes; its row is zero anyway.
    ids = maps.clamp(max=num_classes - 1)
    painted = table[torch.arange(B, device=maps.device)[:, None, None], ids]  # (B, H, W, 7)
    painted = painted.permute(0, 3, 1, 2)  # (B, 7, H, W)
    return F.avg_pool2d(painted, downsample) if downsample > 1 else painted


def append_crop_statistics(
    spatial: torch.Tensor,
    maps: torch.Tensor,
    crops: CropBatch | None,
    num_classes: int,
    downsample: int,
    drop_map: torch.Tensor | None = None,
    drop_crops: torch.Tensor | None = None,
) -> torch.Tensor:
    """A variant's ``spatial (B, c, h, w)`` with the painted statistics after it, ``(B, c + 7, h, w)``.

    No crops (``None``) paints zeros, as dropping them all does.
    """
    if crops is None:
        stats = spatial.new_zeros(spatial.shape[0], STAT_CHANNELS, *spatial.shape[2:])
    else:
        crops = crops.to(maps.device)
        stats = paint_crop_statistics(maps, crops, crops.kept(drop_crops), num_classes, downsample, drop_map)
    return torch.cat([spatial, stats.to(spatial.dtype)], 1)
