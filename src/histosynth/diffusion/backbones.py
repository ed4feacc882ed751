"""Backbone presets, named for where they run; the CLI's ``--backbone`` choices come from here.

Each preset sets the UNet (a diffusers ``UNet2DConditionModel``) and the widths of the
conditioning encoders. The UNet's spatial size follows from the image size and the codec
(``image_size / codec.downsample``), so a preset works with any codec; the training presets
(:mod:`histosynth.train.config`) pair each one with an image size and a codec.

==========  ======  =====================  ======  ====  ==========================
 preset      image   UNet channels          blocks  attn  notes
==========  ======  =====================  ======  ====  ==========================
 test        any     16, 32                  1      2     unit tests, seconds
 cpu-tiny    64      48, 96, 128, 128        1      3,4   learns in minutes on 2 cores
 cpu-small   128     64, 128, 192, 256       2      3,4   a many-core CPU, overnight
 paper       256     128, 512, 1024          2      2,3   the paper's UNet (128 × 1/4/8)
 large       256     192, 384, 768, 768      2      2-4   a bigger GPU model
==========  ======  =====================  ======  ====  ==========================

"attn" lists the levels (1 = full latent resolution) whose blocks carry self- and
cross-attention (a ``Transformer2DModel``); heads are ``channels // head_dim``.

The first level must be wider than the latent has channels: every path through the UNet
starts with its ``conv_in`` to that width, so a narrower one cannot even represent the
noise it must predict (the identity-p2 codec's 12 channels need more than 12; an earlier
cpu-tiny on 48-channel identity-p4 latents needed 96). :func:`~histosynth.diffusion.denoiser.build_denoiser`
refuses a narrower one, except for ``test``, which exercises the mechanics and need not learn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BACKBONES", "unet_kwargs"]

BACKBONES: dict[str, dict[str, Any]] = {
    # Runs in the unit tests: a few thousand parameters per block, seconds per run.
    "test": {
        "block_out_channels": (16, 32), "layers_per_block": 1, "attention": (False, True),
        "head_dim": 16, "cross_attention_dim": 32, "norm_num_groups": 8,
        "conditioning": {"map_embed_dim": 8, "map_channels": 4, "crop_widths": (8, 16), "crop_grid": 2},
    },
    # Four levels on 2×2 space-to-depth latents (32, 16, 8, 4 px at 64 px images): the finest
    # level convolves at half the image resolution, where nuclei and fibres are drawn.
    "cpu-tiny": {
        "block_out_channels": (48, 96, 128, 128), "layers_per_block": 1, "attention": (False, False, True, True),
        "head_dim": 32, "cross_attention_dim": 128, "norm_num_groups": 8,
        "conditioning": {"map_embed_dim": 16, "map_channels": 8, "crop_widths": (16, 32, 64), "crop_grid": 2},
    },
    "cpu-small": {
        "block_out_channels": (64, 128, 192, 256), "layers_per_block": 2, "attention": (False, False, True, True),
        "head_dim": 32, "cross_attention_dim": 256, "norm_num_groups": 32,
        "conditioning": {"map_embed_dim": 32, "map_channels": 8, "crop_widths": (32, 64, 128), "crop_grid": 2},
    },
    # The paper's UNet (*early code*): 128 base channels, multipliers 1/4/8, 2 residual blocks.
    "paper": {
        "block_out_channels": (128, 512, 1024), "layers_per_block": 2, "attention": (False, True, True),
        "head_dim": 32, "cross_attention_dim": 512, "norm_num_groups": 32,
        "conditioning": {"map_embed_dim": 64, "map_channels": 16, "crop_widths": (64, 128, 256, 256),
                         "crop_grid": 3},
    },
    "large": {
        "block_out_channels": (192, 384, 768, 768), "layers_per_block": 2,
        "attention": (False, True, True, True), "head_dim": 64, "cross_attention_dim": 768,
        "norm_num_groups": 32,
        "conditioning": {"map_embed_dim": 64, "map_channels": 16, "crop_widths": (64, 128, 256, 512),
                         "crop_grid": 3},
    },
}  # fmt: skip


def unet_kwargs(backbone: str | dict[str, Any]) -> dict[str, Any]:
    """``UNet2DConditionModel`` arguments (all but sizes and channels in/out) of a preset.

    Parameters
    ----------
    backbone
        A preset name or a preset-shaped dict.
    """
    if isinstance(backbone, str):
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose from {list(BACKBONES)}")
        backbone = BACKBONES[backbone]
    chans = tuple(backbone["block_out_channels"])
    attn = tuple(backbone["attention"])
    if len(attn) != len(chans):
        raise ValueError("a backbone needs one attention flag per level")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
    return {
        "block_out_channels": chans,
        "layers_per_block": int(backbone["layers_per_block"]),
        "down_block_types": down,
        "up_block_types": up,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        # diffusers' `attention_head_dim` here is the number of heads per block (a legacy name).
        "attention_head_dim": tuple(max(1, c // int(backbone["head_dim"])) for c in chans),
        "cross_attention_dim": int(backbone["cross_attention_dim"]),
        "norm_num_groups": int(backbone["norm_num_groups"]),
    }
