"""Patch encoders: the registry and weight-aware loading.

Every encoder (:class:`~histosynth.embed.base.PatchEncoder`) turns RGB uint8 images
``(N, H, W, 3)`` into float32 features ``(N, dim)``. ``identity`` names exactly what produced
the features (the weights' checksum, or a version and seed for encoders without weights), so
features cached under (dataset id, encoder identity) are never mixed up.

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
from pathlib import Path
from typing import Any

from histosynth.embed.base import PatchEncoder
from histosynth.embed.foundation import FOUNDATION_SPECS
from histosynth.embed.spec import EncoderSpec
from histosynth.embed.weights import MissingWeightsError, resolve_weights
from histosynth.registry import Registry

__all__ = ["ENCODERS", "encoder_status", "load_encoder"]


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
for _spec in FOUNDATION_SPECS:
    _register(_spec)


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
    module, _, attr = spec.builder.partition(":")
    return getattr(importlib.import_module(module), attr)(spec, resolved, device=device, precision=precision)


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
