"""Decoding window by window through a band file gives the whole-canvas blend, byte for byte."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import histosynth.sample.tiled_decode as td
from histosynth.sample.paged import open_map
from histosynth.sample.windows import blend_weights, window_origins

F, LW, OV = 2, 8, 3


class _Codec:
    dtype = torch.float32

    @staticmethod
    def decode_latents(z):  # a stand-in decoder: f× nearest upsampling of tanh(z)
        return torch.tanh(z[:, :3]).repeat_interleave(F, 2).repeat_interleave(F, 3)


@pytest.mark.parametrize("chunk", [td.CHUNK_PX, 40])  # one chunk per band; many narrow ones
def test_banded_decode_equals_the_whole_canvas_blend(chunk, tmp_path, monkeypatch):
    monkeypatch.setattr(td, "CHUNK_PX", chunk)
    H, W = 21, 30
    latents = open_map(tmp_path / "lat.f32", (4, H, W))
    latents[:] = np.random.default_rng(0).normal(size=latents.shape)
    windows = [(y, x) for y in window_origins(H, LW, OV) for x in window_origins(W, LW, OV)]
    pipe = SimpleNamespace(codec=_Codec(), device="cpu")
    image = td.decode_tiled(pipe, latents, windows, LW, OV, F, tmp_path)

    acc = np.zeros((H * F, W * F, 4), np.float32)  # the blend of the whole canvas in memory
    wpx = blend_weights(LW * F, OV * F)[..., None]
    for y, x in windows:
        tile = _Codec.decode_latents(torch.from_numpy(np.array(latents[:, y : y + LW, x : x + LW]))[None])
        tile = ((tile.clamp(-1, 1) + 1) * 127.5)[0].permute(1, 2, 0).numpy()
        acc[y * F : (y + LW) * F, x * F : (x + LW) * F, :3] += tile * wpx
        acc[y * F : (y + LW) * F, x * F : (x + LW) * F, 3:] += wpx
    ref = np.clip(np.round(acc[..., :3] / acc[..., 3:]), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(image), ref)
