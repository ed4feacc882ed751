"""Decoding a large image's latents window by window, into a file, in memory flat in its size.

The windows of the denoising loop are decoded one by one and blended with the same ramps as
their predictions (:func:`~histosynth.sample.windows.blend_weights`), so window edges leave no
seam. Windows come row by row: once a row of windows is decoded, the image rows above the next
row's top are final, so only one window-high band of weighted sums is accumulated (in a file),
normalised into the ``uint8`` image (another file), and shifted up. Every step walks the band in
chunks of about :data:`CHUNK_PX` pixels and hands the touched pages back
(:func:`~histosynth.sample.paged.release`): memory is a window and a chunk, not a band of the
image's width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from histosynth.sample.paged import open_map, release, to_tensor
from histosynth.sample.windows import blend_weights

__all__ = ["decode_tiled"]

CHUNK_PX = 1 << 18  # pixels per normalising / shifting chunk: 4 MB of float32 sums


def decode_tiled(
    pipe: Any, latents: np.ndarray, windows: list[tuple[int, int]], lw: int, ov: int, f: int,
    folder: str | Path,
) -> np.memmap:  # fmt: skip
    """The ``(H·f, W·f, 3)`` uint8 image of ``latents`` in ``folder/_canvas.u8`` (the caller
    deletes it; the band, ``folder/_canvas.f32``, too).

    Parameters
    ----------
    pipe
        The pipeline whose ``codec.decode_latents`` decodes one window.
    latents
        ``(C, H, W)`` float32 latents (a memory map).
    windows
        ``(row, col)`` window origins in latent pixels, as the denoising loop used them.
    lw, ov
        Window side and overlap in latent pixels.
    f
        The codec's downsampling factor.
    folder
        Where the image and the band go.
    """

    folder = Path(folder)
    H, W = latents.shape[-2] * f, latents.shape[-1] * f
    side = lw * f
    out = open_map(folder / "_canvas.u8", (H, W, 3), np.uint8)
    band = open_map(folder / "_canvas.f32", (side, W, 4), np.float32)
    wpx = blend_weights(side, ov * f)[..., None]
    codec = pipe.codec
    cols = max(1, CHUNK_PX // side)  # columns per chunk of the whole band's height
    tops = sorted({y for y, _ in windows})
    for j, y in enumerate(tops):  # the band holds image rows y·f .. (y + lw)·f
        for x in sorted(x for yy, x in windows if yy == y):
            z = to_tensor(latents[:, y : y + lw, x : x + lw])[None]
            release(latents)
            tile = codec.decode_latents(z.to(pipe.device, codec.dtype))
            tile = ((tile.float().clamp(-1, 1) + 1) * 127.5)[0].permute(1, 2, 0).cpu().numpy()  # (h, w, 3)
            xs = slice(x * f, (x + lw) * f)
            band[:, xs, :3] += tile * wpx
            band[:, xs, 3:] += wpx
            release(band)
        done = (tops[j + 1] if j + 1 < len(tops) else y + lw) * f - y * f  # rows no later window reaches
        rest = side - done
        for c0 in range(0, W, cols):
            cs = slice(c0, c0 + cols)
            b = band[:done, cs]
            out[y * f : y * f + done, cs] = np.clip(np.round(b[..., :3] / b[..., 3:]), 0, 255).astype(
                np.uint8
            )
            band[:rest, cs] = band[done:, cs]  # the next row of windows adds to these rows
            band[rest:, cs] = 0
            release(band, out)
    del band
    return out
