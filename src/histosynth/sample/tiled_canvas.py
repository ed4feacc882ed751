"""The latent canvas of a large image on disk, stepped block by block: memory flat in its size.

A whole-canvas sampler step holds several canvases at once (the latents, the scaled input,
the blended prediction and its weights, the solver's history of earlier predictions, the next
latents), so memory grows with the image. Here each of them is a memory-mapped file in the
output folder, and every step walks the canvas in square blocks of ``block`` latent pixels:

1. each block's latents are scaled for the model (``scheduler.scale_model_input``) into the
   *scaled* canvas, which the model's windows then read;
2. the caller's ``fill(canvas, t)`` writes the weighted sum of the windows' predictions into
   ``pred`` and their summed weights into ``weight``;
3. each block is stepped with its prediction ``pred / weight`` by the diffusers scheduler.

Sampler steps are elementwise (DDIM, DPM-Solver++, UniPC and Euler combine the latents and
predictions of a pixel with coefficients of the step only), so stepping block by block gives the
numbers of stepping the whole canvas. The scheduler's own state is shared by all blocks except
its canvas-sized tensors (a multistep solver's earlier predictions, UniPC's last sample): those
are kept per block in files beside the canvas and swapped in around each block's step
(:class:`_Spill`), so one scheduler object serves every block. The initial noise, and any noise a
stochastic sampler adds, is drawn per block from a generator seeded by (run seed, block, draw
number): the image depends on the seed and the block size, not on the order of the work, and
no generator is kept per block (one per block would be ~5 KB each, growing with the image).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histosynth.sample.paged import open_map, release, to_tensor
from histosynth.seeding import item_seed

__all__ = ["TiledCanvas"]


class TiledCanvas:
    """Latents ``(1, C, H, W)`` in memory-mapped files under ``folder``, stepped in blocks.

    Parameters
    ----------
    folder
        Where the canvas files go (``_canvas-*.f32``; :meth:`remove` deletes them).
    shape
        ``(1, C, H, W)`` of the latents.
    seed
        Seeds each block's noise generator.
    block
        Block side in latent pixels (memory per block ∝ ``C · block²``).
    device
        Where the scheduler's arithmetic runs.

    Attributes
    ----------
    x, scaled, pred
        ``(C, H, W)`` float32 memory maps: the latents, their scaled copy the model reads (``x``
        itself for samplers that do not scale), and the weighted sum of the windows' predictions.
    weight
        ``(H, W)`` float32 memory map: the summed window weights per latent pixel.
    """

    def __init__(self, folder: str | Path, shape: tuple[int, ...], seed: int, block: int = 64,
                 device: Any = "cpu") -> None:  # fmt: skip
        _, self.C, self.H, self.W = (int(v) for v in shape)
        self.folder, self.device = Path(folder), device
        self.x = self._map("x", (self.C, self.H, self.W))
        self.scaled = self.x  # its own file once a sampler scales its input (Euler does; DDIM, DPM do not)
        self.pred = self._map("pred", (self.C, self.H, self.W))
        self.weight = self._map("weight", (self.H, self.W))
        self.blocks = [(r, c) for r in range(0, self.H, block) for c in range(0, self.W, block)]
        self.block = block
        self.seed = seed
        self.draws = np.zeros(len(self.blocks), np.int64)  # noise draws made per block so far
        self.spill = _Spill(self)

    def _map(self, name: str, shape: tuple[int, ...]) -> np.memmap:
        return open_map(self.folder / f"_canvas-{name}.f32", shape)

    def release(self) -> None:
        """Hand the touched pages of every canvas file back (see :mod:`histosynth.sample.paged`):
        called after each block, so the resident part of the files is one block's."""
        release(self.x, self.scaled, self.pred, self.weight, *self.spill.maps.values())

    def region(self, i: int) -> tuple[slice, slice]:
        """Rows and columns of block ``i``."""
        r, c = self.blocks[i]
        return slice(r, min(r + self.block, self.H)), slice(c, min(c + self.block, self.W))

    def read(self, arr: np.memmap, i: int) -> torch.Tensor:
        """Block ``i`` of a ``(C, H, W)`` map as a ``(1, C, h, w)`` tensor on the device."""
        rows, cols = self.region(i)
        return to_tensor(arr[:, rows, cols])[None].to(self.device)

    def write(self, arr: np.memmap, i: int, value: torch.Tensor) -> None:
        rows, cols = self.region(i)
        arr[:, rows, cols] = value[0].float().cpu().numpy()

    def _noise(self, i: int) -> torch.Tensor:
        rows, cols = self.region(i)
        shape = (1, self.C, rows.stop - rows.start, cols.stop - cols.start)
        r, c = self.blocks[i]
        gen = torch.Generator().manual_seed(item_seed(self.seed, "large-noise", r, c, int(self.draws[i])))
        self.draws[i] += 1
        return torch.randn(shape, generator=gen).to(self.device)

    def start(self, scheduler: Any) -> None:
        """Fill the canvas with each block's initial noise, scaled as the scheduler wants."""
        for i in range(len(self.blocks)):
            self.write(self.x, i, self._noise(i) * scheduler.init_noise_sigma)
            self.release()

    def step(self, scheduler: Any, t: torch.Tensor, fill: Callable[[TiledCanvas, torch.Tensor], None],
             step_kwargs: dict[str, Any], noisy: bool) -> None:  # fmt: skip
        """One sampler step of the whole canvas (see the module notes)."""
        before = self.spill.snapshot(scheduler)
        for i in range(len(self.blocks)):
            self.spill.restore(scheduler, before, i)
            x = self.read(self.x, i)
            scaled = scheduler.scale_model_input(x, t)
            if scaled is x:  # the input as it is, at every block of this step: read x itself
                self.scaled = self.x
                break
            if self.scaled is self.x:
                self.scaled = self._map("scaled", (self.C, self.H, self.W))
            self.write(self.scaled, i, scaled)
            self.release()
        before = self.spill.rebase(scheduler, before)  # scale_model_input may start the step count
        for i in range(len(self.blocks)):  # block by block: zeroing it whole would touch every page
            rows, cols = self.region(i)
            self.pred[:, rows, cols] = 0
            self.release()
        fill(self, t)
        after = before
        for i in range(len(self.blocks)):
            self.spill.restore(scheduler, before, i)
            rows, cols = self.region(i)
            pred = self.read(self.pred, i) / to_tensor(self.weight[rows, cols]).to(self.device)
            kwargs = {**step_kwargs, "variance_noise": self._noise(i)} if noisy else step_kwargs
            self.write(self.x, i, scheduler.step(pred, t, self.read(self.x, i), **kwargs).prev_sample)
            after = self.spill.save(scheduler, i)
            self.release()
        self.spill.restore(scheduler, after, None)

    def remove(self) -> None:
        """Delete the canvas files (the latents too: call after decoding)."""
        for path in self.folder.glob("_canvas-*.f32"):
            path.unlink(missing_ok=True)


