"""``map``: the paper's semantic-map-only baseline.

One binary mask per class, area-downsampled to latent size and mixed by a 1×1 conv to
``mix_channels`` (3 in the paper), concatenated with the noisy latent. A 1×1 conv on one-hot
masks is a per-class vector lookup, and it commutes with area-downsampling (both are linear
and per pixel), so it is computed as an embedding lookup followed by average pooling,
without ever materialising ``num_classes`` full-resolution masks. A dropped map is all-zero
masks (the conv's bias alone).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from histosynth.diffusion.conditioning.base import Conditioning, Conditions
from histosynth.diffusion.inputs import CropBatch

__all__ = ["MapConditioning", "mix_masks"]


def mix_masks(
    table: nn.Embedding, bias: torch.Tensor, maps: torch.Tensor, drop: torch.Tensor | None
) -> torch.Tensor:
    """``1×1 conv(one_hot(maps))`` at full resolution, ``(B, mix, H, W)``; dropped maps are zero masks.

    ``table`` has ``num_classes + 1`` rows, the last (``padding_idx``) fixed at zero.
    """
    null = table.num_embeddings - 1
    if drop is not None:
        maps = maps.masked_fill(drop.view(-1, 1, 1), null)
    return table(maps).permute(0, 3, 1, 2) + bias.view(1, -1, 1, 1)


class MapConditioning(Conditioning):
    """Map-only conditioning (the paper's baseline); crops are ignored.

    Parameters
    ----------
    num_classes, downsample, cross_attention_dim
        See :class:`Conditioning`.
    mix_channels
        Output channels of the 1×1 mixing conv (3 in the paper).
    """

    uses_crops = False  # the map alone; crops given are ignored

    def __init__(
        self, num_classes: int, downsample: int, cross_attention_dim: int, mix_channels: int = 3
    ) -> None:
        super().__init__(num_classes, downsample, cross_attention_dim)
        self.spatial_channels = mix_channels
        self.masks = nn.Embedding(num_classes + 1, mix_channels, padding_idx=num_classes)
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
        mixed = mix_masks(self.masks, self.bias, maps, drop_map)  # (B, mix, H, W)
        spatial = F.avg_pool2d(mixed, self.downsample) if self.downsample > 1 else mixed  # (B, mix, h, w)
        tokens, mask = self.null_tokens(maps.shape[0])
        return Conditions(spatial, tokens, mask)
