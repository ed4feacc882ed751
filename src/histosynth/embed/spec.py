"""What an encoder is: a registry entry (:class:`EncoderSpec`) and the usual normalisations.

Pure data, imported by the registry (:mod:`~histosynth.embed.encoders`), the weight lookup
(:mod:`~histosynth.embed.weights`) and the foundation-model entries alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["CLIP_MEAN", "CLIP_STD", "IMAGENET_MEAN", "IMAGENET_STD", "EncoderSpec"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class EncoderSpec:
    """A registry entry: what an encoder is and how to build it.

    Attributes
    ----------
    name, dim, input_size
        As on :class:`~histosynth.embed.base.PatchEncoder`.
    builder
        ``"module:function"``; :func:`~histosynth.embed.encoders.load_encoder` calls it as
        ``builder(spec, weights, device=..., precision=...)`` with ``weights`` a
        :class:`~histosynth.embed.weights.ResolvedWeights` or ``None``.
    backend
        ``"builtin"``, ``"timm"``, ``"transformers"`` or ``"conch"`` (what must be installed).
    weights
        ``"none"``, ``"required"`` or ``"optional"``.
    weight_file
        The file name to look for inside a folder or the hub cache.
    source
        Where a user gets the weights (shown in the missing-weights sentence).
    hub_repo
        Hub repository whose *cached* copy may be used with ``allow_hub``.
    params
        Builder-specific settings (architecture name and kwargs, normalisation, pooling).
    help
        One line for listings.
    """

    name: str
    dim: int
    input_size: int
    builder: str
    backend: Literal["builtin", "timm", "transformers", "conch"] = "builtin"
    weights: Literal["none", "required", "optional"] = "required"
    weight_file: str = "model.safetensors"
    source: str = ""
    hub_repo: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    help: str = ""
