"""The training loss, apart from the network and the schedule (edm2's split).

``loss = w(t) · ‖D(x_t, t, cond) − target‖`` per sample, with ``t`` uniform over the
schedule's steps, L1 (the paper's, *early code*) or L2, and optional Min-SNR weighting
(Hang et al. 2023): ``w = min(SNR, γ) / SNR`` for ε-prediction, ``min(SNR, γ) / (SNR + 1)``
for v-prediction.

Input perturbation (DDPM-IP, Ning et al. 2023, eq. 9): the network sees
``x_t = √ᾱ x0 + √(1−ᾱ) (ε + γ ξ)`` but is asked for the target of the unperturbed ε, so it
learns to correct the small errors its own sampler makes (exposure bias).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from histosynth.diffusion.schedule import NoiseSchedule

__all__ = ["DiffusionLoss", "LossTerms"]


@dataclass
class LossTerms:
    """Per-sample loss (weighted, to optimise) and the draws that produced it."""

    loss: torch.Tensor  # (B,) weighted
    raw: torch.Tensor  # (B,) unweighted, for logging
    t: torch.Tensor  # (B,) timesteps


@dataclass(frozen=True)
class DiffusionLoss:
    """Denoising loss on clean latents.

    Parameters
    ----------
    schedule
        The noise schedule (also fixes ε- or v-prediction).
    norm
        ``"l1"`` or ``"l2"`` (mean absolute or mean squared error per sample).
    min_snr_gamma
        γ of Min-SNR weighting; ``None`` weights all steps equally.
    input_perturbation
        γ of DDPM-IP (0.1 in the paper); ``None`` or 0 perturbs nothing and draws nothing extra.
    """

    schedule: NoiseSchedule
    norm: Literal["l1", "l2"] = "l1"
    min_snr_gamma: float | None = None
    input_perturbation: float | None = None

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample weight ``(B,)``."""
        if self.min_snr_gamma is None:
            return torch.ones(t.shape, device=t.device)
        snr = self.schedule.snr(t)
        clipped = snr.clamp(max=self.min_snr_gamma)
        return clipped / (snr + 1) if self.schedule.prediction == "v_prediction" else clipped / snr

    def __call__(
        self,
        model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x0: torch.Tensor,
        generator: torch.Generator | None = None,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        perturbation: torch.Tensor | None = None,
    ) -> LossTerms:
        """Draw ``t`` and ``ε`` (unless given), noise ``x0`` and compare ``model(x_t, t)`` to the target.

        Parameters
        ----------
        model
            ``model(x_t, t) -> prediction`` with the conditioning already bound.
        x0
            Clean normalised latents ``(B, C, h, w)``.
        generator
            Source of ``t`` and ``ε`` (on ``x0``'s device), saved and restored on resume.
        t, noise, perturbation
            Fixed draws (for evaluation on a fixed batch, or drawn per sample by the caller);
            ``perturbation`` is DDPM-IP's ξ, used only when ``input_perturbation`` is set.
        """
        B = x0.shape[0]
        if t is None:
            t = torch.randint(
                0, self.schedule.num_train_timesteps, (B,), generator=generator, device=x0.device
            )
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        seen = noise
        if self.input_perturbation:  # DDPM-IP: the input's noise is off by γ ξ, the target is not
            if perturbation is None:
                perturbation = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            seen = noise + self.input_perturbation * perturbation
        pred = model(self.schedule.add_noise(x0, seen, t), t)
        err = pred.float() - self.schedule.target(x0, noise, t).float()
        raw = (err.abs() if self.norm == "l1" else err.square()).flatten(1).mean(1)
        return LossTerms(raw * self.weight(t), raw.detach(), t)
