"""The denoiser: a conditioning variant feeding a backbone (a UNet or a DiT).

Shapes (``f`` = codec factor, ``C`` = latent channels, ``c`` = conditioning channels)::

    maps (B, H, W) ─┐
    crops (B, N, …) ┴─ conditioning ─┬─ spatial (B, c, H/f, W/f) ─┐
                                     └─ tokens (B, L, D), mask    │
    x_t (B, C, H/f, W/f) ─────────────────── concat (B, C+c, …) ──┴─ backbone ─→ (B, C, H/f, W/f)

The seam is :meth:`Denoiser.backbone`: ``(x (B, C+c, h, w), timestep (B,), tokens (B, L, D),
mask (B, L)) → (B, C, h, w)``. Each family of :data:`~histosynth.diffusion.backbones.FAMILIES`
is one subclass: :class:`HistoDenoiser` wraps a diffusers ``UNet2DConditionModel`` (its name
and config predate the seam and are kept, so saved UNet models load and train as before),
:class:`DiTDenoiser` a :class:`~histosynth.diffusion.dit.DiT`. The output is ε or v, as the
schedule says; the schedule and loss live outside (edm2's split). Constructor arguments are
the config: ``save_pretrained`` writes ``config.json`` (its ``_class_name`` names the family)
and ``diffusion_pytorch_model.safetensors``, ``from_pretrained`` rebuilds it from them alone;
:func:`denoiser_class` says which class a saved folder needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config

from histosynth.data.crops import canvas_size
from histosynth.diffusion.backbones import BACKBONES, FAMILIES, dit_kwargs, family_of, unet_kwargs
from histosynth.diffusion.conditioning import CONDITIONINGS
from histosynth.diffusion.conditioning.base import Conditions, make_conditioning
from histosynth.diffusion.dit import DiT
from histosynth.diffusion.inputs import CropBatch

__all__ = ["DiTDenoiser", "Denoiser", "HistoDenoiser", "build_denoiser", "denoiser_class"]


class Denoiser(ModelMixin, ConfigMixin):
    """What every backbone family shares: the conditioning, its inputs, the concatenation.

    A family subclass builds ``self.cond`` (:func:`make_conditioning`) and its network in its
    constructor, implements :meth:`backbone` and :meth:`from_preset`, and is listed in
    :data:`~histosynth.diffusion.backbones.FAMILIES`.
    """

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
        return self.backbone(x, timestep, c.tokens.to(sample.dtype), c.mask)  # (B, C, h, w)

    def backbone(
        self, x: torch.Tensor, timestep: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The family's network: ``x (B, C+c, h, w)``, ``timestep (B,)``, ``tokens (B, L, D)``,
        ``mask (B, L)`` → ``(B, C, h, w)``."""
        raise NotImplementedError

    @classmethod
    def from_preset(
        cls, name: str, latent_channels: int, overrides: dict[str, Any] | None = None, **config: Any
    ) -> Denoiser:
        """A fresh denoiser of this family from the preset ``name`` of :data:`~histosynth.diffusion.backbones.BACKBONES`.

        ``config`` holds the family-independent arguments (conditioning, sizes, crops);
        ``overrides`` replaces entries of the preset's ``conditioning`` table (e.g. ``crop_stats``).
        """
        raise NotImplementedError


def _refuse_narrow(name: str, preset: dict[str, Any], width: int, carries: int, what: str) -> None:
    """Refuse a network whose ``width`` cannot hold the ``carries`` latent values it predicts."""
    if width <= carries and not preset.get("mechanics_only"):  # a tests' preset need not learn
        raise ValueError(
            f"backbone {name!r} starts with {width} channels, not more than the {carries} {what}: it could not "
            "represent the noise it predicts; use a wider backbone or a codec with fewer channels "
            "(e.g. identity-p2, or a KL codec)"
        )


