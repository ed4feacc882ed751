"""Each stage's config, from a run config: what the top-level keys imply, then the stage's table.

Every function returns the frozen config dataclass of one stage, built by
:func:`~histosynth.config.build_config` in the usual layers (the stage's preset, then the
values the run's keys imply, then the run's table for that stage), so a run is exactly the
commands a user could type one by one. A wrong key in a stage table is a
:class:`~histosynth.config.ConfigError` naming the table.

>>> from histosynth.pipeline.config import RunConfig
>>> tiling(RunConfig(size=128, tile={"min_tissue": 0.6}), "slide").size
128
>>> tiling(RunConfig(tile={"min_tisue": 0.6}), "slide")
Traceback (most recent call last):
...
histosynth.config.ConfigError: run config [tile]: unknown key 'min_tisue'; did you mean 'min_tissue'?
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from histosynth.config import ConfigError, build_config
from histosynth.diffusion.conditioning import SHORT_NAMES as VARIANTS
from histosynth.pipeline.config import RunConfig

__all__ = [
    "cluster_config",
    "crop_bank_config",
    "dataset_config",
    "embed_config",
    "evaluate_config",
    "large_config",
    "report_config",
    "sample_config",
    "side_tiling",
    "split_mode",
    "tiling",
    "train_config",
]

# From this many slides up, ``split = "auto"`` splits by slide: train, val and test get one each.
MIN_SLIDES_BY_SLIDE = 3


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _merged(out[key], value) if both else value
    return out


def _build(
    cls: type, cfg: RunConfig, table: str, implied: Mapping[str, Any], preset: str | None = None
) -> Any:
    """``cls`` from its preset, the values the run implies and the run's table ``table``."""
    try:
        return build_config(cls, preset=preset, values=_merged(implied, cfg.stage_table(table)))
    except ConfigError as exc:
        raise ConfigError(f"run config [{table}]: {str(exc).removeprefix('values: ')}") from None


def split_mode(cfg: RunConfig, n_slides: int) -> str:
    """``slide`` or ``region``: the run's ``split``, with ``auto`` resolved for ``n_slides`` slides."""
    if cfg.split != "auto":
        return cfg.split
    return "slide" if n_slides >= MIN_SLIDES_BY_SLIDE else "region"


def tiling(cfg: RunConfig, split_by: str) -> Any:
    """The tiles of the training dataset (``tile``)."""
    from histosynth.wsi.tiling import TileConfig

    split = {"by": split_by, "region_um": cfg.region_um}
    return _build(TileConfig, cfg, "tile", {**_patches(cfg), "overlap": cfg.overlap, "split": split})


def side_tiling(cfg: RunConfig) -> Any:
    """The unannotated path's tiles beside a model trained on other maps (``both_paths``):
    without overlap (embedding needs none) and split by slide, as nothing trains on them."""
    from histosynth.wsi.tiling import TileConfig

    return _build(TileConfig, cfg, "tile", _patches(cfg))


def _patches(cfg: RunConfig) -> dict[str, Any]:
    values: dict[str, Any] = {
        "mpp": cfg.patch_mpp,
        "size": cfg.size,
        "min_tissue": cfg.min_tissue,
        "seed": cfg.seed,
    }
    if cfg.slide_mpp is not None:
        values["slide_mpp"] = cfg.slide_mpp
    return values


def dataset_config(cfg: RunConfig, side: bool = False) -> Any:
    """The patch dataset (``dataset``): the training one, or the side path's pseudo-map one."""
    from histosynth.data.build import DatasetConfig

    sampling: dict[str, Any] = {"max_per_slide": cfg.max_per_slide}
    if not side:
        sampling["homogeneous_share"] = cfg.homogeneous_share
    return _build(DatasetConfig, cfg, "dataset", {"seed": cfg.seed, "sampling": sampling})


