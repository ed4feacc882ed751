"""Configuration of ``histosynth evaluate``: frozen dataclasses and their presets.

Presets: ``cpu`` (the defaults; TSTR small enough for 2 cores), ``gpu`` (paper-sized TSTR on a
CUDA device) and ``quick`` (distribution metrics and memorisation only: no segmentation).
``TSTRConfig`` has its own ``cpu`` and ``gpu`` presets, which the evaluation presets reuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from histosynth.config import register_presets

__all__ = ["EvaluateConfig", "HallucinationConfig", "MemorizationConfig", "SegmenterConfig", "TSTRConfig"]


@dataclass(frozen=True)
class SegmenterConfig:
    """DeepLabv3+ (segmentation-models-pytorch), randomly initialised: no weights are downloaded.

    Training runs a fixed number of steps whatever the training-set size, so every TSTR
    condition gets the same compute.
    """

    encoder: str = "resnet18"
    encoder_depth: int = 4
    decoder_channels: int = 32
    crop: int = 128
    batch_size: int = 8
    steps: int = 150
    lr: float = 1e-3
    weight_decay: float = 1e-4
    augment: bool = True
    workers: int = 0


@dataclass(frozen=True)
class TSTRConfig:
    """Train on synthetic, test on real.

    Conditions: real only, each synthetic variant only, and real + synthetic at each mix (the
    number of synthetic images added per real image), each for ``seeds`` seeds.
    """

    enabled: bool = True
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    mixes: tuple[float, ...] = (0.5, 1.0)
    seeds: int = 2


@dataclass(frozen=True)
class MemorizationConfig:
    """Nearest-training-image checks and crop copying.

    A synthetic image is an offender when its nearest training image is closer than the
    ``percentile`` of the held-out-real → train nearest distances (in any checked space).
    A crop is copied when its best match in the synthetic image has an RMSE ≤ ``crop_tolerance``
    (0..255 scale).
    """

    detectors: tuple[str, ...] = ()
    percentile: float = 1.0
    crop_tolerance: float = 3.0
    max_listed: int = 50


@dataclass(frozen=True)
class HallucinationConfig:
    """Conservative per-image outlier flags.

    Density: the distance from a synthetic image to its k-th nearest real training image,
    divided by the ``quantile`` of the same distance for held-out real images; flagged when the
    ratio exceeds 1 under *every* detector. Segmenter: the image's mIoU against its own map below
    the (1 − ``quantile``) quantile of held-out real images' mIoU. ``quantile = 1`` compares with
    the most extreme held-out real image (the most conservative setting).
    """

    enabled: bool = True
    quantile: float = 1.0
    max_listed: int = 50


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything ``histosynth evaluate`` computes, and with what."""

    detectors: tuple[str, ...] = ("handcrafted", "random-init-cnn")
    detector_weights: tuple[str, ...] = ()
    registry_file: Path | None = None
    allow_hub: bool = False
    device: str = "cpu"
    real_split: str = "train"
    heldout_split: str = "test"
    heldout_fraction: float = 0.2
    max_images: int = 0
    workers: int = 2
    seed: int = 0
    cache_dir: Path | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    prdc_k: int = 5
    bootstrap: int = 20
    ci_level: float = 0.95
    per_class: bool = True
    region_tile: int = 64
    region_purity: float = 0.9
    region_max_per_image: int = 4
    region_min_tiles: int = 10
    mask_fidelity: bool = True
    c2st: bool = True  # classifier two-sample test (histosynth.evaluate.c2st) per variant
    c2st_steps: int = 300
    memorization: MemorizationConfig = field(default_factory=MemorizationConfig)
    hallucination: HallucinationConfig = field(default_factory=HallucinationConfig)
    tstr: TSTRConfig = field(default_factory=TSTRConfig)

    def __post_init__(self) -> None:
        if not self.detectors:
            raise ValueError("at least one detector is needed")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must lie in (0, 1), got {self.heldout_fraction}")
        if not 0 < self.memorization.percentile < 100:
            raise ValueError(
                f"memorization.percentile must lie in (0, 100), got {self.memorization.percentile}"
            )

    def weights_for(self, name: str) -> str | None:
        """The weight path given for detector ``name`` in ``detector_weights`` (``name=path``)."""
        for item in self.detector_weights:
            key, sep, path = item.partition("=")
            if not sep:
                raise ValueError(f"detector_weights entry {item!r} is not NAME=PATH")
            if key.strip() == name:
                return path.strip()
        return None


_TSTR_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"enabled": True, "mixes": [0.5, 1.0], "seeds": 2,
            "segmenter": {"encoder": "resnet18", "encoder_depth": 4, "decoder_channels": 32, "crop": 128,
                          "batch_size": 8, "steps": 150, "lr": 1e-3, "workers": 0}},
    "gpu": {"enabled": True, "mixes": [0.25, 0.5, 1.0, 2.0], "seeds": 3,
            "segmenter": {"encoder": "resnet50", "encoder_depth": 5, "decoder_channels": 256, "crop": 256,
                          "batch_size": 16, "steps": 5000, "lr": 3e-4, "workers": 8}},
}  # fmt: skip
register_presets(TSTRConfig, _TSTR_PRESETS)
register_presets(
    EvaluateConfig,
    {
        "cpu": {"device": "cpu", "bootstrap": 20, "workers": 2, "tstr": _TSTR_PRESETS["cpu"]},
        "gpu": {"device": "cuda", "bootstrap": 100, "workers": 8, "tstr": _TSTR_PRESETS["gpu"]},
        "quick": {"bootstrap": 0, "mask_fidelity": False, "per_class": False, "tstr": {"enabled": False},
                  "hallucination": {"enabled": True}},
    },
)  # fmt: skip
