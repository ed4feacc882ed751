"""What every conditioning variant is and returns, and how one is built by name.

A variant turns ``(maps, crops, drop_map, drop_crops)`` into two things for the UNet:
channels concatenated with the noisy latent (``spatial``), and tokens its cross-attention
reads (``tokens`` with a validity ``mask``). Dropping (for classifier-free guidance, trained
by random dropout) is per sample and independent for the map and the crops.

Every variant emits a learned *null token* first, always valid: cross-attention then never
sees an all-masked row, a sample with its crops dropped attends to the null token alone, and
the variants without crop tokens drive the same UNet (same size, same attention layers), so
the ablation changes only the conditioning.

Each variant says on its class what it needs, so the trainer, the sampler and the denoiser ask
the class instead of comparing names: :attr:`Conditioning.uses_crops`,
:attr:`Conditioning.reads_positions` and :attr:`Conditioning.preset_widths`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from histosynth.diffusion.conditioning import CONDITIONINGS
from histosynth.diffusion.inputs import CropBatch

__all__ = ["Conditioning", "Conditions", "make_conditioning"]


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

    Attributes
    ----------
    uses_crops
        The variant reads exemplar crops; without it, crops are neither prepared nor picked.
    reads_positions
        The variant needs each crop's place in the image (``CropBatch.positions``): crops are
        cut at their place, not centred.
    preset_widths
        Constructor arguments a backbone preset's ``conditioning`` table (or ``build_denoiser``'s
        overrides) may set: encoder widths, ``crop_stats``; the others keep the class's defaults.
    """

    uses_crops: ClassVar[bool] = False
    reads_positions: ClassVar[bool] = False
    preset_widths: ClassVar[tuple[str, ...]] = ()
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


def make_conditioning(
    name: str, num_classes: int, downsample: int, cross_attention_dim: int, **kwargs: Any
) -> Conditioning:
    """The variant ``name`` of :data:`~histosynth.diffusion.conditioning.CONDITIONINGS`.

    Raises
    ------
    ValueError
        When ``kwargs`` holds an argument the variant does not take.
    """
    cls = CONDITIONINGS.get(name)
    takes = [p for p in inspect.signature(cls).parameters if p not in ("num_classes", "downsample",
                                                                       "cross_attention_dim")]  # fmt: skip
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        raise ValueError(
            f"conditioning {name!r} takes no argument {unknown[0]!r}; it takes {takes or 'none besides the sizes'}"
        )
    return cls(
        num_classes=num_classes, downsample=downsample, cross_attention_dim=cross_attention_dim, **kwargs
    )
