"""MultiDiffusion's model evaluation of a large latent canvas: overlapping windows, blended.

At every step each window predicts for its part of the canvas, conditioned on its part of the
map and on the exemplar crops of the classes it contains; the predictions are weighted by a
ramp that falls towards the window edge and averaged (Bar-Tal et al. 2023, eq. 3-5). Blending
the predictions is the same as blending the stepped latents, because every sampler step here
is linear in the prediction. :meth:`WindowBlend.fill` is the ``predict(canvas, t)`` that
:func:`histosynth.diffusion.sampling.denoise` asks of a
:class:`~histosynth.sample.tiled_canvas.TiledCanvas`: it reads each window batch's latents from
the canvas's files and adds its weighted predictions into them, so memory holds one window
batch, whatever the image size. The windows' conditions (map embedding, crop tokens) are
computed once and kept on disk, one safetensors file per window batch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histosynth.sample.windows import blend_weights

__all__ = ["WindowBlend"]

_TENSORS = ("spatial", "tokens", "mask")  # the Conditions fields, all tensors


class WindowBlend:
    """The blended prediction of overlapping windows of a canvas, conditions computed once.

    Parameters
    ----------
    pipe
        The :class:`~histosynth.diffusion.pipeline.HistoSynthPipeline` whose guided
        prediction each window batch gets.
    label
        ``(H·f, W·f)`` uint8 class ids of the whole image (an array or a memory map).
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
    folder
        Where the conditions are kept (``_cond/``; :meth:`remove` deletes them).
    """

    def __init__(self, pipe: Any, label: np.ndarray, windows: list[tuple[int, int]], window: int, overlap: int,
                 crops: dict[int, list] | None, guidance_map: float, guidance_crops: float, batch: int,
                 folder: str | Path) -> None:  # fmt: skip
        from safetensors.torch import save_file

        self.pipe, self.window, self.scales = pipe, window, (guidance_map, guidance_crops)
        self.weight = blend_weights(window, overlap)
        self.batches = [windows[i : i + batch] for i in range(0, len(windows), batch)]
        self.folder = Path(folder) / "_cond"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._meta: list[tuple[int, bool]] = []
        for i, b in enumerate(self.batches):
            gc = self._prepare(label, b, crops)
            tensors = {"maps": gc.maps, **{k: getattr(gc.conditions, k) for k in _TENSORS}}
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, self.folder / f"{i}.safetensors")
            self._meta.append((gc.branches, gc.use_crops))
        self._weighed = False

    def _prepare(self, label: np.ndarray, batch: list[tuple[int, int]], crops: dict[int, list] | None) -> Any:
        """The guidance conditions of one window batch, without autograd (a graph kept per batch
        held the conditioning encoders' activations of every window, so memory grew with the
        image). The window maps are kept as uint8 only: once the conditions exist, the guided
        prediction reads nothing else."""
        f, lw = int(self.pipe.denoiser.config.downsample), self.window
        device = self.pipe.device
        with torch.inference_mode():
            wmaps = torch.stack(
                [
                    torch.from_numpy(np.array(label[y * f : (y + lw) * f, x * f : (x + lw) * f]))
                    for y, x in batch
                ]
            )
            wcrops = None
            if crops is not None:
                wcrops = [[c for cls in np.unique(m.numpy()) for c in crops.get(int(cls), [])] for m in wmaps]
            gc = self.pipe.prepare_conditions(wmaps.to(device), wcrops, *self.scales)
        return replace(gc, maps=wmaps.to(device))

    def _conditions(self, i: int) -> Any:
        from safetensors.torch import load_file

        from histosynth.diffusion.conditioning.base import Conditions
        from histosynth.diffusion.pipeline import GuidedConditions

        t = load_file(self.folder / f"{i}.safetensors", device=str(self.pipe.device))
        branches, use_crops = self._meta[i]
        return GuidedConditions(t["maps"], Conditions(**{k: t[k] for k in _TENSORS}), branches, use_crops)

    def fill(self, canvas: Any, t: torch.Tensor) -> None:
        """Add every window's weighted guided prediction for ``canvas.scaled`` into
        ``canvas.pred`` (and, once, the weights into ``canvas.weight``)."""
        lw, w = self.window, self.weight
        for i, batch in enumerate(self.batches):
            xs = torch.stack(
                [torch.from_numpy(np.array(canvas.scaled[:, y : y + lw, c : c + lw])) for y, c in batch]
            )
            out = self.pipe.guided_eps(xs.to(self.pipe.device), t, self._conditions(i), *self.scales)
            for (y, c), e in zip(batch, out.float().cpu().numpy(), strict=True):
                canvas.pred[:, y : y + lw, c : c + lw] += e * w
                if not self._weighed:
                    canvas.weight[y : y + lw, c : c + lw] += w
        self._weighed = True

    def remove(self) -> None:
        """Delete the kept conditions."""
        for path in self.folder.glob("*.safetensors"):
            path.unlink()
        self.folder.rmdir()
