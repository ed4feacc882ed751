"""Backbone presets and families, named for where they run; the CLI's ``--backbone`` choices come from here.

A backbone is the network between the conditioning and the prediction: it takes the noisy
latent concatenated with the conditioning's spatial channels ``(B, C + c, h, w)``, the
timestep ``(B,)`` and the crop tokens ``(B, L, D)`` with their mask ``(B, L)``, and returns
ε or v ``(B, C, h, w)``. Each preset names its *family* (:data:`FAMILIES`): ``unet`` (a
diffusers ``UNet2DConditionModel``, :class:`~histosynth.diffusion.denoiser.HistoDenoiser`) or
``dit`` (a DiT-style transformer, :class:`~histosynth.diffusion.denoiser.DiTDenoiser`). The
latent's spatial size follows from the image size and the codec (``image_size / codec.downsample``),
so a preset works with any codec; the training presets (:mod:`histosynth.train.config`) pair
each one with an image size and a codec.

UNet presets:

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

DiT presets (Peebles & Xie 2023; cross-attention to the crop tokens as PixArt-α; a 3×3
output convolution as U-ViT's, started as the identity):

==========  ======  =====  ======  =====  =====  ==========================================
 preset      image   patch  width   depth  heads  notes
==========  ======  =====  ======  =====  =====  ==========================================
 dit-test    any     2      32      2      2      unit tests, seconds
 dit-tiny    64      2      192     6      3      2 cores: 1.1-1.2× cpu-tiny's step time
 dit-small   128     4      384     12     6      DiT-S/4: cpu-small's FLOPs
 dit-paper   256     2      1024    16     16     DiT-L/2's width; the paper UNet's parameters
==========  ======  =====  ======  =====  =====  ==========================================

Tokens per image are ``(h / patch)²``: 256 for dit-tiny and dit-small on identity-p2 latents
(12×32×32 at 64 px, 12×64×64 at 128 px), 1,024 for dit-paper on KL-f4 latents (3×64×64 at
256 px), as DiT-XL/2 at 256 px. Measured in ``docs/model.md`` ("DiT backbone").

The network must be wider than the latent it predicts: every path through a UNet starts with
its ``conv_in`` to the first level's width, and a DiT's tokens carry ``patch² · C`` latent
values each, so a narrower one cannot even represent the noise it must predict (the
identity-p2 codec's 12 channels need more than 12; an earlier cpu-tiny on 48-channel
identity-p4 latents needed 96). :func:`~histosynth.diffusion.denoiser.build_denoiser` refuses a
narrower one, except for presets marked ``mechanics_only`` (``test``, ``dit-test``), which
exercise the mechanics and need not learn.
"""

from __future__ import annotations

from typing import Any

from histosynth.registry import Registry

__all__ = ["BACKBONES", "FAMILIES", "dit_kwargs", "family_of", "unet_kwargs"]

# Family name → the denoiser class that wires a conditioning variant to that backbone (lazy:
# listing names imports neither torch nor diffusers).
FAMILIES: Registry[Any] = Registry("backbone family")
FAMILIES.add("unet", "histosynth.diffusion.denoiser:HistoDenoiser", help="diffusers UNet2DConditionModel")
FAMILIES.add("dit", "histosynth.diffusion.denoiser:DiTDenoiser", help="DiT: adaLN-zero, cross-attention")

