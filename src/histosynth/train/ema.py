"""Exponential moving average of the weights, kept as a full copy of the model for sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """EMA of a model's parameters (buffers are copied).

    Parameters
    ----------
    model
        The model being trained; an independent float32 copy is kept in :attr:`model`.
    decay
        The decay at full strength.
    warmup
        Use ``min(decay, (1 + n) / (10 + n))`` at update ``n``, so early averages are not
        dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        self.model = copy.deepcopy(model).float().eval().requires_grad_(False)
        self.decay, self.warmup = decay, warmup
        self._ema = list(self.model.parameters()) + list(self.model.buffers())
        self._n_params = len(list(self.model.parameters()))
        self._src: tuple[int, list[torch.Tensor]] | None = None  # cached tensors of the trained model

    def decay_at(self, n: int) -> float:
        """The decay used for update number ``n`` (0-based)."""
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, n: int) -> None:
        """Move the average towards ``model`` (update number ``n`` = the optimiser step)."""
        d = self.decay_at(n)
        if self._src is None or self._src[0] != id(model):  # walking a big module tree costs ms
            self._src = (id(model), list(model.parameters()) + list(model.buffers()))
        src, k = self._src[1], self._n_params
        cur = [p.detach().to(e.dtype) for p, e in zip(src[:k], self._ema[:k], strict=True)]
        torch._foreach_lerp_(self._ema[:k], cur, 1 - d)
        for b_ema, b in zip(self._ema[k:], src[k:], strict=True):
            b_ema.copy_(b)
