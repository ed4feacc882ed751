"""A handcrafted, deterministic patch encoder: stain statistics plus texture statistics.

No weights, no training, no randomness: the same pixels give the same features on every
machine, which makes it the encoder of the offline path and of exact tests. Images are resized
to 64×64 (area averaging), then described by

* colour: RGB mean and standard deviation, optical density, and the haematoxylin, eosin and
  residual channels of Ruifrok & Johnston colour deconvolution (mean, std, 10/50/90th
  percentiles), the tissue fraction and the fractions of strongly haematoxylin-stained pixels
  (nuclei) at three levels;
* texture: gradient energy, band-pass (difference-of-Gaussians) energy at four scales for the
  grey and haematoxylin channels, structure-tensor coherence (oriented fibres), grey-level
  autocorrelation at four lags (spacing of nuclei), and block-scale heterogeneity.

Features have very different scales; the cluster stage standardises them (its default).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from histosynth.embed.base import PatchEncoder, check_images

__all__ = ["FEATURE_NAMES", "HandcraftedEncoder", "build", "tissue_fraction"]

SIZE = 64
# Ruifrok & Johnston's H&E-DAB deconvolution (the inverse of skimage's rgb_from_hed).
_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_RGB_FROM_HED[2] = np.cross(_RGB_FROM_HED[0], _RGB_FROM_HED[1])
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED / np.linalg.norm(_RGB_FROM_HED, axis=1, keepdims=True)).astype(
    np.float32
)
_LOG_ADJUST = np.float32(np.log(1e-6))
_DOG_SIGMAS = (0.5, 1.0, 2.0, 4.0)
_LAGS = (1, 2, 4, 8)
_H_LEVELS = (0.03, 0.06, 0.10)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"rgb_mean_{c}" for c in "rgb"),
    *(f"rgb_std_{c}" for c in "rgb"),
    *(f"{s}_{q}" for s in ("hema", "eosin", "resid") for q in ("mean", "std", "p10", "p50", "p90")),
    "od_mean",
    "tissue",
    *(f"hema_gt_{t}" for t in _H_LEVELS),
    "grad_mean",
    "grad_std",
    *(f"dog_grey_{s}" for s in _DOG_SIGMAS),
    *(f"dog_hema_{s}" for s in _DOG_SIGMAS),
    "coherence",
    *(f"autocorr_{lag}" for lag in _LAGS),
    "block_std",
)


def tissue_fraction(images: np.ndarray) -> np.ndarray:
    """Fraction of tissue pixels per image: coloured (chroma > 0.06) or darker than glass (grey < 0.8).

    A fixed rule rather than Otsu, so a sub-tile's answer does not depend on its neighbours.
    Channel-wise arithmetic: a reduction over the 3-long last axis is several times slower.
    """
    x = np.asarray(images)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    chroma = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)  # uint8, no overflow
    grey = r * np.float32(0.299) + g * np.float32(0.587) + b * np.float32(0.114)
    tissue = (chroma > 0.06 * 255) | (grey < np.float32(0.8 * 255))
    return tissue.mean(axis=(1, 2), dtype=np.float32)


def _resize(images: np.ndarray) -> Any:
    """Area-average (or bilinear, when enlarging) to SIZE×SIZE: a float32 (N, 3, S, S) tensor in [0, 1]."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    if (h, w) == (SIZE, SIZE):
        return x
    if h % SIZE == 0 and w % SIZE == 0:
        return F.avg_pool2d(x, (h // SIZE, w // SIZE))
    return F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=h > SIZE)


@functools.lru_cache(maxsize=16)
def _blur_matrix(sigma: float, size: int = SIZE) -> Any:
    """(size, size) matrix applying a 1-D Gaussian (truncated at 3 sigma, reflect padding)."""
    import torch

    r = max(1, int(3.0 * sigma + 0.5))
    t = np.arange(-r, r + 1)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    m = np.zeros((size, size))
    for i in range(size):
        for off, w in zip(t, k, strict=True):
            j = i + off
            j = -j if j < 0 else (2 * (size - 1) - j if j >= size else j)  # reflect, as scipy's "mirror"
            m[i, j] += w
    return torch.from_numpy(m.astype(np.float32))


def _blur(x: Any, sigma: float) -> Any:
    """Separable Gaussian blur of (N, 1, S, S) as two plain matrix products over all rows at once
    (one large GEMM each; far faster and steadier on a busy CPU than conv2d or batched matmul)."""
    n, _, h, w = x.shape
    m = _blur_matrix(float(sigma), w)
    y = x.reshape(n * h, w) @ m.T  # along x
    y = y.reshape(n, h, w).transpose(1, 2).reshape(n * w, h) @ m.T  # along y
    return y.reshape(n, w, h).transpose(1, 2).reshape(n, 1, h, w)


def _std(x: Any, dim: int) -> Any:
    """Population standard deviation (faster than ``Tensor.std`` on CPU)."""
    mean = x.mean(dim, keepdim=True)
    return ((x - mean) ** 2).mean(dim).sqrt()


def _describe(x: Any) -> np.ndarray:
    """Features of a float32 batch tensor (N, 3, 64, 64) in [0, 1]."""
    import torch

    n = len(x)
    x = x.contiguous()
    feats: list[Any] = []
    flat = x.reshape(n, 3, -1)
    feats += [flat.mean(2), _std(flat, 2)]
    od = torch.log(x.clamp_min(1e-6)) / float(_LOG_ADJUST)  # skimage's rgb2hed convention
    hed = torch.einsum("nchw,cd->ndhw", od, torch.from_numpy(_HED_FROM_RGB)).clamp_min(0).contiguous()
    hflat = hed.reshape(n, 3, -1)
    # Percentiles from the 2×2-averaged channels: a quarter of the sorting, same statistics.
    pooled = torch.nn.functional.avg_pool2d(hed, 2).reshape(n, 3, -1).sort(dim=2).values
    m = pooled.shape[2] - 1
    q = torch.stack([pooled[..., int(round(f * m))] for f in (0.1, 0.5, 0.9)], 2)  # (N, 3, 3)
    for c in range(3):
        feats += [hflat[:, c].mean(1, keepdim=True), _std(hflat[:, c], 1)[:, None], q[:, c]]
    hema = hed[:, :1]
    feats.append((-torch.log(flat.clamp_min(1 / 255))).mean((1, 2))[:, None])
    chroma = x.amax(1) - x.amin(1)
    grey = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    feats.append(((chroma > 0.06) | (grey[:, 0] < 0.8)).float().mean((1, 2))[:, None])
    feats.append(torch.stack([(hema > t).float().mean((1, 2, 3)) for t in _H_LEVELS], 1))
    gy, gx = torch.gradient(grey, dim=(2, 3))
    mag = torch.sqrt(gx**2 + gy**2)
    feats.append(torch.stack([mag.mean((1, 2, 3)), _std(mag.reshape(n, -1), 1)], 1))
    for img in (grey, hema):
        blurred = [_blur(img, s) for s in (*_DOG_SIGMAS, 2 * _DOG_SIGMAS[-1])]
        feats.append(torch.stack([(blurred[i] - blurred[i + 1]).abs().mean((1, 2, 3)) for i in range(4)], 1))
    jxx, jyy, jxy = _blur(gx * gx, 2.0), _blur(gy * gy, 2.0), _blur(gx * gy, 2.0)
    energy = jxx + jyy
    coh = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (energy + 1e-6)
    feats.append(((coh * energy).sum((1, 2, 3)) / (energy.sum((1, 2, 3)) + 1e-6))[:, None])
    centred = grey - grey.mean((2, 3), keepdim=True)
    var = (centred**2).mean((1, 2, 3)) + 1e-6
    acf = []
    for lag in _LAGS:
        ax = (centred[..., lag:] * centred[..., :-lag]).mean((1, 2, 3))
        ay = (centred[..., lag:, :] * centred[..., :-lag, :]).mean((1, 2, 3))
        acf.append(0.5 * (ax + ay) / var)
    feats.append(torch.stack(acf, 1))
    blocks = torch.nn.functional.avg_pool2d(grey, SIZE // 8)
    feats.append(_std(blocks.reshape(n, -1), 1)[:, None])
    return torch.cat([f.reshape(n, -1) for f in feats], dim=1).numpy().astype(np.float32)


class HandcraftedEncoder(PatchEncoder):
    """Stain and texture statistics (see the module docstring); deterministic, CPU, no weights."""

    name = "handcrafted"
    identity = "handcrafted-v1"
    input_size = SIZE
    dim = len(FEATURE_NAMES)

    def __init__(self, chunk: int = 512) -> None:
        self.chunk = chunk

    def encode(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        import torch

        out = np.zeros((len(images), self.dim), np.float32)
        with torch.inference_mode():
            for i in range(0, len(images), self.chunk):  # bounded memory for large batches
                out[i : i + self.chunk] = _describe(_resize(images[i : i + self.chunk]))
        return out


def build(spec: Any, weights: Any, device: str = "cpu", precision: str = "auto") -> HandcraftedEncoder:
    """Registry builder (the handcrafted encoder ignores device and precision: it is NumPy)."""
    return HandcraftedEncoder()
