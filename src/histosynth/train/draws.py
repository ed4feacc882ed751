"""Per-sample training draws, independent of how a global batch is split.

Each sample of a step draws its guidance dropout, timestep, noise and (with a KL codec) its
latent posterior sample from its own generator, seeded by (run seed, step, position in the
global batch). A global batch therefore gets the same draws on one process as on ``W``
processes (DDP) or over ``accum`` accumulation steps, so the averaged gradient is the same up
to floating-point summation order. Generators are CPU ones: the draws are the same on any
device, and cost a few microseconds per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from histosynth.seeding import item_seed

__all__ = ["Draws", "draw", "sample_generators"]


def sample_generators(seed: int, step: int, positions: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample, at ``positions`` of step ``step``'s global batch."""
    return [torch.Generator().manual_seed(item_seed(seed, "noise", step, p)) for p in positions]


@dataclass
class Draws:
    """A micro-batch's draws: ``t (B,)``, ``noise`` like the latents, dropout masks ``(B,)``,
    and DDPM-IP's input perturbation ξ like the latents (``None`` when not asked for)."""

    t: torch.Tensor
    noise: torch.Tensor
    drop_map: torch.Tensor
    drop_crops: torch.Tensor
    perturbation: torch.Tensor | None = None


def draw(
    gens: Sequence[torch.Generator],
    latent_shape: Sequence[int],
    num_timesteps: int,
    p_drop_map: float,
    p_drop_crops: float,
    device: torch.device | str,
    perturb: bool = False,
) -> Draws:
    """Draw every sample's dropout flags, timestep, noise and (``perturb``) ξ from its own
    generator; ξ is drawn last, so the other draws are the same with it or without."""
    drops, ts, noise, xi = [], [], [], []
    for g in gens:
        drops.append(torch.rand(2, generator=g))
        ts.append(torch.randint(0, num_timesteps, (1,), generator=g))
        noise.append(torch.randn(tuple(latent_shape), generator=g))
        if perturb:
            xi.append(torch.randn(tuple(latent_shape), generator=g))
    d = torch.stack(drops)
    return Draws(
        t=torch.cat(ts).to(device),
        noise=torch.stack(noise).to(device),
        drop_map=(d[:, 0] < p_drop_map).to(device),
        drop_crops=(d[:, 1] < p_drop_crops).to(device),
        perturbation=torch.stack(xi).to(device) if perturb else None,
    )
