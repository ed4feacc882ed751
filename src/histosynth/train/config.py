"""Configuration of ``histosynth train``: frozen dataclasses and presets named for where they run.

The defaults of the dataclasses are the paper's settings where it states them (*early code*:
ε-prediction, 1,000-step linear schedule β 0.0015 → 0.0205, L1 loss, AdamW lr 4.8e-5 with
10k warm-up steps, global batch 48, EMA). The presets change what a smaller machine needs.
Fields that only say how long or how loudly a run goes (:data:`RUN_LENGTH_KEYS`) are not
part of the model's identity, so a finished run can be extended by re-running it with more
steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from histosynth.config import config_to_dict, register_presets
from histosynth.diffusion.conditioning import CONDITIONINGS

__all__ = [
    "RUN_LENGTH_KEYS",
    "DataConfig",
    "DiffusionConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TISSUE_STEPS",
    "TrainConfig",
    "identity_config",
]

Conditioning = Literal[tuple(CONDITIONINGS.names())]  # the variants' names, from their one table


@dataclass(frozen=True)
class DataConfig:
    """Patches, augmentation and training crops (see :mod:`histosynth.data.crops`)."""

    split: str | None = "train"  # rows of the dataset used; None: all
    image_size: int = 256  # patches of another size are resized (area for images, nearest for maps)
    augment: bool = True  # the 8 flips/rotations of the square, applied alike to image and map
    per_class: int = 2  # crops per class: 1..per_class
    max_crops: int = 8  # crops per patch at most
    foreign_prob: float = 0.5  # chance a crop comes from another patch of the same class
    min_area_frac: float = 0.02  # regions under this fraction of the patch get no crop
    workers: int = 0  # DataLoader worker processes (0: prepare batches in the training process)
    preload: bool = True  # decode all patches into memory once (when they fit in 4 GiB)
    # KL codecs: keep each (patch, symmetry)'s posterior moments, up to this many GiB, instead
    # of encoding it again every epoch (histosynth.train.latent_cache; 0: off)
    latent_cache_gb: float = 4.0
    # Coarse-to-fine curriculum for nested pseudo-maps: ((k, until_step), ...) in order;
    # needs the dataset's hierarchy.json (see histosynth.train.data.Curriculum).
    curriculum: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        if any(len(stage) != 2 for stage in self.curriculum):
            raise ValueError("data.curriculum: each stage is [k, until_step]")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "paper"  # a name in histosynth.diffusion.backbones.BACKBONES
    conditioning: Conditioning = "map+crops-tokens"
    # An identity preset ("identity", "identity-p2", "identity-p4") or a codec folder
    # (histosynth train-codec output, or any local diffusers AutoencoderKL).
    codec: str | None = None
    measure_scale: bool = True  # measure the latent shift/scale on the training patches
    num_classes: int | None = None  # default: from the dataset's class map (largest id + 1)
    # Paint each class's crop colour statistics over its region (variants that read crops; ours,
    # histosynth.diffusion.conditioning.statistics). None: the backbone preset's choice.
    crop_stats: bool | None = None


@dataclass(frozen=True)
class DiffusionConfig:
    schedule: Literal["linear", "cosine"] = "linear"
    timesteps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0205
    prediction: Literal["epsilon", "v_prediction"] = "epsilon"
    loss: Literal["l1", "l2"] = "l1"
    min_snr_gamma: float | None = None  # e.g. 5.0 (Hang et al. 2023)
    input_perturbation: float | None = None  # DDPM-IP's γ, e.g. 0.1 (Ning et al. 2023)
    drop_map: float = 0.1  # per-sample chance the map is replaced by "absent"
    drop_crops: float = 0.1  # per-sample chance the crops are dropped (independent)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 4.8e-5
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 10000  # linear warm-up, then constant (so runs can be extended)
    batch_size: int = 48  # global: over processes and accumulation steps
    grad_accum: int = 1
    grad_clip: float = 1.0  # max gradient norm (0: off)
    ema_decay: float = 0.9999
    ema_warmup: bool = True  # decay min(ema_decay, (1 + step) / (10 + step))

    def __post_init__(self) -> None:
        if len(self.betas) != 2:
            raise ValueError("optim.betas: two numbers, e.g. [0.9, 0.999]")


@dataclass(frozen=True)
class RunConfig:
    steps: int = 200_000
    seed: int = 0
    # auto: bf16 autocast on a GPU that has it, and on a CPU with native bf16 (AVX512-BF16 or
    # AMX: 1.5-1.8x faster training steps on 2 cores, docs/model.md); fp32 elsewhere.
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    log_every: int = 50
    sample_every: int = 2000  # sample grid every N steps (0: only at the end)
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2
    sample_steps: int = 50  # sampler steps for the grid
    sampler: str = "ddim"
    grid_rows: int = 4
    max_minutes: float | None = None  # stop (with a checkpoint) after this much wall time
    threads: int | None = None  # torch CPU threads


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


# How long and how loudly a run goes: not part of what the run makes.
RUN_LENGTH_KEYS = (
    "run.steps", "run.log_every", "run.sample_every", "run.checkpoint_every", "run.keep_checkpoints",
    "run.sample_steps", "run.sampler", "run.grid_rows", "run.max_minutes", "run.threads", "data.workers",
    "data.preload", "data.latent_cache_gb",
)  # fmt: skip


def identity_config(cfg: Any, keys: tuple[str, ...] = RUN_LENGTH_KEYS) -> dict[str, Any]:
    """The config as a dict without the run-length fields: what names a model artefact."""
    d = config_to_dict(cfg)
    for key in keys:
        section, name = key.split(".")
        d.get(section, {}).pop(name, None)
    return d


_CPU_RUN = {"log_every": 10, "sample_every": 250, "checkpoint_every": 250, "sample_steps": 25}
# How the CPU presets depart from the paper, each measured in docs/model.md ("Diagnosis"):
# - v-prediction: ε-prediction turns the x0 estimate at high noise into ε-error / √ᾱ (×70 at
#   t = T here), which a briefly trained small model cannot afford; v = √ᾱ ε − √(1−ᾱ) x0 is
#   what edm2-style preconditioning of an ε-model amounts to (ε̂ = √(1−ᾱ) x_t + √ᾱ F), so
#   the network's target has unit scale at every t;
# - Min-SNR-5 weighting (Hang et al. 2023): steps whose noise is nearly gone get less weight,
#   so a short run spends its updates on the noise levels where tissue structure is decided;
# - L2 instead of the paper's L1: with the 2×2 space-to-depth model, L2 on v at equal steps
#   lifts the speckle ratio from 0.72 to 0.79 and cuts random-init-cnn FD / floor from 1.60 to
#   1.21 at 2,000 steps (0.71 → 0.83 and 1.57 → 1.26 at 3,000; docs/model.md): L1's median
#   fit of v smooths the fine texture a mean fit keeps.
# - crop colour statistics painted over each class's region (model.crop_stats): on 4 simulated
#   labs at 1,500 steps, stain adherence 0.92 -> 0.73 (spatial) and 0.94 -> 0.71 (tokens), real
#   tissue scoring 0.77 (docs/model.md, "Crops that carry the lab").
_CPU_MODEL = {"codec": "identity-p2", "crop_stats": True}
_CPU_DIFFUSION = {"prediction": "v_prediction", "min_snr_gamma": 5.0, "loss": "l2"}

register_presets(
    TrainConfig,
    {
        # Learns tissue in 15 minutes on 2 cores: 64 px, pixel space by 2×2 space-to-depth
        # (12×32×32: a 4×4 one, 48×16×16, made speckle), lr 1e-3, batch 16.
        "cpu-tiny": {
            "data": {"image_size": 64, "max_crops": 6},
            "model": {"backbone": "cpu-tiny", **_CPU_MODEL},
            "diffusion": _CPU_DIFFUSION,
            "optim": {"lr": 1e-3, "warmup_steps": 100, "batch_size": 16, "ema_decay": 0.995},
            "run": {"steps": 4000, **_CPU_RUN},
        },
        # cpu-tiny's recipe at 128 px (not measured at this size; a many-core CPU, overnight).
        "cpu-small": {
            "data": {"image_size": 128},
            "model": {"backbone": "cpu-small", **_CPU_MODEL},
            "diffusion": _CPU_DIFFUSION,
            "optim": {"lr": 5e-4, "warmup_steps": 500, "batch_size": 16, "ema_decay": 0.999},
            "run": {"steps": 20000, **_CPU_RUN, "sample_every": 1000, "checkpoint_every": 1000},
        },
        # The paper's scale: 256 px, KL-f4 latents (64×64×3), UNet 128 × 1/4/8, batch 48.
        "paper": {"data": {"image_size": 256, "workers": 8}, "model": {"backbone": "paper"}},
        "large": {
            "data": {"image_size": 256, "max_crops": 12, "workers": 12},
            "model": {"backbone": "large"},
            "optim": {"lr": 1e-4, "warmup_steps": 5000, "batch_size": 256},
            "run": {"steps": 400_000, "sample_every": 5000, "checkpoint_every": 5000},
        },
    },
)

# Optimiser steps (batch 16, 64 px, the bundled slide) below which a backbone's images are colour
# speckle rather than tissue, and at which they are tissue: cpu-tiny made speckle at 781 steps
# and at 1,286 steps of batch 8, blotchy tissue at 1,666 and tissue at 2,910 (the demo on fresh
# clones, docs/model.md "Steps a short run needs"). A time-budgeted run that ends below the
# first says so and how many minutes would reach the second (histosynth.pipeline.runner).
TISSUE_STEPS: dict[str, tuple[int, int]] = {"cpu-tiny": (1500, 3000)}
