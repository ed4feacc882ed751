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

Each window goes through the networks on its own (a batch of one), its conditions too: batched
float math rounds differently with the batch size (by ~1e-6 on CPU), which the sampler carries
into the image, so the image depends on the seed only, not on ``batch``. On CPU this costs
nothing for the 48-channel models and ~20 % for a 3-channel toy (measured with the ``test``
UNet); ``batch`` sets how many windows share a conditions file and a canvas read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from histosynth.sample.paged import release, to_tensor
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
        Windows whose conditions share a file and whose latents are read together (memory ∝
        this, not the image; the image does not depend on it).
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
        self._meta: list[list[tuple[int, bool]]] = []  # per batch, per window: branches, use_crops
        for i, b in enumerate(self.batches):
            tensors, meta = {}, []
            for j, origin in enumerate(b):
                gc = self._prepare(label, origin, crops)
                parts = {"maps": gc.maps, **{k: getattr(gc.conditions, k) for k in _TENSORS}}
                tensors.update({f"{j}.{k}": _own(v) for k, v in parts.items()})
                meta.append((gc.branches, gc.use_crops))
            release(label)  # the map's pages this batch read: memory stays one batch's
            save_file(tensors, self.folder / f"{i}.safetensors")
            self._meta.append(meta)
        self._weighed = False

    def _prepare(self, label: np.ndarray, origin: tuple[int, int], crops: dict[int, list] | None) -> Any:
        """The guidance conditions of one window, without autograd (a graph kept per window held
        the conditioning encoders' activations of every window, so memory grew with the image).
        The window map is kept as uint8 only: once the conditions exist, the guided prediction
        reads nothing else."""
        f, lw = int(self.pipe.denoiser.config.downsample), self.window
        y, x = origin
        with torch.inference_mode():
            wmap = to_tensor(label[y * f : (y + lw) * f, x * f : (x + lw) * f])[None]
            wcrops = None
            if crops is not None:
                wcrops = [[c for cls in np.unique(wmap.numpy()) for c in crops.get(int(cls), [])]]
            gc = self.pipe.prepare_conditions(wmap.to(self.pipe.device), wcrops, *self.scales)
        gc.maps = wmap
        return gc

    def _conditions(self, i: int) -> list[Any]:
        """The conditions of batch ``i``'s windows, read back from its file."""
        from safetensors.torch import load_file

        from histosynth.diffusion.conditioning.base import Conditions
        from histosynth.diffusion.pipeline import GuidedConditions

        # Fresh copies: a tensor read from the file sits at an offset set by the other windows'
        # tensors, and the networks' vector kernels round differently at other alignments.
        t = {
            k: v.clone()
            for k, v in load_file(self.folder / f"{i}.safetensors", device=str(self.pipe.device)).items()
        }
        return [
            GuidedConditions(
                t[f"{j}.maps"], Conditions(**{k: t[f"{j}.{k}"] for k in _TENSORS}), branches, crops
            )
            for j, (branches, crops) in enumerate(self._meta[i])
        ]

    def fill(self, canvas: Any, t: torch.Tensor) -> None:
        """Add every window's weighted guided prediction for ``canvas.scaled`` into
        ``canvas.pred`` (and, once, the weights into ``canvas.weight``)."""
        lw, w = self.window, self.weight
        for i, batch in enumerate(self.batches):
            xs = [to_tensor(canvas.scaled[:, y : y + lw, c : c + lw]) for y, c in batch]
            for (y, c), x, gc in zip(batch, xs, self._conditions(i), strict=True):
                e = self.pipe.guided_eps(x[None].to(self.pipe.device), t, gc, *self.scales)
                canvas.pred[:, y : y + lw, c : c + lw] += e[0].float().cpu().numpy() * w
                if not self._weighed:
                    canvas.weight[y : y + lw, c : c + lw] += w
            canvas.release()
        self._weighed = True

    def remove(self) -> None:
        """Delete the kept conditions."""
        for path in self.folder.glob("*.safetensors"):
            path.unlink()
        self.folder.rmdir()


def _own(t: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy with its own storage: windows' conditions may share one (the null
    token of a model run without crops), which safetensors refuses to save twice."""
    return t.detach().cpu().clone(memory_format=torch.contiguous_format)
