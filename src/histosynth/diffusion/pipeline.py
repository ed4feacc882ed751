"""Inference: a diffusers ``DiffusionPipeline`` that makes images from maps and crops.

>>> pipe = HistoSynthPipeline.from_pretrained("runs/cmu/model")            # doctest: +SKIP
>>> pipe.set_sampler("dpm++")                                               # doctest: +SKIP
>>> gens = [torch_generator(0, "sample", i) for i in range(len(maps))]     # doctest: +SKIP
>>> out = pipe(maps, crops, guidance_map=1.5, guidance_crops=2.0,
...            num_inference_steps=20, generator=gens)                      # doctest: +SKIP

Guidance. Map and crops were dropped independently in training, so each has its own scale
(compositional classifier-free guidance, as InstructPix2Pix does for its two conditions)::

    ε = ε(∅, ∅) + s_map · (ε(m, ∅) − ε(∅, ∅)) + s_crops · (ε(m, c) − ε(m, ∅))

Scales of 1 need one network evaluation per step; only the branches a scale needs are run,
batched together. The paper samples with DDIM, 200 steps, η = 1 and no guidance.

Seeds. ``generator`` may be a list with one ``torch.Generator`` per sample: the initial noise
and any sampler noise of a sample then come from its own generator, so an image does not
depend on the batch it was made in (edm2 does the same per image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.utils import BaseOutput

from histosynth.diffusion.inputs import CropBatch, as_maps, make_crop_batch
from histosynth.diffusion.sampling import denoise
from histosynth.diffusion.schedule import NoiseSchedule

__all__ = ["SAMPLERS", "GuidedConditions", "HistoSynthPipeline", "HistoSynthPipelineOutput", "make_scheduler"]

# name -> (scheduler class, extra config); the paper's sampler is DDIM.
SAMPLERS: dict[str, tuple[type, dict[str, Any]]] = {
    "ddim": (DDIMScheduler, {"clip_sample": False, "set_alpha_to_one": True}),  # last step: the x0 estimate
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    # The same solver on Karras et al.'s (2022, eq. 5, ρ = 7) noise levels, which spend more of
    # the steps at low noise, where a briefly trained model makes its texture: on the 3,000-step
    # cpu-tiny model, 40 steps lift the speckle ratio 0.81-0.83 -> 0.85-0.86 and cut
    # random-init-cnn FD / floor 1.21-1.26 -> 1.09-1.14 over dpm++ (docs/model.md).
    "dpm++-karras": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "dpm++-sde": (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
}


def make_scheduler(schedule: NoiseSchedule, name: str = "ddim", **overrides: Any) -> Any:
    """A diffusers scheduler of :data:`SAMPLERS` that follows ``schedule``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {list(SAMPLERS)}")
    cls, extra = SAMPLERS[name]
    return cls(**{**schedule.scheduler_config(), **extra, **overrides})


@dataclass
class HistoSynthPipelineOutput(BaseOutput):
    """``images``: uint8 ``(B, H, W, 3)`` (``"np"``), float ``(B, 3, H, W)`` in [0, 1] (``"pt"``),
    a list of PIL images (``"pil"``), or normalised latents (``"latent"``)."""

    images: Any


@dataclass
class GuidedConditions:
    """Conditions of the guidance branches of a batch (see ``prepare_conditions``)."""

    maps: torch.Tensor  # (B, H, W) long
    conditions: Any  # histosynth.diffusion.conditioning.Conditions of the k·B branch samples
    branches: int  # k
    use_crops: bool


