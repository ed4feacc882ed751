"""What every conditioning variant returns, and the registry of variants.

A variant turns ``(maps, crops, drop_map, drop_crops)`` into two things for the UNet:
channels concatenated with the noisy latent (``spatial``), and tokens its cross-attention
reads (``tokens`` with a validity ``mask``). Dropping (for classifier-free guidance, trained
by random dropout) is per sample and independent for the map and the crops.

Every variant emits a learned *null token* first, always valid: cross-attention then never
sees an all-masked row, a sample with its crops dropped attends to the null token alone, and
the variants without crop tokens drive the same UNet (same size, same attention layers), so
the ablation changes only the conditioning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from histosynth.diffusion.inputs import CropBatch
from histosynth.registry import Registry

__all__ = ["CONDITIONINGS", "Conditioning", "Conditions"]

CONDITIONINGS: Registry[type] = Registry("conditioning")
CONDITIONINGS.add("map", "histosynth.diffusion.conditioning.map:MapConditioning",
                  help="semantic map only (the paper's baseline)")  # fmt: skip
CONDITIONINGS.add("map+crops-spatial", "histosynth.diffusion.conditioning.spatial:SpatialCropConditioning",
                  help="map + crops pasted in place, 1x1-conv mixed (the paper's model)")  # fmt: skip
CONDITIONINGS.add("map+crops-tokens", "histosynth.diffusion.conditioning.tokens:TokenCropConditioning",
                  help="map embedding + class-tagged crop tokens via cross-attention (ours)")  # fmt: skip


@dataclass
class Conditions:
    """What the UNet receives besides the noisy latent."""

    spatial: torch.Tensor  # (B, spatial_channels, h, w) concatenated with the latent
    tokens: torch.Tensor  # (B, L, D) read by cross-attention
    mask: torch.Tensor  # (B, L) bool, True where a token is real


class Conditioning(nn.Module):
    """Base class: the null token and input checks.

    Parameters
    ----------
    num_classes
        Class ids of the maps lie in ``0 .. num_classes - 1``.
    downsample
        Image pixels per latent pixel (the codec's factor ``f``).
    cross_attention_dim
        Width ``D`` of the tokens.
    """

    spatial_channels: int

    def __init__(self, num_classes: int, downsample: int, cross_attention_dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.downsample = downsample
        self.null_token = nn.Parameter(torch.randn(1, 1, cross_attention_dim) * 0.02)

    def null_tokens(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 1, D)`` null tokens and their ``(B, 1)`` all-True mask."""
        tokens = self.null_token.expand(batch, -1, -1)
        return tokens, torch.ones(batch, 1, dtype=torch.bool, device=tokens.device)

    def check_maps(self, maps: torch.Tensor) -> None:
        if maps.ndim != 3:
            raise ValueError(f"maps must be (B, H, W) class ids, got shape {tuple(maps.shape)}")
        if maps.shape[-1] % self.downsample or maps.shape[-2] % self.downsample:
            raise ValueError(f"map size {tuple(maps.shape[-2:])} is not a multiple of {self.downsample}")
        if maps.numel() and (int(maps.min()) < 0 or int(maps.max()) >= self.num_classes):
            raise ValueError(
                f"map class ids must lie in 0..{self.num_classes - 1}, got {int(maps.min())}..{int(maps.max())}"
            )

    def forward(
        self,
        maps: torch.Tensor,
        crops: CropBatch | None = None,
        drop_map: torch.Tensor | None = None,
        drop_crops: torch.Tensor | None = None,
    ) -> Conditions:
        """Conditions for a batch.

        Parameters
        ----------
        maps
            ``(B, H, W)`` long class ids.
        crops
            Exemplar crops, or ``None`` (no crops: same as dropping them for every sample).
        drop_map, drop_crops
            ``(B,)`` bool: replace this sample's map / crops by the learned "absent" value.
        """
        raise NotImplementedError