class _Spilled:
    """Stands in a scheduler's attribute for a canvas-sized tensor kept on disk."""

    def __init__(self, key: str) -> None:
        self.key = key


class _Spill:
    """A scheduler's canvas-sized tensors, per block, in files; the rest of its state shared."""

    def __init__(self, canvas: TiledCanvas) -> None:
        self.canvas = canvas
        self.maps: dict[str, np.memmap] = {}

    @staticmethod
    def snapshot(scheduler: Any) -> dict[str, Any]:
        """The scheduler's state as it is (lists copied, so a step's shifting leaves it alone)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(scheduler).items()}

    def restore(self, scheduler: Any, state: dict[str, Any], block: int | None) -> None:
        """Put ``state`` back; with a block, its spilled tensors are read in for that block."""
        for key, value in state.items():
            if isinstance(value, list):
                value = [self._load(v, block) for v in value]
            else:
                value = self._load(value, block)
            setattr(scheduler, key, value)

    def rebase(self, scheduler: Any, spilled: dict[str, Any]) -> dict[str, Any]:
        """The scheduler's state now, with the spilled entries of ``spilled`` (not the tensors
        of the block last read in)."""
        now = self.snapshot(scheduler)
        for key, value in spilled.items():
            held = value if isinstance(value, list) else [value]
            if any(isinstance(v, _Spilled) for v in held):
                now[key] = value
        return now

    def _load(self, value: Any, block: int | None) -> Any:
        if not isinstance(value, _Spilled) or block is None:
            return value
        return self.canvas.read(self.maps[value.key], block)

    def save(self, scheduler: Any, block: int) -> dict[str, Any]:
        """Write block ``block``'s canvas-sized tensors to their files; the state with markers."""
        rows, cols = self.canvas.region(block)
        shape = (1, self.canvas.C, rows.stop - rows.start, cols.stop - cols.start)

        def out(key: str, v: Any) -> Any:
            if not (isinstance(v, torch.Tensor) and tuple(v.shape) == shape):
                return v
            if key not in self.maps:
                self.maps[key] = self.canvas._map(
                    f"state-{key}", (self.canvas.C, self.canvas.H, self.canvas.W)
                )
            self.canvas.write(self.maps[key], block, v)
            return _Spilled(key)

        state = {}
        for key, value in vars(scheduler).items():
            if isinstance(value, list):
                state[key] = [out(f"{key}.{j}", v) for j, v in enumerate(value)]
            else:
                state[key] = out(key, value)
        return state