def embed_config(cfg: RunConfig) -> Any:
    """Sub-tile embeddings (``embed``): 4 × 4 sub-tiles per patch."""
    from histosynth.embed.stage import EmbedConfig

    sub = max(1, cfg.size // 4)
    return _build(EmbedConfig, cfg, "embed", {"encoder": cfg.encoder, "subtile": sub, "stride": sub})


def cluster_config(cfg: RunConfig) -> Any:
    """Tissue types and pseudo-maps (``cluster``)."""
    from histosynth.cluster.stage import ClusterConfig

    values: dict[str, Any] = {"k": cfg.clusters, "per_slide": 20000, "seed": cfg.seed}
    if cfg.levels:
        values["levels"] = list(cfg.levels)
    return _build(ClusterConfig, cfg, "cluster", values)


def crop_bank_config(cfg: RunConfig) -> Any:
    """The exemplar crops every variant is conditioned on (``crop-bank``)."""
    from histosynth.sample.crop_bank import CropBankConfig

    return _build(CropBankConfig, cfg, "crop_bank", {})


def train_config(cfg: RunConfig, variant: str, minutes: float | None = None) -> Any:
    """One variant's training (``train``): ``train_steps`` steps, or ``minutes`` of wall time."""
    from histosynth.train.config import TrainConfig

    if variant not in VARIANTS:
        raise ConfigError(f"variants: unknown variant {variant!r}; choose from {sorted(VARIANTS)}")
    if cfg.train_steps > 0:
        budget: dict[str, Any] = {"steps": cfg.train_steps, "seed": cfg.seed}
    else:  # a time budget: steps enough never to end first; resumes from the last checkpoint
        budget = {"steps": 100000, "seed": cfg.seed, "max_minutes": float(f"{minutes or cfg.minutes:.2f}")}
    model = {"conditioning": VARIANTS[variant]}
    return _build(TrainConfig, cfg, "train", {"model": model, "run": budget}, preset=cfg.train_preset)


def sample_config(cfg: RunConfig, real: str | Path) -> Any:
    """The synthetic dataset (``sample``): held-out maps of ``real``, crops from the bank."""
    from histosynth.sample.stage import SampleConfig

    values = {"n": cfg.n_samples, "sampler": cfg.sampler, "steps": cfg.sample_steps, "guidance_map": cfg.guidance_map,
              "guidance_crops": cfg.guidance_crops, "seed": cfg.seed, "batch_size": 16, "maps": "dataset",
              "maps_dir": str(real), "whole_passes": True}  # fmt: skip
    return _build(SampleConfig, cfg, "sample", values)


def large_config(cfg: RunConfig, index: int) -> Any:
    """Large image ``index`` of a variant (``sample-large``): a procedural map of its own seed."""
    from histosynth.sample.large import LargeConfig

    values = {"width": cfg.large_size, "height": cfg.large_size, "sampler": cfg.sampler, "steps": cfg.sample_steps,
              "guidance_map": cfg.guidance_map, "guidance_crops": cfg.guidance_crops, "seed": cfg.seed + index}  # fmt: skip
    return _build(LargeConfig, cfg, "sample_large", values)


def evaluate_config(cfg: RunConfig) -> Any:
    """Evaluation against the held-out real patches (``evaluate``): the preset's protocol, with
    one mix of real and synthetic patches and the run's segmenter budget."""
    from histosynth.evaluate.config import EvaluateConfig

    segmenter = {"steps": cfg.segmenter_steps, "crop": cfg.size, "decoder_channels": 32}
    tstr = {"seeds": cfg.segmenter_seeds, "mixes": [1.0], "segmenter": segmenter}
    values = {
        "detectors": list(cfg.detectors),
        "tstr": tstr,
        "c2st_steps": cfg.c2st_steps,
        "device": cfg.device,
    }
    return _build(EvaluateConfig, cfg, "evaluate", values, preset=cfg.evaluate_preset)


def report_config(cfg: RunConfig) -> Any:
    """The HTML report (``report``)."""
    from histosynth.report.page import ReportConfig

    return _build(ReportConfig, cfg, "report", {})
