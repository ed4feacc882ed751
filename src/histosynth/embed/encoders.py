"""Patch encoders: the registry, the common interface, and weight-aware loading.

Every encoder turns RGB uint8 images ``(N, H, W, 3)`` into float32 features ``(N, dim)`` and does
its own resizing and normalisation. ``identity`` names exactly what produced the features (the
weights' checksum, or a version and seed for encoders without weights), so features cached under
(dataset id, encoder identity) are never mixed up.

>>> from histosynth.embed.encoders import load_encoder
>>> enc = load_encoder("handcrafted")
>>> enc.name, enc.identity
('handcrafted', 'handcrafted-v1')

Encoders that need no weights, so the whole path runs offline: ``handcrafted`` (stain and
texture statistics), ``random-init-cnn`` (a seeded random-init CNN, a baseline named as such)
and ``ssl-tiny`` (a small CNN that ``histosynth embed --fit-ssl`` trains on the user's tiles).
Foundation models (UNI, UNI2-h, Virchow2, H-optimus-0/1, Phikon-v2, CONCH) and general
baselines (DINOv2, ImageNet ResNet-50) load from local weights only, see
:mod:`histosynth.embed.weights`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from histosynth.embed.weights import MissingWeightsError, ResolvedWeights, resolve_weights
from histosynth.registry import Registry

__all__ = [
    "ENCODERS",
    "EncoderSpec",
    "PatchEncoder",
    "TorchEncoder",
    "encoder_status",
    "load_encoder",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class PatchEncoder(ABC):
    """The interface every encoder offers.

    Attributes
    ----------
    name
        Registry name.
    dim
        Feature dimension.
    identity
        What produced the features: ``"<name>:sha256-<16 hex>"`` for weights, else a version and
        seed (``"handcrafted-v1"``, ``"random-init-cnn-v1-seed0"``).
    input_size
        Side, in pixels, that images are resized to before encoding.
    dtype
        Compute precision (``"float32"``, ``"bfloat16"``, ...); features are always float32.
    """

    name: str
    dim: int
    identity: str
    input_size: int
    dtype: str = "float32"
    device: str = "cpu"
    weights_sha256: str | None = None
    weights_path: str | None = None

    @abstractmethod
    def encode(self, images: np.ndarray) -> np.ndarray:
        """Features ``(N, dim)`` float32 of RGB uint8 images ``(N, H, W, 3)``."""

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for manifests."""
        return {
            "name": self.name,
            "dim": self.dim,
            "identity": self.identity,
            "input_size": self.input_size,
            "dtype": self.dtype,
            "weights": self.weights_path,
            "weights_sha256": self.weights_sha256,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dim={self.dim}, identity={self.identity!r})"


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    return images


class TorchEncoder(PatchEncoder):
    """An encoder backed by a torch module: resize, normalise, forward, pool.

    Parameters
    ----------
    name, dim, identity, input_size
        See :class:`PatchEncoder`.
    module
        The network; ``forward(module, x)`` maps a normalised ``(N, 3, S, S)`` batch to ``(N, dim)``.
    mean, std
        Per-channel normalisation of images scaled to [0, 1].
    device
        Torch device string.
    precision
        ``"auto"`` (bfloat16 autocast on CUDA, float32 elsewhere), ``"float32"``, ``"bfloat16"``
        or ``"float16"``.
    forward
        Pooling function; default ``module(x)``.
    """

    def __init__(self, name: str, module: Any, dim: int, identity: str, input_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...], device: str = "cpu",
                 precision: str = "auto", forward: Any = None) -> None:  # fmt: skip
        import torch

        self.name, self.dim, self.identity, self.input_size = name, dim, identity, input_size
        self.device = str(device)
        self.module = module.to(self.device).eval()
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        if precision == "auto":
            precision = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.dtype = precision
        self._forward = forward

    def preprocess(self, images: Any) -> Any:
        """uint8 ``(N, H, W, 3)`` tensor or array → normalised float ``(N, 3, S, S)`` on the device."""
        import torch
        import torch.nn.functional as F

        x = torch.as_tensor(images).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.input_size, self.input_size):
            shrink = x.shape[-1] > self.input_size
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=shrink)  # fmt: skip
        return (x - self.mean) / self.std

    def encode_tensor(self, images: Any) -> Any:
        """Features of a uint8 image batch (tensor or array) as a float32 CPU tensor."""
        import torch

        with torch.inference_mode():
            x = self.preprocess(images)
            enabled = self.dtype in ("bfloat16", "float16")
            dtype = torch.bfloat16 if self.dtype == "bfloat16" else torch.float16
            device_type = "cuda" if self.device.startswith("cuda") else "cpu"
            with torch.autocast(device_type=device_type, dtype=dtype, enabled=enabled):
                out = self._forward(self.module, x) if self._forward is not None else self.module(x)
            return out.float().cpu()

    def encode(self, images: np.ndarray) -> np.ndarray:
        images = _check_images(images)
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_tensor(images).numpy()


