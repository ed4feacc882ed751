"""A small CNN for sub-tiles: a seeded random-init baseline (at 64 px), and the backbone that
:mod:`histosynth.embed.ssl` trains self-supervised on the user's own tiles (at 32 px).

The network (about 0.65 M parameters, 25 M multiply-adds per 64×64 image) is four stride-2
stages; its features concatenate the global average of every stage (24 + 48 + 96 + 192 = 360),
so colour (early stages) and tissue architecture (late stages) both reach the clusters. That
multi-scale pooling is also what makes random-init features useful at all.
"""

from __future__ import annotations

import json
from typing import Any

from histosynth.embed.base import TorchEncoder

__all__ = ["ARCH_VERSION", "SSL_SIZE", "WIDTHS", "build_random", "build_ssl", "tiny_cnn"]

WIDTHS = (24, 48, 96, 192)
ARCH_VERSION = "tinycnn-v1"
SSL_SIZE = 32  # ssl-tiny trains and encodes at this side (CPU-friendly; see ssl.py)
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def tiny_cnn(seed: int = 0) -> Any:
    """The network with a seeded initialisation (independent of the global torch RNG)."""
    import torch
    from torch import nn

    class TinyCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            stages, c_in = [], 3
            for i, c in enumerate(WIDTHS):
                layers = [
                    nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(),
                ]
                if i > 0:  # the stem stays a single conv: it mostly sees colour
                    layers += [nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
                stages.append(nn.Sequential(*layers))
                c_in = c
            self.stages = nn.ModuleList(stages)
            self.dim = sum(WIDTHS)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pooled = []
            for stage in self.stages:
                x = stage(x)
                pooled.append(x.mean(dim=(2, 3)))
            return torch.cat(pooled, dim=1)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TinyCNN()
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


def build_random(spec: Any, weights: Any, device: str = "cpu", precision: str = "auto") -> TorchEncoder:
    """``random-init-cnn``: the CNN with seeded random weights (a baseline, named as such)."""
    seed = int(spec.params.get("seed", 0))
    return TorchEncoder(spec.name, tiny_cnn(seed), sum(WIDTHS), f"random-init-cnn-v1-seed{seed}",
                        spec.input_size, MEAN, STD, device=device, precision=precision)  # fmt: skip


def build_ssl(spec: Any, weights: Any, device: str = "cpu", precision: str = "auto") -> TorchEncoder:
    """``ssl-tiny``: the CNN with weights fitted by ``histosynth embed --fit-ssl``."""
    from histosynth.embed.foundation import load_into
    from histosynth.embed.weights import (
        MissingWeightsError,
        load_safetensors,
        missing_sentence,
        weights_checksum,
    )

    if weights is None:
        raise MissingWeightsError(missing_sentence(spec, None))
    from safetensors import safe_open

    with safe_open(str(weights.path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("arch") not in (None, ARCH_VERSION):
        from histosynth.embed.weights import WeightsError

        raise WeightsError(
            f"{weights.path}: weights of a {meta.get('arch')!r} network, expected {ARCH_VERSION}"
        )
    net = tiny_cnn(0)
    state = {k.removeprefix("backbone."): v for k, v in load_safetensors(weights.path).items()
             if not k.startswith("projector.")}  # fmt: skip
    load_into(net, state, weights.path, spec.name)
    digest = weights_checksum(weights)
    enc = TorchEncoder(spec.name, net, sum(WIDTHS), f"ssl-tiny:sha256-{digest[:16]}", spec.input_size,
                       MEAN, STD, device=device, precision=precision)  # fmt: skip
    enc.weights_sha256, enc.weights_path = digest, str(weights.path)
    enc.training = json.loads(meta.get("training", "{}"))
    return enc
