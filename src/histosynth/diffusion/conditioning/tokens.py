"""``map+crops-tokens`` (ours, the default): map channels plus position-free crop tokens.

- Map: a learned class embedding (one extra class for "map absent") encoded to latent
  resolution: a conv with kernel = stride = the codec factor over the one-hot map (a
  patchify; for a 1-pixel kernel it is exactly an embedding lookup, and for larger ones an
  embedding per sub-pixel position, which keeps sub-latent boundaries), then a 3×3 conv;
  concatenated with the noisy latent. (A conv on one-hot input is much faster to
  differentiate on a CPU than an embedding's scatter-add.)
- Crops: each crop, at its own pixel scale on the canvas, goes through a small CNN (a
  4×4-patchify stem, then stride-2 stages), is average-pooled to a ``grid × grid`` of tokens,
  projected to the cross-attention width,
  and tagged with a learned embedding of its class (plus a per-cell position embedding); the
  UNet's cross-attention reads these tokens. Exemplars carry no position in the image, so
  they may come from any image, several per class. A sample with dropped crops sees only the
  null token (see :mod:`~histosynth.diffusion.conditioning.base`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from histosynth.diffusion.conditioning.base import Conditioning, Conditions
from histosynth.diffusion.conditioning.statistics import STAT_CHANNELS, append_crop_statistics
from histosynth.diffusion.inputs import CropBatch

__all__ = ["CropEncoder", "TokenCropConditioning"]


class CropEncoder(nn.Module):
    """Crops ``(M, 3, S, S)`` → tokens ``(M, grid², D)``, tagged with their class.

    Parameters
    ----------
    num_classes
        Classes the tags distinguish.
    dim
        Token width ``D`` (the UNet's cross-attention width).
    widths
        Channels of the stem (a 4×4 patchify) and of the stride-2 3×3 stages after it.
    grid
        Tokens per crop are ``grid × grid`` average-pooled cells.
    """

    def __init__(
        self, num_classes: int, dim: int, widths: tuple[int, ...] = (32, 64, 128), grid: int = 2
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, w in enumerate(widths):
            conv = nn.Conv2d(cin, w, 4, stride=4) if i == 0 else nn.Conv2d(cin, w, 3, stride=2, padding=1)
            layers += [conv, nn.GroupNorm(min(8, w), w), nn.SiLU()]
            cin = w
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(grid))
        self.proj = nn.Linear(cin, dim)
        self.pos = nn.Parameter(torch.randn(grid * grid, dim) * 0.02)
        self.tag = nn.Embedding(num_classes, dim)
        self.norm = nn.LayerNorm(dim)
        self.tokens_per_crop = grid * grid

    def forward(self, pixels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        feats = self.cnn(pixels)  # (M, w, g, g)
        tokens = self.proj(feats.flatten(2).transpose(1, 2))  # (M, g², D)
        return self.norm(tokens + self.pos + self.tag(classes)[:, None])  # (M, g², D)


class TokenCropConditioning(Conditioning):
    """Map embedding concatenated with the latent; crops as class-tagged cross-attention tokens.

    Parameters
    ----------
    num_classes, downsample, cross_attention_dim
        See :class:`Conditioning`.
    map_embed_dim
        Width of the per-pixel class embedding.
    map_channels
        Channels concatenated with the latent.
    crop_widths, crop_grid
        See :class:`CropEncoder`.
    crop_stats
        Also paint each class's crop colour statistics over its region, as channels beside the
        map's (position-free: :mod:`~histosynth.diffusion.conditioning.statistics`).
    """

    uses_crops = True  # as position-free tokens
    preset_widths = ("map_embed_dim", "map_channels", "crop_widths", "crop_grid", "crop_stats")

    def __init__(
        self,
        num_classes: int,
        downsample: int,
        cross_attention_dim: int,
        map_embed_dim: int = 32,
        map_channels: int = 8,
        crop_widths: tuple[int, ...] = (32, 64, 128),
        crop_grid: int = 2,
        crop_stats: bool = False,
    ) -> None:
        super().__init__(num_classes, downsample, cross_attention_dim)
        self.crop_stats = bool(crop_stats)
        self.spatial_channels = map_channels + (STAT_CHANNELS if self.crop_stats else 0)
        f = downsample
        self.map_encoder = nn.Sequential(
            nn.Conv2d(num_classes + 1, map_embed_dim, f, stride=f),  # class num_classes: map absent
            nn.SiLU(),
            nn.Conv2d(map_embed_dim, map_channels, 3, padding=1),
        )
        self.crop_encoder = CropEncoder(num_classes, cross_attention_dim, tuple(crop_widths), crop_grid)

    def forward(
        self,
        maps: torch.Tensor,
        crops: CropBatch | None = None,
        drop_map: torch.Tensor | None = None,
        drop_crops: torch.Tensor | None = None,
    ) -> Conditions:
        self.check_maps(maps)
        B = maps.shape[0]
        if drop_map is not None:
            maps = maps.masked_fill(drop_map.view(-1, 1, 1), self.num_classes)
        one_hot = F.one_hot(maps, self.num_classes + 1).permute(0, 3, 1, 2)  # (B, K+1, H, W)
        spatial = self.map_encoder(one_hot.to(self.null_token.dtype))  # (B, map_channels, h, w)
        if self.crop_stats:  # (B, map_channels + 7, h, w)
            spatial = append_crop_statistics(
                spatial, maps, crops, self.num_classes, self.downsample, drop_map, drop_crops
            )
        null, null_mask = self.null_tokens(B)  # (B, 1, D), (B, 1)
        if crops is None:
            return Conditions(spatial, null, null_mask)
        crops = crops.to(maps.device, spatial.dtype)
        keep = crops.kept(drop_crops)  # (B, N)
        N, T = keep.shape[1], self.crop_encoder.tokens_per_crop
        flat_keep = keep.flatten()
        # Encode only real, kept crops; with none, encode one and add it times zero so every
        # parameter stays in the graph (DistributedDataParallel needs that).
        idx = (
            flat_keep.nonzero().squeeze(1)
            if bool(flat_keep.any())
            else torch.zeros(1, dtype=torch.long, device=keep.device)
        )
        enc = self.crop_encoder(crops.pixels.flatten(0, 1)[idx], crops.classes.flatten()[idx])  # (M, T, D)
        if not bool(flat_keep.any()):
            return Conditions(spatial, null + 0 * enc.sum(), null_mask)
        tokens = enc.new_zeros(B * N, T, enc.shape[-1]).index_copy(0, idx, enc)  # (B*N, T, D)
        tokens = tokens.view(B, N * T, -1)  # (B, N*T, D)
        mask = keep.repeat_interleave(T, dim=1)  # (B, N*T)
        return Conditions(spatial, torch.cat([null, tokens], 1), torch.cat([null_mask, mask], 1))
