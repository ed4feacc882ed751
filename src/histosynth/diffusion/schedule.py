"""The noise schedule, apart from the network (as edm2 keeps them).

Variance-preserving forward process ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε`` over
``num_train_timesteps`` discrete steps. Two schedules:

``linear``
    The paper's: 1,000 steps, β 0.0015 → 0.0205 (*early code*). Its code base is the latent
    diffusion one, whose "linear" schedule is linear in √β (``linspace(√β₀, √β₁)²``); diffusers
    calls that ``scaled_linear``, and that is what is built here.
``cosine``
    Nichol & Dhariwal (2021), ``squaredcos_cap_v2`` in diffusers (β capped at 0.999).

:meth:`NoiseSchedule.scheduler_config` gives the same schedule to any diffusers scheduler
(DDIM, DPM-Solver++, UniPC, Euler) for sampling; a test checks that their ᾱ equal ours.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Literal

import torch

__all__ = ["NoiseSchedule"]

_DIFFUSERS_NAME = {"linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete variance-preserving schedule and its prediction target.

    Parameters
    ----------
    kind
        ``"linear"`` (the paper's, linear in √β) or ``"cosine"``.
    num_train_timesteps
        Number of discrete steps ``T``.
    beta_start, beta_end
        End points of the linear schedule (ignored by ``cosine``).
    prediction
        What the network predicts: ``"epsilon"`` (the paper) or ``"v_prediction"``.
    """

    kind: Literal["linear", "cosine"] = "linear"
    num_train_timesteps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0205
    prediction: Literal["epsilon", "v_prediction"] = "epsilon"

    def __post_init__(self) -> None:
        if self.kind not in _DIFFUSERS_NAME:
            raise ValueError(f"schedule kind must be one of {list(_DIFFUSERS_NAME)}, got {self.kind!r}")
        if self.prediction not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction must be 'epsilon' or 'v_prediction', got {self.prediction!r}")

    # ------------------------------------------------------------------ the schedule
    def betas(self) -> torch.Tensor:
        """``(T,)`` float64 β_t."""
        T = self.num_train_timesteps
        if self.kind == "linear":
            return torch.linspace(self.beta_start**0.5, self.beta_end**0.5, T, dtype=torch.float64) ** 2

        def abar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor(
            [min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)], dtype=torch.float64
        )

    def alphas_cumprod(self) -> torch.Tensor:
        """``(T,)`` float64 ᾱ_t."""
        return self._abar.clone()

    @cached_property
    def _abar(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas(), dim=0)

    def _abar_on(self, device: torch.device) -> torch.Tensor:
        cache = self.__dict__.setdefault("_abar_by_device", {})
        if device not in cache:
            cache[device] = self._abar.to(device)
        return cache[device]

    def _coef(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        abar = self._abar_on(t.device)[t].to(like.dtype)
        shape = (-1,) + (1,) * (like.ndim - 1)
        return abar.sqrt().view(shape), (1 - abar).sqrt().view(shape)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t`` from clean ``x0``, noise ``ε`` and integer timesteps ``t`` ``(B,)``."""
        a, s = self._coef(t, x0)
        return a * x0 + s * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network should output: ``ε``, or ``v = √ᾱ ε − √(1−ᾱ) x0``."""
        if self.prediction == "epsilon":
            return noise
        a, s = self._coef(t, x0)
        return a * noise - s * x0

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio ``ᾱ / (1 − ᾱ)`` at timesteps ``t`` (float32)."""
        abar = self._abar_on(t.device)[t]
        return (abar / (1 - abar)).float()

    # ------------------------------------------------------------------ diffusers interop
    def scheduler_config(self) -> dict[str, Any]:
        """Keyword arguments giving a diffusers scheduler this schedule and target."""
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "beta_schedule": _DIFFUSERS_NAME[self.kind],
            "prediction_type": self.prediction,
            "timestep_spacing": "trailing",  # reaches t = T-1 at any step count (Lin et al. 2024)
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
