"""``map+crops-spatial``: the paper's model.

"For each class, its binary mask plus a crop of real tissue from that class's region, pasted
at the crop's own place (zeros elsewhere). All channels are downsampled to latent size, mixed
by a 1×1 conv to 3 channels and concatenated with the noisy latent" (paper, *Model*).

The ``4K`` channels (``K`` masks, ``3K`` crop channels) are never materialised: the 1×1 conv
on them is a per-class vector (masks) plus a per-class 3×3 colour matrix applied to the
pasted crop pixels, and it commutes with area-downsampling. Crops are pasted onto one RGB
canvas with a class index per pixel, later crops over earlier ones; crops of different
classes overlap only where a crop leaves its own region (the bounding-box fallback), which
is where this differs from separate channels. Dropped crops are not pasted (zero channels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from histosynth.diffusion.conditioning.base import Conditioning, Conditions
from histosynth.diffusion.conditioning.map import mix_masks
from histosynth.diffusion.conditioning.statistics import STAT_CHANNELS, append_crop_statistics
from histosynth.diffusion.inputs import CropBatch

__all__ = ["SpatialCropConditioning", "paste_crops"]


def paste_crops(
    crops: CropBatch, size: tuple[int, int], drop: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops pasted at their positions.

    Returns
    -------
    tuple
        ``rgb (B, 3, H, W)`` (zeros where nothing is pasted) and ``cls (B, H, W)`` long class
        of the pasted pixel, ``-1`` where none.
    """
    B = len(crops)
    H, W = size
    rgb = crops.pixels.new_zeros(B, 3, H, W)
    cls = torch.full((B, H, W), -1, dtype=torch.long, device=rgb.device)
    keep = crops.kept(drop)
    for b, n in keep.nonzero().tolist():
        r, c = crops.positions[b, n].tolist()
        h, w = crops.sizes[b, n].tolist()
        r0, c0 = max(r, 0), max(c, 0)
        r1, c1 = min(r + h, H), min(c + w, W)
        if r1 <= r0 or c1 <= c0:
            continue
        rgb[b, :, r0:r1, c0:c1] = crops.pixels[b, n, :, r0 - r : r1 - r, c0 - c : c1 - c]
        cls[b, r0:r1, c0:c1] = crops.classes[b, n]
    return rgb, cls


class SpatialCropConditioning(Conditioning):
    """Masks and in-place crops, mixed by a 1×1 conv (the paper's wiring).

    Parameters
    ----------
    num_classes, downsample, cross_attention_dim
        See :class:`Conditioning`.
    mix_channels
        Output channels of the 1×1 mixing conv (3 in the paper).
    crop_stats
        Also paint each class's crop colour statistics over its region (ours, not the paper's:
        :mod:`~histosynth.diffusion.conditioning.statistics`).
    """

    uses_crops = True
    reads_positions = True  # each crop is pasted at its own place
    preset_widths = ("crop_stats",)

    def __init__(
        self,
        num_classes: int,
        downsample: int,
        cross_attention_dim: int,
        mix_channels: int = 3,
        crop_stats: bool = False,
    ) -> None:
        super().__init__(num_classes, downsample, cross_attention_dim)
        self.crop_stats = bool(crop_stats)
        self.spatial_channels = mix_channels + (STAT_CHANNELS if self.crop_stats else 0)
        # Unit-variance outputs: one mask is on per pixel; a colour matrix sees 3 channels.
        self.masks = nn.Embedding(num_classes + 1, mix_channels, padding_idx=num_classes)
        self.colour = nn.Parameter(torch.randn(num_classes, mix_channels, 3) / 3**0.5)
        nn.init.normal_(self.masks.weight, std=1.0)
        with torch.no_grad():
            self.masks.weight[num_classes].zero_()
        self.bias = nn.Parameter(torch.zeros(mix_channels))

    def forward(
        self,
        maps: torch.Tensor,
        crops: CropBatch | None = None,
        drop_map: torch.Tensor | None = None,
        drop_crops: torch.Tensor | None = None,
    ) -> Conditions:
        self.check_maps(maps)
        out = mix_masks(self.masks, self.bias, maps, drop_map)  # (B, mix, H, W)
        if crops is not None:
            rgb, cls = paste_crops(crops.to(maps.device, out.dtype), tuple(maps.shape[-2:]), drop_crops)
            pasted = cls >= 0  # (B, H, W)
            weight = self.colour[cls.clamp(min=0)] * pasted[..., None, None]  # (B, H, W, mix, 3)
            out = out + torch.einsum("bhwmc,bchw->bmhw", weight, rgb)
        else:  # keep the colour matrices in the graph (DistributedDataParallel needs every parameter)
            out = out + 0 * self.colour.sum()
        spatial = F.avg_pool2d(out, self.downsample) if self.downsample > 1 else out  # (B, mix, h, w)
        if self.crop_stats:  # (B, mix + 7, h, w)
            spatial = append_crop_statistics(
                spatial, maps, crops, self.num_classes, self.downsample, drop_map, drop_crops
            )
        tokens, mask = self.null_tokens(maps.shape[0])
        return Conditions(spatial, tokens, mask)
