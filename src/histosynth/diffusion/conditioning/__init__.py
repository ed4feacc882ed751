"""Conditioning variants, one file each; this package's face is their name table.

=====================  ==========  =====================================================================
 name                   short       wiring
=====================  ==========  =====================================================================
 ``map``                map         the paper's semantic-map-only baseline: one-hot map, area-downsampled
                                    and mixed by a 1×1 conv, concatenated with the latent
 ``map+crops-spatial``  spatial     the paper's model: per class its mask plus its crop pasted at its own
                                    place, downsampled, mixed by a 1×1 conv, concatenated
 ``map+crops-tokens``   tokens      ours (default): a learned class embedding of the map encoded to latent
                                    resolution and concatenated; each crop encoded to class-tagged tokens
                                    that the UNet's cross-attention reads (no positions)
=====================  ==========  =====================================================================

:data:`CONDITIONINGS` names the variants without importing them (or torch), so the command
line reads its choices from it. What a variant needs (crops, their positions, a backbone
preset's widths) it says on its class (:class:`~histosynth.diffusion.conditioning.base.Conditioning`,
built by name with :func:`~histosynth.diffusion.conditioning.base.make_conditioning`); no code
outside this table compares variant names.

>>> from histosynth.diffusion.conditioning import CONDITIONINGS, SHORT_NAMES
>>> CONDITIONINGS.names()
['map', 'map+crops-spatial', 'map+crops-tokens']
>>> SHORT_NAMES["tokens"]
'map+crops-tokens'
"""

from __future__ import annotations

from typing import Any

from histosynth.registry import Registry

__all__ = ["CONDITIONINGS", "SHORT_NAMES"]

CONDITIONINGS: Registry[Any] = Registry("conditioning")
SHORT_NAMES: dict[str, str] = {}  # short name (a folder, a table column) → variant name


def _variant(name: str, short: str, where: str, help: str) -> None:
    CONDITIONINGS.add(name, f"histosynth.diffusion.conditioning.{where}", help=help)
    SHORT_NAMES[short] = name


_variant("map", "map", "map:MapConditioning", "semantic map only (the paper's baseline)")
_variant("map+crops-spatial", "spatial", "spatial:SpatialCropConditioning",
         "map + crops pasted in place, 1x1-conv mixed (the paper's model)")  # fmt: skip
_variant("map+crops-tokens", "tokens", "tokens:TokenCropConditioning",
         "map embedding + class-tagged crop tokens via cross-attention (ours)")  # fmt: skip