def _conditioning_kwargs(
    conditioning: str, preset: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The preset's arguments for ``conditioning``, then ``overrides`` (both only where it takes them)."""
    widths = CONDITIONINGS.get(conditioning).preset_widths
    return {k: v for k, v in {**preset["conditioning"], **(overrides or {})}.items() if k in widths}


class HistoDenoiser(Denoiser):
    """Map- and crop-conditioned UNet denoiser (the ``unet`` family).

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
        # The conditioning is built before the UNet: the order the weights are drawn in.
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

    def backbone(
        self, x: torch.Tensor, timestep: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        return self.unet(x, timestep, encoder_hidden_states=tokens, encoder_attention_mask=mask).sample

    @classmethod
    def from_preset(
        cls, name: str, latent_channels: int, overrides: dict[str, Any] | None = None, **config: Any
    ) -> HistoDenoiser:
        preset = BACKBONES[name]
        _refuse_narrow(name, preset, preset["block_out_channels"][0], latent_channels, "latent channels")
        return cls(
            latent_channels=latent_channels,
            unet_args=unet_kwargs(preset),
            conditioning_kwargs=_conditioning_kwargs(config["conditioning"], preset, overrides),
            **config,
        )


class DiTDenoiser(Denoiser):
    """Map- and crop-conditioned transformer denoiser (the ``dit`` family).

    The map's channels are concatenated with the latent before the patch embedding; the crop
    tokens are read by every block's cross-attention; the timestep modulates every block
    (adaLN-zero). See :mod:`histosynth.diffusion.dit`.

    Parameters
    ----------
    conditioning, num_classes, image_size, latent_channels, downsample, crop_canvas, max_crops, conditioning_kwargs
        As :class:`HistoDenoiser`.
    dit_args
        Arguments of :class:`~histosynth.diffusion.dit.DiT` besides channels in/out
        (see :func:`~histosynth.diffusion.backbones.dit_kwargs`).
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
        dit_args: dict[str, Any] | None = None,
        conditioning_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        dit = dict(dit_args or dit_kwargs("dit-tiny"))
        side = image_size // downsample
        if image_size % downsample or side % dit["patch_size"]:
            raise ValueError(
                f"denoiser.py: image_size {image_size} is not a multiple of the codec factor {downsample} "
                f"times the DiT patch {dit['patch_size']}"
            )
        self.cond = make_conditioning(
            conditioning,
            num_classes=num_classes,
            downsample=downsample,
            cross_attention_dim=dit["cross_attention_dim"],
            **(conditioning_kwargs or {}),
        )
        self.dit = DiT(latent_channels + self.cond.spatial_channels, latent_channels, **dit)

    def backbone(
        self, x: torch.Tensor, timestep: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        return self.dit(x, timestep, tokens, mask)

    @classmethod
    def from_preset(
        cls, name: str, latent_channels: int, overrides: dict[str, Any] | None = None, **config: Any
    ) -> DiTDenoiser:
        preset = BACKBONES[name]
        carries = preset["patch_size"] ** 2 * latent_channels  # latent values per token
        _refuse_narrow(name, preset, preset["hidden_size"], carries, "latent values of a patch")
        return cls(
            latent_channels=latent_channels,
            dit_args=dit_kwargs(preset),
            conditioning_kwargs=_conditioning_kwargs(config["conditioning"], preset, overrides),
            **config,
        )


def build_denoiser(
    backbone: str,
    conditioning: str,
    num_classes: int,
    image_size: int,
    latent_channels: int,
    downsample: int,
    max_crops: int = 8,
    crop_stats: bool | None = None,
) -> Denoiser:
    """A fresh denoiser from a backbone preset in :data:`~histosynth.diffusion.backbones.BACKBONES`.

    The preset's family (:data:`~histosynth.diffusion.backbones.FAMILIES`) picks the class.
    ``crop_stats``: paint crop colour statistics over their regions (variants that read crops
    only; ``None``: the preset's choice, see :mod:`~histosynth.diffusion.conditioning.statistics`).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose from {list(BACKBONES)}")
    overrides = {} if crop_stats is None else {"crop_stats": bool(crop_stats)}
    return FAMILIES.get(family_of(backbone)).from_preset(
        backbone, latent_channels, overrides, conditioning=conditioning, num_classes=num_classes, image_size=image_size,
        downsample=downsample, max_crops=max_crops,
    )  # fmt: skip


def denoiser_class(folder: str | Path) -> type[Denoiser]:
    """The family class a saved denoiser folder needs (its ``config.json`` names it).

    Raises
    ------
    ValueError
        When the config names no class of :data:`~histosynth.diffusion.backbones.FAMILIES`.
    """
    path = Path(folder) / "config.json"
    name = json.loads(path.read_text(encoding="utf-8")).get("_class_name")
    classes = {FAMILIES.get(f).__name__: FAMILIES.get(f) for f in FAMILIES.names()}
    if name not in classes:
        raise ValueError(f"{path}: names the denoiser class {name!r}; known: {sorted(classes)}")
    return classes[name]
