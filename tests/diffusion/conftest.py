"""Tiny models and inputs for the diffusion tests (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def tiny_denoiser(conditioning: str = "map+crops-tokens", num_classes: int = 3, seed: int = 0):
    """The ``test`` backbone on 32 px images with the identity-p2 codec's latents (12 × 16 × 16)."""
    from histosynth.diffusion.denoiser import build_denoiser

    torch.manual_seed(seed)
    return build_denoiser("test", conditioning, num_classes, 32, 12, 2).eval()


def tiny_inputs(batch: int = 3, seed: int = 0):
    """Maps (two half-planes and a square) and per-sample crops of distinct colours."""
    rng = np.random.default_rng(seed)
    maps = np.zeros((batch, 32, 32), np.uint8)
    crops = []
    for b in range(batch):
        maps[b, :, 16:] = 1
        maps[b, 4 + b : 14 + b, 4:14] = 2
        crops.append([(k, rng.integers(0, 255, (8 + 2 * k, 10, 3), dtype=np.uint8)) for k in range(3)])
    return torch.from_numpy(maps).long(), crops


@pytest.fixture
def make_denoiser():
    """``make_denoiser(conditioning)``: a fresh tiny denoiser."""
    return tiny_denoiser


@pytest.fixture
def make_inputs():
    """``make_inputs(batch)``: maps ``(B, 32, 32)`` and per-sample crops."""
    return tiny_inputs


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and a shared CI box does not oversubscribe."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
