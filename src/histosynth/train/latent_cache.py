"""Training latents of a KL codec, encoded once per patch and augmentation, then reused.

A KL codec's encoder is a large convolutional network: encoding each batch again at every step
costs the ``paper`` preset about a quarter of its step time. What training uses of it is, per
sample, the posterior's moments (mean and log-variance) of one patch under one of the 8 square
symmetries, then one draw from that posterior with the sample's own generator. The moments
depend only on (patch, symmetry), so they are kept here, keyed by the dataset row and the
symmetry, and the draw is made from the kept moments exactly as the codec makes it from fresh
ones: the training distribution is unchanged (every epoch still draws a new latent sample), and
the sample's generator advances as it would, so every later draw of the step is the same too.
The encoder sees a patch in another batch than it would have without the cache; convolutions
at other batch sizes round differently (about 1e-6 of the latent scale, the only difference).

Moments stay in memory up to a byte budget (``data.latent_cache_gb``; beyond it, patches are
encoded as before). One cache per process is kept across runs on the same dataset and codec
weights (the demo trains three variants on one dataset), so a patch is encoded at most 8 times
(once per symmetry) per process, however many epochs and runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["LatentCache", "latent_cache"]

_CURRENT: dict[str, LatentCache] = {}  # at most one cache per process: the last one asked for


class LatentCache:
    """Posterior moments of a KL codec per ``(dataset row, symmetry)``, within a byte budget.

    Parameters
    ----------
    codec
        A :class:`~histosynth.diffusion.codec.KLCodec` (anything with ``encode(images)
        .latent_dist``).
    budget_bytes
        Moments kept at most; later ones are encoded each time they are needed.
    """

    def __init__(self, codec: Any, budget_bytes: int) -> None:
        self.codec = codec
        self.budget = int(budget_bytes)
        self.used = 0
        self.store: dict[tuple[int, int], torch.Tensor] = {}
        self.hits = self.misses = 0

    def encode_latents(
        self, images: torch.Tensor, keys: Sequence[tuple[int, int]], generators: list[torch.Generator]
    ) -> torch.Tensor:
        """What ``codec.encode_latents(images, generator=generators)`` returns, reusing moments.

        Parameters
        ----------
        images
            ``(B, 3, S, S)`` in [-1, 1] (only the rows whose moments are not kept are encoded).
        keys
            ``(dataset row, symmetry)`` of each image.
        generators
            One per image: the posterior draw's generator, as the codec would use it.
        """
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        missing = [j for j, key in enumerate(keys) if key not in self.store]
        fresh: dict[int, torch.Tensor] = {}
        if missing:
            moments = self.codec.encode(images[missing].to(self.codec.dtype)).latent_dist.parameters
            for j, m in zip(missing, moments, strict=True):
                fresh[j] = m
                if self.used + m.numel() * m.element_size() <= self.budget:
                    self.store[tuple(keys[j])] = m.to("cpu", copy=True)  # host memory, not the GPU's
                    self.used += m.numel() * m.element_size()
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        device = images.device
        moments = torch.stack(
            [fresh[j] if j in fresh else self.store[tuple(k)].to(device) for j, k in enumerate(keys)]
        )
        raw = DiagonalGaussianDistribution(moments).sample(generators)
        cfg = self.codec.config
        return (raw - (cfg.shift_factor or 0.0)) * cfg.scaling_factor


def _weights_hash(codec: Any) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(codec.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def latent_cache(codec: Any, rows_id: str, image_size: int, budget_gb: float) -> LatentCache | None:
    """This process's cache for (rows, image size, codec weights); ``None`` for codecs without an
    encoder network (pixel and PCA codecs cost nothing to rerun) or a zero budget.

    ``rows_id`` names what the row numbers index: the dataset's id and the split trained on.
    """
    if budget_gb <= 0 or not hasattr(codec, "encoder"):
        return None
    key = f"{rows_id}:{image_size}:{_weights_hash(codec)}"
    if key not in _CURRENT:
        _CURRENT.clear()  # one dataset's moments at a time: the budget is per process
        _CURRENT[key] = LatentCache(codec, int(budget_gb * 2**30))
    cache = _CURRENT[key]
    cache.codec = codec  # the same weights; this run's object (its scale may have been measured)
    return cache