# ---------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class EncoderSpec:
    """A registry entry: what an encoder is and how to build it.

    Attributes
    ----------
    name, dim, input_size
        As on :class:`PatchEncoder`.
    builder
        ``"module:function"``; called as ``builder(spec, weights, device=..., precision=...)``
        with ``weights`` a :class:`~histosynth.embed.weights.ResolvedWeights` or ``None``.
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

    def build(
        self, weights: ResolvedWeights | None, device: str = "cpu", precision: str = "auto"
    ) -> PatchEncoder:
        module, _, attr = self.builder.partition(":")
        return getattr(importlib.import_module(module), attr)(
            self, weights, device=device, precision=precision
        )


ENCODERS: Registry[EncoderSpec] = Registry("encoder")


def _register(spec: EncoderSpec) -> None:
    ENCODERS.add(spec.name, spec, help=spec.help)


_B = "histosynth.embed"
_register(
    EncoderSpec(
        "handcrafted",
        42,
        64,
        f"{_B}.handcrafted:build",
        weights="none",
        help="stain (colour deconvolution) + texture statistics; deterministic, no weights",
    )
)
_register(
    EncoderSpec(
        "random-init-cnn",
        360,
        64,
        f"{_B}.cnn:build_random",
        weights="none",
        params={"seed": 0},
        help="a seeded random-init small CNN (baseline, no weights)",
    )
)
_register(
    EncoderSpec(
        "ssl-tiny",
        360,
        32,
        f"{_B}.cnn:build_ssl",
        weights="optional",
        weight_file="ssl-tiny.safetensors",
        source="`histosynth embed --fit-ssl` (its encoder/ folder)",
        help="small CNN trained self-supervised on your own tiles (`histosynth embed --fit-ssl`)",
    )
)
# Foundation models and general baselines (timm / transformers / CONCH); see foundation.py.
importlib.import_module(f"{_B}.foundation").register_all(_register)


# ---------------------------------------------------------------------------------- loading
def load_encoder(
    name: str,
    weights: str | Path | None = None,
    registry_file: str | Path | None = None,
    allow_hub: bool = False,
    device: str = "cpu",
    precision: str = "auto",
) -> PatchEncoder:
    """Build the encoder ``name`` from local weights.

    Parameters
    ----------
    name
        A name in :data:`ENCODERS`.
    weights
        An explicit weights file (``.safetensors``) or folder; wins over everything else.
    registry_file
        The user's weights registry (TOML); default ``~/.config/histosynth/weights.toml``.
    allow_hub
        Also accept a copy already in the Hugging Face hub cache (never downloads).
    device
        Torch device for network encoders.
    precision
        See :class:`TorchEncoder`.

    Raises
    ------
    MissingWeightsError
        Fast, before any model library is imported, when required weights are found nowhere.
    """
    spec = ENCODERS.get(name)
    resolved = resolve_weights(spec, weights, registry_file, allow_hub)
    _require_backend(spec)
    return spec.build(resolved, device=device, precision=precision)


def _backend_missing(spec: EncoderSpec) -> str | None:
    import importlib.util

    module = {"timm": "timm", "transformers": "transformers", "conch": "conch"}.get(spec.backend)
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    pkg = {"conch": "git+https://github.com/mahmoodlab/CONCH.git"}.get(spec.backend, spec.backend)
    return f"encoder {spec.name!r} needs the {spec.backend} package: pip install {pkg}"


def _require_backend(spec: EncoderSpec) -> None:
    from histosynth.embed.weights import WeightsError

    missing = _backend_missing(spec)
    if missing:
        raise WeightsError(missing)


def encoder_status(registry_file: str | Path | None = None) -> list[dict[str, Any]]:
    """Availability of every registered encoder, for ``histosynth doctor`` (fast, offline).

    Returns
    -------
    list of dict
        ``{"name", "available", "detail"}``; ``detail`` of a missing one says which file to put where.
    """
    from histosynth.embed.weights import hub_cached_file

    rows = []
    for name in ENCODERS.names():
        spec = ENCODERS.get(name)
        missing_lib = _backend_missing(spec)
        if spec.weights == "none":
            rows.append({"name": name, "available": True, "detail": f"no weights needed; {spec.help}"})
            continue
        try:
            found = resolve_weights(spec, None, registry_file, allow_hub=False)
        except (MissingWeightsError, OSError, ValueError) as exc:
            found, reason = None, str(exc)
        else:
            reason = ""
        if found is not None:
            ok = missing_lib is None
            rows.append(
                {"name": name, "available": ok, "detail": missing_lib or f"{found.path} ({found.source})"}
            )
        elif spec.weights == "optional":
            rows.append({"name": name, "available": True, "detail": f"no weights given; {spec.help}"})
        else:
            cached = bool(spec.hub_repo) and hub_cached_file(spec.hub_repo, spec.weight_file) is not None
            hint = " (a copy is in the hub cache: --allow-hub uses it)" if cached else ""
            rows.append({"name": name, "available": False, "detail": (missing_lib or reason) + hint})
    return rows