class HistoSynthPipeline(DiffusionPipeline):
    """Maps + crops → images, with any diffusers scheduler.

    Parameters
    ----------
    denoiser
        A :class:`~histosynth.diffusion.denoiser.HistoDenoiser`.
    codec
        A :class:`~histosynth.diffusion.codec.KLCodec` or ``IdentityCodec``.
    scheduler
        A diffusers scheduler configured with the training schedule (see :func:`make_scheduler`).
    """

    model_cpu_offload_seq = "denoiser->codec"

    def __init__(self, denoiser: Any, codec: Any, scheduler: Any) -> None:
        super().__init__()
        self.register_modules(denoiser=denoiser, codec=codec, scheduler=scheduler)

    def set_sampler(self, name: str, **overrides: Any) -> None:
        """Swap the scheduler for another of :data:`SAMPLERS`, keeping the training schedule."""
        if name not in SAMPLERS:
            raise ValueError(f"unknown sampler {name!r}; choose from {list(SAMPLERS)}")
        cls, extra = SAMPLERS[name]
        self.register_modules(scheduler=cls.from_config(self.scheduler.config, **{**extra, **overrides}))

    # ------------------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self,
        maps: Any,
        crops: Sequence[Sequence[Any]] | CropBatch | None = None,
        guidance_map: float = 1.0,
        guidance_crops: float = 1.0,
        num_inference_steps: int = 50,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        eta: float = 0.0,
        output_type: str = "np",
        return_dict: bool = True,
    ) -> HistoSynthPipelineOutput | tuple[Any]:
        """Make one image per map.

        Parameters
        ----------
        maps
            ``(B, H, W)`` class ids (see :mod:`histosynth.diffusion.inputs`).
        crops
            Per sample, a list of exemplar crops (format in :mod:`histosynth.diffusion.inputs`),
            a ready :class:`CropBatch`, or ``None`` (map only).
        guidance_map, guidance_crops
            Classifier-free guidance scales (1 = none).
        num_inference_steps
            Sampler steps.
        generator
            One generator per sample (batch-independent results), one for the batch, or ``None``.
        eta
            DDIM's η (the paper uses 1; 0 is deterministic given the initial noise).
        output_type
            ``"np"``, ``"pt"``, ``"pil"`` or ``"latent"``.
        """
        den = self.denoiser
        gc = self.prepare_conditions(maps, crops, guidance_map, guidance_crops)
        B, H, W = gc.maps.shape
        f = den.config.downsample
        latents = denoise(
            self.scheduler,
            lambda x, t: self.guided_eps(x, t, gc, guidance_map, guidance_crops),
            (B, den.config.latent_channels, H // f, W // f),
            generator=generator, num_inference_steps=num_inference_steps, eta=eta,
            device=self._execution_device, dtype=den.dtype, progress=self.progress_bar,
        )  # fmt: skip

        images = latents if output_type == "latent" else self._decode(latents, output_type)
        self.maybe_free_model_hooks()
        return HistoSynthPipelineOutput(images) if return_dict else (images,)

    # ------------------------------------------------------------------------------ pieces
    def prepare_conditions(
        self, maps: Any, crops: Sequence[Sequence[Any]] | CropBatch | None, guidance_map: float,
        guidance_crops: float,
    ) -> GuidedConditions:  # fmt: skip
        """Conditions of every guidance branch a pair of scales needs, computed once per batch.

        Branches are (drop_map, drop_crops) pairs, full conditioning first; scales of 1 need
        one branch only. Large-image synthesis calls this once per window batch.
        """
        den, device = self.denoiser, self._execution_device
        maps = as_maps(maps).to(device)
        B = maps.shape[0]
        use_crops = crops is not None and den.cond.uses_crops
        if use_crops and not isinstance(crops, CropBatch):
            place = den.cond.reads_positions
            crops = make_crop_batch(crops, maps, den.canvas, den.config.max_crops, place=place)
        cb = crops.to(device, den.dtype) if use_crops else None
        branches = [(False, not use_crops)]
        if use_crops and (guidance_crops != 1 or guidance_map != 1):
            branches.append((False, True))
        if guidance_map != 1:
            branches.append((True, True))
        k = len(branches)
        drop_map = torch.tensor([m for m, _ in branches], device=device).repeat_interleave(B)
        drop_crops = torch.tensor([c for _, c in branches], device=device).repeat_interleave(B)
        conds = den.conditions(
            maps.repeat(k, 1, 1), cb.repeat(k) if cb is not None else None, drop_map, drop_crops
        )
        return GuidedConditions(maps, conds, k, use_crops)

    def guided_eps(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        gc: GuidedConditions,
        guidance_map: float,
        guidance_crops: float,
    ) -> torch.Tensor:
        """The guided prediction for scaled latents ``x`` (B, C, h, w) at timestep ``t``."""
        B = x.shape[0]
        out = self.denoiser(
            x.repeat(gc.branches, 1, 1, 1), t.expand(gc.branches * B), gc.maps, conditions=gc.conditions
        ).chunk(gc.branches)
        return self._guide(out, gc.use_crops, guidance_map, guidance_crops)

    # ------------------------------------------------------------------------------ helpers
    @staticmethod
    def _guide(out: tuple[torch.Tensor, ...], use_crops: bool, s_map: float, s_crops: float) -> torch.Tensor:
        full = out[0]
        if use_crops:
            if len(out) == 1:
                return full
            map_only = out[1]
            empty = out[2] if len(out) == 3 else map_only
            return empty + s_map * (map_only - empty) + s_crops * (full - map_only)
        return full if len(out) == 1 else out[1] + s_map * (full - out[1])

    def _decode(self, latents: torch.Tensor, output_type: str) -> Any:
        images = self.codec.decode_latents(latents.to(self.codec.dtype))
        images = ((images.float().clamp(-1, 1) + 1) / 2).cpu()  # (B, 3, H, W) in [0, 1]
        if output_type == "pt":
            return images
        arr = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # (B, H, W, 3)
        if output_type == "pil":
            from PIL import Image

            return [Image.fromarray(a) for a in arr]
        if output_type != "np":
            raise ValueError(f"output_type must be 'np', 'pt', 'pil' or 'latent', got {output_type!r}")
        return arr
