"""MultiDiffusion's model evaluation of a large latent canvas: overlapping windows, blended.

At every step each window predicts for its part of the canvas, conditioned on its part of the
map and on the exemplar crops of the classes it contains; the predictions are weighted by a
ramp that falls towards the window edge and averaged (Bar-Tal et al. 2023, eq. 3-5). Blending
the predictions is the same as blending the stepped latents, because every sampler step here
is linear in the prediction. A :class:`WindowBlend` is a ``predict(x, t)`` of
:func:`histosynth.diffusion.sampling.denoise`, which walks the scheduler over the whole canvas.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from histosynth.sample.windows import blend_weights

__all__ = ["WindowBlend"]


class WindowBlend:
    """The blended prediction of overlapping windows of a canvas, conditions computed once.

    Parameters
    ----------
    pipe
        The :class:`~histosynth.diffusion.pipeline.HistoSynthPipeline` whose guided
        prediction each window batch gets.
    label
        ``(H·f, W·f)`` uint8 class ids of the whole image.
    windows
        ``(row, col)`` origins of the windows, in latent pixels.
    window, overlap
        Window side and overlap, in latent pixels.
    crops
        Class id → exemplar crops; a window gets those of the classes it contains. ``None``:
        map only.
    guidance_map, guidance_crops
        Classifier-free guidance scales.
    batch
        Windows evaluated together (memory ∝ this, not the image).
    """

    def __init__(self, pipe: Any, label: np.ndarray, windows: list[tuple[int, int]], window: int, overlap: int,
                 crops: dict[int, list] | None, guidance_map: float, guidance_crops: float, batch: int) -> None:  # fmt: skip
        self.pipe, self.window, self.scales = pipe, window, (guidance_map, guidance_crops)
        self.weight = torch.from_numpy(blend_weights(window, overlap)).to(pipe.device)
        self.batches = [windows[i : i + batch] for i in range(0, len(windows), batch)]
        maps = torch.from_numpy(label)  # uint8: an int64 copy would be 8 bytes per image pixel
        self.conditions = [self._prepare(maps, b, crops) for b in self.batches]

    def _prepare(
        self, label: torch.Tensor, batch: list[tuple[int, int]], crops: dict[int, list] | None
    ) -> Any:
        """The guidance conditions of one window batch, without autograd: a graph kept per batch
        held the conditioning encoders' activations of every window, so memory grew with the
        image. The window maps are kept as uint8 only: once the conditions exist, the guided
        prediction reads nothing else."""
        f, lw = int(self.pipe.denoiser.config.downsample), self.window
        device = self.pipe.device
        with torch.inference_mode():
            wmaps = torch.stack([label[y * f : (y + lw) * f, x * f : (x + lw) * f] for y, x in batch])
            wcrops = None
            if crops is not None:
                wcrops = [[c for cls in np.unique(m.numpy()) for c in crops.get(int(cls), [])] for m in wmaps]
            gc = self.pipe.prepare_conditions(wmaps.to(device), wcrops, *self.scales)
        return replace(gc, maps=wmaps.to(device))

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The weighted mean of the windows' guided predictions for the canvas ``x`` (1, C, H, W)."""
        lw, w = self.window, self.weight
        acc = torch.zeros_like(x)
        wsum = torch.zeros((1, 1, *x.shape[-2:]), device=x.device)
        for batch, gc in zip(self.batches, self.conditions, strict=True):
            xs = torch.cat([x[:, :, y : y + lw, c : c + lw] for y, c in batch])
            out = self.pipe.guided_eps(xs, t, gc, *self.scales)
            for (y, c), e in zip(batch, out, strict=True):
                acc[0, :, y : y + lw, c : c + lw] += e * w
                wsum[0, :, y : y + lw, c : c + lw] += w
        return acc.div_(wsum)