BACKBONES: dict[str, dict[str, Any]] = {
    # ---------------------------------------------------------------- UNet (diffusers)
    # Runs in the unit tests: a few thousand parameters per block, seconds per run.
    "test": {
        "family": "unet", "mechanics_only": True,
        "block_out_channels": (16, 32), "layers_per_block": 1, "attention": (False, True),
        "head_dim": 16, "cross_attention_dim": 32, "norm_num_groups": 8,
        "conditioning": {"map_embed_dim": 8, "map_channels": 4, "crop_widths": (8, 16), "crop_grid": 2},
    },
    # Four levels on 2×2 space-to-depth latents (32, 16, 8, 4 px at 64 px images): the finest
    # level convolves at half the image resolution, where nuclei and fibres are drawn.
    "cpu-tiny": {
        "family": "unet",
        "block_out_channels": (48, 96, 128, 128), "layers_per_block": 1, "attention": (False, False, True, True),
        "head_dim": 32, "cross_attention_dim": 128, "norm_num_groups": 8,
        "conditioning": {"map_embed_dim": 16, "map_channels": 8, "crop_widths": (16, 32, 64), "crop_grid": 2},
    },
    "cpu-small": {
        "family": "unet",
        "block_out_channels": (64, 128, 192, 256), "layers_per_block": 2, "attention": (False, False, True, True),
        "head_dim": 32, "cross_attention_dim": 256, "norm_num_groups": 32,
        "conditioning": {"map_embed_dim": 32, "map_channels": 8, "crop_widths": (32, 64, 128), "crop_grid": 2},
    },
    # The paper's UNet (*early code*): 128 base channels, multipliers 1/4/8, 2 residual blocks.
    "paper": {
        "family": "unet",
        "block_out_channels": (128, 512, 1024), "layers_per_block": 2, "attention": (False, True, True),
        "head_dim": 32, "cross_attention_dim": 512, "norm_num_groups": 32,
        "conditioning": {"map_embed_dim": 64, "map_channels": 16, "crop_widths": (64, 128, 256, 256),
                         "crop_grid": 3},
    },
    "large": {
        "family": "unet",
        "block_out_channels": (192, 384, 768, 768), "layers_per_block": 2,
        "attention": (False, True, True, True), "head_dim": 64, "cross_attention_dim": 768,
        "norm_num_groups": 32,
        "conditioning": {"map_embed_dim": 64, "map_channels": 16, "crop_widths": (64, 128, 256, 512),
                         "crop_grid": 3},
    },
    # ---------------------------------------------------------------- DiT (histosynth.diffusion.dit)
    # `cross_attention_dim` is the crop tokens' width D (the conditioning encoder's output); each
    # block projects them to its own width, as PixArt-α's kv projection does for T5 features.
    "dit-test": {
        "family": "dit", "mechanics_only": True,
        "patch_size": 2, "hidden_size": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0,
        "cross_attention_dim": 32, "final_conv": True,
        "conditioning": {"map_embed_dim": 8, "map_channels": 4, "crop_widths": (8, 16), "crop_grid": 2},
    },
    "dit-tiny": {
        "family": "dit",
        "patch_size": 2, "hidden_size": 192, "depth": 6, "num_heads": 3, "mlp_ratio": 4.0,
        "cross_attention_dim": 128, "final_conv": True,
        "conditioning": {"map_embed_dim": 16, "map_channels": 8, "crop_widths": (16, 32, 64), "crop_grid": 2},
    },
    # DiT-S/4: at 128 px a 4×4 patch keeps dit-tiny's 256 tokens per image (a 2×2 one, 1,024
    # tokens, cost 4× cpu-small's FLOPs and 5.5× its CPU step time).
    "dit-small": {
        "family": "dit",
        "patch_size": 4, "hidden_size": 384, "depth": 12, "num_heads": 6, "mlp_ratio": 4.0,
        "cross_attention_dim": 256, "final_conv": True,
        "conditioning": {"map_embed_dim": 32, "map_channels": 8, "crop_widths": (32, 64, 128), "crop_grid": 2},
    },
    # The paper UNet's parameters (357 vs 373 M) at DiT-L/2's width, 1,024 tokens on KL-f4 latents.
    "dit-paper": {
        "family": "dit",
        "patch_size": 2, "hidden_size": 1024, "depth": 16, "num_heads": 16, "mlp_ratio": 4.0,
        "cross_attention_dim": 512, "final_conv": True,
        "conditioning": {"map_embed_dim": 64, "map_channels": 16, "crop_widths": (64, 128, 256, 256),
                         "crop_grid": 3},
    },
}  # fmt: skip


def _preset(backbone: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(backbone, str):
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose from {list(BACKBONES)}")
        return BACKBONES[backbone]
    return backbone


def family_of(backbone: str | dict[str, Any]) -> str:
    """The family (a name in :data:`FAMILIES`) of a preset name or a preset-shaped dict."""
    return str(_preset(backbone).get("family", "unet"))


def unet_kwargs(backbone: str | dict[str, Any]) -> dict[str, Any]:
    """``UNet2DConditionModel`` arguments (all but sizes and channels in/out) of a preset.

    Parameters
    ----------
    backbone
        A preset name or a preset-shaped dict.
    """
    backbone = _preset(backbone)
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


def dit_kwargs(backbone: str | dict[str, Any]) -> dict[str, Any]:
    """:class:`~histosynth.diffusion.dit.DiT` arguments (all but channels in/out) of a preset.

    Parameters
    ----------
    backbone
        A preset name or a preset-shaped dict.

    Examples
    --------
    >>> dit_kwargs("dit-test")["hidden_size"]
    32
    """
    backbone = _preset(backbone)
    keys = ("patch_size", "hidden_size", "depth", "num_heads", "cross_attention_dim")
    out: dict[str, Any] = {k: int(backbone[k]) for k in keys}
    out["mlp_ratio"] = float(backbone["mlp_ratio"])
    if backbone.get("final_conv"):  # absent from configs saved before the option: a plain DiT
        out["final_conv"] = True
    # Heads split the width; the 2-D sin-cos position code gives a quarter of it to each of
    # sin(row), cos(row), sin(col), cos(col).
    if out["hidden_size"] % out["num_heads"] or out["hidden_size"] % 4:
        raise ValueError("backbones.py: a DiT's width must be a multiple of 4 and of its number of heads")
    return out
