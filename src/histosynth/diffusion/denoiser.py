"""The denoiser: a conditioning variant feeding a diffusers ``UNet2DConditionModel``.

Shapes (``f`` = codec factor, ``C`` = latent channels, ``c`` = conditioning channels)::

    maps (B, H, W) ─┐
    crops (B, N, …) ┴─ conditioning ─┬─ spatial (B, c, H/f, W/f) ─┐
                                     └─ tokens (B, L, D), mask    │
    x_t (B, C, H/f, W/f) ─────────────────── concat (B, C+c, …) ──┴─ UNet ─→ (B, C, H/f, W/f)

The output is ε or v, as the schedule says; the schedule and loss live outside (edm2's split).
Constructor arguments are the config: ``save_pretrained`` writes ``config.json`` and
``diffusion_pytorch_model.safetensors``, ``from_pretrained`` rebuilds it from them alone.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config

from histosynth.data.crops import canvas_size
from histosynth.diffusion.backbones import BACKBONES, unet_kwargs
from histosynth.diffusion.conditioning import CONDITIONINGS
from histosynth.diffusion.conditioning.base import Conditions, make_conditioning
from histosynth.diffusion.inputs import CropBatch

__all__ = ["HistoDenoiser", "build_denoiser"]


class HistoDenoiser(ModelMixin, ConfigMixin):
    """Map- and crop-conditioned UNet denoiser.

    Parameters
    ----------
    conditioning
        A name in :data:`~histosynth.diffusion.conditioning.CONDITIONINGS`.
    num_classes
        Number of map class ids (``0 .. num_classes - 1``).
    image_size
        Pixel side of the images (and maps) the model makes.
    latent_channels
        Channels of the codec's latents.
    downsample
        The codec's factor ``f``: latents are ``image_size / f`` wide.
    crop_canvas
        Side of the canvas crops are fitted to (default: the largest crop side for the image
        size, 200 px at 256 px).
    max_crops
        Crops kept per sample at most (token budget: ``1 + max_crops · grid²``).
    unet_args
        Arguments of ``UNet2DConditionModel`` besides sizes and channels in/out
        (see :func:`~histosynth.diffusion.backbones.unet_kwargs`).
    conditioning_kwargs
        Arguments of the conditioning variant (encoder widths).
    """

    @register_to_config
    def __init__(
        self,
        conditioning: str = "map+crops-tokens",
        num_classes: int = 2,
        image_size: int = 64,
        latent_channels: int = 3,
        downsample: int = 1,
        crop_canvas: int | None = None,
        max_crops: int = 8,
        unet_args: dict[str, Any] | None = None,
        conditioning_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if image_size % downsample:
            raise ValueError(f"image_size {image_size} is not a multiple of the codec factor {downsample}")
        unet = dict(unet_args or unet_kwargs("cpu-tiny"))
        self.cond = make_conditioning(
            conditioning,
            num_classes=num_classes,
            downsample=downsample,
            cross_attention_dim=unet["cross_attention_dim"],
            **(conditioning_kwargs or {}),
        )
        self.unet = UNet2DConditionModel(
            sample_size=image_size // downsample,
            in_channels=latent_channels + self.cond.spatial_channels,
            out_channels=latent_channels,
            **unet,
        )

    @property
    def canvas(self) -> int:
        """Side of the crop canvas."""
        return self.config.crop_canvas or canvas_size(self.config.image_size)

    def conditions(
        self,
        maps: torch.Tensor,
        crops: CropBatch | None = None,
        drop_map: torch.Tensor | None = None,
        drop_crops: torch.Tensor | None = None,
    ) -> Conditions:
        """The conditioning variant's output (see :class:`~histosynth.diffusion.conditioning.Conditions`)."""
        return self.cond(maps, crops, drop_map, drop_crops)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        maps: torch.Tensor,
        crops: CropBatch | None = None,
        drop_map: torch.Tensor | None = None,
        drop_crops: torch.Tensor | None = None,
        conditions: Conditions | None = None,
    ) -> torch.Tensor:
        """Predict ε (or v) for noisy latents.

        Parameters
        ----------
        sample
            Noisy latents ``(B, C, h, w)``.
        timestep
            ``(B,)`` or scalar integer timesteps.
        maps
            ``(B, H, W)`` long class ids (``H = h · f``).
        crops
            Exemplar crops (see :mod:`histosynth.diffusion.inputs`), or ``None``.
        drop_map, drop_crops
            ``(B,)`` bool: treat this sample's map / crops as absent (classifier-free guidance).
        conditions
            Precomputed :meth:`conditions` (the sampler reuses them across steps).
        """
        c = conditions if conditions is not None else self.conditions(maps, crops, drop_map, drop_crops)
        x = torch.cat([sample, c.spatial.to(sample.dtype)], dim=1)  # (B, C + c, h, w)
        if not torch.is_tensor(timestep) or timestep.ndim == 0:
            timestep = torch.full((sample.shape[0],), int(timestep), device=sample.device)
        out = self.unet(
            x, timestep, encoder_hidden_states=c.tokens.to(sample.dtype), encoder_attention_mask=c.mask
        )
        return out.sample  # (B, C, h, w)


def build_denoiser(
    backbone: str,
    conditioning: str,
    num_classes: int,
    image_size: int,
    latent_channels: int,
    downsample: int,
    max_crops: int = 8,
) -> HistoDenoiser:
    """A fresh denoiser from a backbone preset in :data:`~histosynth.diffusion.backbones.BACKBONES`."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose from {list(BACKBONES)}")
    width = BACKBONES[backbone]["block_out_channels"][0]
    if width <= latent_channels and backbone != "test":  # `test` checks mechanics, it need not learn
        raise ValueError(
            f"backbone {backbone!r} starts with {width} channels, not more than the codec's {latent_channels} "
            "latent channels: it could not represent the noise it predicts; use a wider backbone or a codec "
            "with fewer channels (e.g. identity-p2, or a KL codec)"
        )
    widths = CONDITIONINGS.get(conditioning).preset_widths
    cond_kwargs = {k: v for k, v in BACKBONES[backbone]["conditioning"].items() if k in widths}
    return HistoDenoiser(
        conditioning=conditioning,
        num_classes=num_classes,
        image_size=image_size,
        latent_channels=latent_channels,
        downsample=downsample,
        max_crops=max_crops,
        unet_args=unet_kwargs(backbone),
        conditioning_kwargs=cond_kwargs,
    )
