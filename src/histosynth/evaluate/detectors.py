"""Detectors: the feature extractors that evaluation metrics are computed in.

A :class:`Detector` maps a batch of preprocessed images (float32, (N, S, S, 3), values 0..255,
already resized to its ``input_size`` by :mod:`histosynth.evaluate.features`) to (N, dim)
float32 features, and carries an ``identity`` dict (name, architecture, weight checksum) that
keys the feature cache and is written into ``metrics.json``.

``DETECTORS`` holds builders, registered lazily so listing them imports nothing heavy:

* ``inception-v3``: torchvision Inception-v3 pool3 features from a local weight file, for
  numbers comparable with FID in the literature;
* ``pixels-32``: the image itself at 32×32 (3072-d), for pixel-space nearest neighbours
  (memorisation) and as a model-free sanity detector;
* every encoder of the embedding stage (``histosynth.embed.encoders``: pathology foundation
  models, DINOv2, ImageNet ResNet-50, the offline handcrafted and random-CNN encoders),
  adapted by :func:`encoder_detector`. Encoders take uint8 images, so their input is rounded
  to uint8 after the shared resize.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from histosynth.registry import Registry, RegistryError

__all__ = ["DETECTORS", "Detector", "build_detector", "detector_names", "encoder_detector"]


@dataclass(frozen=True)
class Detector:
    """A named feature extractor with a fixed input size and a reproducible identity."""

    name: str
    dim: int
    input_size: int
    input_dtype: Literal["float32", "uint8"]
    identity: dict[str, Any]
    fn: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    batch_size: int = 64

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, dim) float32 features of float32 (N, S, S, 3) images with values 0..255."""
        if images.ndim != 4 or images.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(
                f"detector {self.name!r} takes (N, {self.input_size}, {self.input_size}, 3) images, "
                f"got {images.shape}"
            )
        x = images
        if self.input_dtype == "uint8":
            x = np.clip(np.rint(images), 0, 255).astype(np.uint8)
        out = np.asarray(self.fn(x), np.float32)
        if out.shape != (len(images), self.dim):
            raise ValueError(
                f"detector {self.name!r} returned {out.shape}, expected ({len(images)}, {self.dim})"
            )
        return out


# A builder: (weights, device, registry_file, allow_hub) -> Detector.
DETECTORS: Registry[Callable[..., Detector]] = Registry("detector")
DETECTORS.add("inception-v3", "histosynth.evaluate.detectors:inception_detector",
              help="Inception-v3 pool3 (2048-d) from a local torchvision weight file; FID-comparable")  # fmt: skip
DETECTORS.add("pixels-32", "histosynth.evaluate.detectors:pixel_detector",
              help="raw pixels at 32×32 (3072-d); pixel-space neighbours and a model-free check")  # fmt: skip


def inception_detector(weights: str | Path | None = None, device: str = "cpu", **_: Any) -> Detector:
    """Inception-v3 pool3 features; ``weights`` is a local torchvision state dict (required)."""
    from histosynth.evaluate.inception import INPUT_SIZE, inception_features, load_inception_v3

    if weights is None:
        raise FileNotFoundError(
            "detector 'inception-v3' needs a local weight file (a torchvision inception_v3 state dict "
            "in safetensors format): pass --detector-weights inception-v3=PATH"
        )
    model, sha = load_inception_v3(weights, device)
    identity = {"name": "inception-v3", "arch": "torchvision.inception_v3/pool3", "weights_sha256": sha,
                "input": "[-1, 1]"}  # fmt: skip
    return Detector("inception-v3", 2048, INPUT_SIZE, "float32", identity,
                    lambda x: inception_features(model, x, device), batch_size=50)  # fmt: skip


def pixel_detector(size: int = 32, **_: Any) -> Detector:
    """The resized image itself, flattened and scaled to [0, 1]."""
    identity = {"name": f"pixels-{size}", "arch": "identity", "weights_sha256": None}
    return Detector(f"pixels-{size}", size * size * 3, size, "float32", identity,
                    lambda x: x.reshape(len(x), -1) / 255.0, batch_size=256)  # fmt: skip


def encoder_detector(
    name: str,
    weights: str | Path | None = None,
    device: str = "cpu",
    registry_file: str | Path | None = None,
    allow_hub: bool = False,
) -> Detector:
    """Adapt an encoder of the embedding stage (``histosynth.embed.encoders``) to a detector."""
    from histosynth.embed.encoders import load_encoder

    enc = load_encoder(name, weights=weights, registry_file=registry_file, allow_hub=allow_hub, device=device)
    # describe() names the weights by checksum; their path and the device do not change features.
    desc = dict(enc.describe()) if hasattr(enc, "describe") else {"identity": str(enc.identity)}
    desc.pop("weights", None)
    identity = {**desc, "name": name, "source": "histosynth.embed.encoders"}
    size = enc.input_size
    size = int(size[0] if isinstance(size, tuple | list) else size)
    return Detector(name, int(enc.dim), size, "uint8", identity, enc.encode, batch_size=64)


def _encoder_names() -> list[str]:
    try:
        from histosynth.embed import encoders
    except ImportError:
        return []
    reg = getattr(encoders, "ENCODERS", None)
    return list(reg.names()) if reg is not None and hasattr(reg, "names") else []


def detector_names() -> list[str]:
    """Detector builders plus every encoder name of the embedding stage."""
    return DETECTORS.names() + [n for n in _encoder_names() if n not in DETECTORS]


def build_detector(
    name: str,
    weights: str | Path | None = None,
    device: str = "cpu",
    registry_file: str | Path | None = None,
    allow_hub: bool = False,
) -> Detector:
    """Build detector ``name``: a ``DETECTORS`` entry, else an encoder of the embedding stage.

    Raises
    ------
    RegistryError
        When ``name`` is neither.
    """
    if name in DETECTORS:
        return DETECTORS.get(name)(
            weights=weights, device=device, registry_file=registry_file, allow_hub=allow_hub
        )
    if name in _encoder_names():
        return encoder_detector(name, weights, device, registry_file, allow_hub)
    import difflib

    names = detector_names()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; choose from {names}"
    raise RegistryError(f"unknown detector {name!r}{hint}")
