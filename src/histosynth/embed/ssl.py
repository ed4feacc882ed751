"""In-domain self-supervised training of the small CNN (``ssl-tiny``) on the user's own tiles.

SimCLR (Chen et al., 2020): two augmented views of each sub-tile are pulled together and pushed
away from the other images of the batch (NT-Xent loss on a 2-layer projection head, discarded
after training). The augmentations suit H&E: crops with random 90° rotations and flips (tissue
has no canonical orientation), stain jitter in optical-density space (scanner and lab
variation), mild brightness/contrast changes and blur. Colour is perturbed only gently because
it carries much of the tissue-type signal that clustering needs.

Images are seen at 32×32 (sub-tiles are resized; at 0.5 µm/px a 64-px sub-tile becomes 1 µm/px,
where nuclei still span several pixels), which makes a few thousand images and a couple of
hundred steps train in a few minutes on a laptop CPU. The weights are written as safetensors
with the training settings in the file's metadata.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SSLConfig", "augment", "fit_ssl", "nt_xent"]


@dataclass(frozen=True)
class SSLConfig:
    """Settings of ``histosynth embed --fit-ssl``.

    Attributes
    ----------
    images
        Sub-tiles sampled (evenly across slides) to train on.
    steps
        Optimisation steps.
    batch_size
        Images per step (each seen in two views).
    lr, weight_decay
        AdamW settings; the learning rate follows a cosine schedule after a 5 % warm-up.
    temperature
        NT-Xent temperature.
    seed
        Seeds the initialisation, the batch order and the augmentations.
    """

    images: int = 4096
    steps: int = 200
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.images < 2 or self.steps < 1 or self.batch_size < 2:
            raise ValueError("ssl: images and batch_size must be ≥ 2 and steps ≥ 1")


def _rand(g: Any, n: int, lo: float, hi: float) -> Any:
    import torch

    return lo + (hi - lo) * torch.rand(n, generator=g)


def augment(x: Any, g: Any) -> Any:
    """A random view of a float batch ``(B, 3, S, S)`` in [0, 1] (generator ``g`` drives all choices)."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    # Geometry: crop (zoom 1–1.6×), a random 90° rotation and a flip, as one affine resample.
    scale = _rand(g, b, 0.62, 1.0)
    angle = torch.randint(0, 4, (b,), generator=g).float() * (math.pi / 2)
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    tx, ty = (1 - scale) * _rand(g, b, -1, 1), (1 - scale) * _rand(g, b, -1, 1)
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # Stain jitter: scale and shift each channel's optical density.
    od = -torch.log(x.clamp_min(1 / 255))
    od = od * _rand(g, 3 * b, 0.85, 1.15).view(b, 3, 1, 1) + _rand(g, 3 * b, -0.05, 0.05).view(b, 3, 1, 1)
    x = torch.exp(-od.clamp_min(0))
    # Brightness and contrast.
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * _rand(g, b, 0.8, 1.2).view(b, 1, 1, 1) + mean + _rand(g, b, -0.08, 0.08).view(b, 1, 1, 1)
    # Blur half of the views (sigma 0.1–1.2 px), as focus varies across a slide.
    sigma = _rand(g, b, 0.1, 1.2)
    blur = torch.rand(b, generator=g) < 0.5
    r = torch.arange(-2, 3, dtype=x.dtype)
    k = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)
    k = torch.where(blur[:, None], k, (r == 0).to(x.dtype)[None].expand_as(k))
    xb = x.reshape(1, b * 3, *x.shape[2:])
    kk = k.repeat_interleave(3, 0)
    xb = F.conv2d(F.pad(xb, (2, 2, 0, 0), mode="reflect"), kk.view(b * 3, 1, 1, 5), groups=b * 3)
    xb = F.conv2d(F.pad(xb, (0, 0, 2, 2), mode="reflect"), kk.view(b * 3, 1, 5, 1), groups=b * 3)
    return xb.view_as(x).clamp(0, 1)


def nt_xent(z1: Any, z2: Any, temperature: float) -> Any:
    """SimCLR's normalised-temperature cross-entropy of two view batches."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def fit_ssl(
    images: np.ndarray, cfg: SSLConfig, out: str | Path, show_progress: bool = True
) -> dict[str, Any]:
    """Train ``ssl-tiny`` on uint8 images ``(N, H, W, 3)`` and write its weights to ``out``.

    Returns
    -------
    dict
        Training record (settings, first/last loss, seconds), also stored in the file's metadata.
    """
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save
    from torch import nn

    from histosynth.artifacts import atomic_write_bytes
    from histosynth.embed.cnn import ARCH_VERSION, MEAN, SSL_SIZE, STD, WIDTHS, tiny_cnn
    from histosynth.progress import progress

    start = time.perf_counter()
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    size = SSL_SIZE
    if x.shape[-1] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size
        )
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        backbone = tiny_cnn(cfg.seed)
        projector = nn.Sequential(
            nn.Linear(sum(WIDTHS), 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 128)
        )
    params = [*backbone.parameters(), *projector.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)),
    )
    g = torch.Generator().manual_seed(cfg.seed)
    batch = min(cfg.batch_size, len(x))
    losses = []
    backbone.train(), projector.train()
    bar = progress(range(cfg.steps), desc="fit ssl-tiny", disable=not show_progress)
    for _ in bar:
        idx = torch.randperm(len(x), generator=g)[:batch]
        views = [(augment(x[idx], g) - mean) / std for _ in range(2)]
        loss = nt_xent(projector(backbone(views[0])), projector(backbone(views[1])), cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    bar.close()
    record = {
        **asdict(cfg),
        "images_used": len(x),
        "loss_first": losses[0],
        "loss_last": float(np.mean(losses[-max(1, len(losses) // 10) :])),
        "seconds": round(time.perf_counter() - start, 2),
    }
    state = {f"backbone.{k}": v.detach().contiguous() for k, v in backbone.state_dict().items()}
    state.update({f"projector.{k}": v.detach().contiguous() for k, v in projector.state_dict().items()})
    # bytes, then an atomic write: an interrupted fit leaves no half file
    atomic_write_bytes(out, save(state, metadata={"arch": ARCH_VERSION, "training": json.dumps(record)}))
    return record
