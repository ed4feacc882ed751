"""Conditioning variants, one file each; pick one by name from :data:`CONDITIONINGS`.

=====================  =====================================================================
 name                   wiring
=====================  =====================================================================
 ``map``                the paper's semantic-map-only baseline: one-hot map, area-downsampled
                        and mixed by a 1×1 conv, concatenated with the latent
 ``map+crops-spatial``  the paper's model: per class its mask plus its crop pasted at its own
                        place, downsampled, mixed by a 1×1 conv, concatenated
 ``map+crops-tokens``   ours (default): a learned class embedding of the map encoded to latent
                        resolution and concatenated; each crop encoded to class-tagged tokens
                        that the UNet's cross-attention reads (no positions)
=====================  =====================================================================
"""

from histosynth.diffusion.conditioning.base import CONDITIONINGS, Conditioning, Conditions

__all__ = ["CONDITIONINGS", "Conditioning", "Conditions"]
