"""Latent codecs: images ``(B, 3, H, W)`` in [-1, 1] ↔ scaled latents ``(B, C, H/f, W/f)``.

The paper uses a frozen, pretrained VQ-f4 autoencoder (256×256×3 → 64×64×3). Pretrained
weights cannot be assumed here, so there are two kinds of codec, both diffusers models
(constructor arguments are the config; ``save_pretrained`` / ``from_pretrained`` write
``config.json`` + safetensors):

- :class:`KLCodec`, a diffusers ``AutoencoderKL``: trained by ``histosynth train-codec``
  (presets in :data:`CODEC_PRESETS`), or loaded from any local ``AutoencoderKL`` folder (a
  Stable Diffusion VAE a user has, or a pipeline folder with a ``vae/`` subfolder);
- :class:`IdentityCodec`: pixel space, optionally space-to-depth by ``patch_size`` (a
  lossless, parameter-free "f2"/"f4");
- :class:`WhitenedCodec`: space-to-depth, then each ``p×p×3`` pixel block in the principal
  axes of the training blocks, every coefficient scaled to unit variance: lossless and linear,
  measured in a second, what the CPU presets use (docs/model.md says why).

Latents are normalised as ``z = (raw - shift_factor) * scaling_factor``; both numbers are
measured from data (:func:`measure_scale`) so the diffusion sees unit-variance latents, as
Rombach et al. (2022) do with their 0.18215.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

__all__ = [
    "CODEC_PRESETS",
    "IdentityCodec",
    "KLCodec",
    "WhitenedCodec",
    "build_codec",
    "load_codec",
    "measure_scale",
]

# name -> constructor arguments; "identity*" are parameter-free, "kl-*" must be trained.
CODEC_PRESETS: dict[str, dict[str, Any]] = {
    "identity": {"kind": "identity", "patch_size": 1},
    "identity-p2": {"kind": "identity", "patch_size": 2},
    "identity-p4": {"kind": "identity", "patch_size": 4},
    # Space-to-depth + PCA whitening of the blocks (measured on the training patches).
    "pca-p2": {"kind": "pca", "patch_size": 2},
    "pca-p4": {"kind": "pca", "patch_size": 4},
    # f4, 3 latent channels: the paper's latent shape (its VQ-f4), at CPU width.
    "kl-f4-tiny": {"kind": "kl", "block_out_channels": (32, 64, 64), "layers_per_block": 1,
                   "latent_channels": 3, "norm_num_groups": 16, "mid_block_add_attention": False},
    # f4, 3 channels at LDM's width (ch 128, mult 1/2/4, 2 blocks): 256×256×3 → 64×64×3.
    "kl-f4": {"kind": "kl", "block_out_channels": (128, 256, 512), "layers_per_block": 2,
              "latent_channels": 3, "norm_num_groups": 32},
    # f8, 4 channels: the Stable Diffusion VAE's shape.
    "kl-f8": {"kind": "kl", "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2,
              "latent_channels": 4, "norm_num_groups": 32},
}  # fmt: skip


class _Normalised:
    """The codec interface on top of ``encode_raw`` / ``decode_raw``: normalised latents."""

    config: Any

    def encode_latents(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised latents ``(raw - shift) * scale`` of images in [-1, 1]."""
        shift = self.config.shift_factor or 0.0
        return (self.encode_raw(images, generator) - shift) * self.config.scaling_factor  # type: ignore[attr-defined]

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in about [-1, 1] from normalised latents."""
        shift = self.config.shift_factor or 0.0
        return self.decode_raw(latents / self.config.scaling_factor + shift)  # type: ignore[attr-defined]


class IdentityCodec(_Normalised, ModelMixin, ConfigMixin):
    """Pixel space: ``patch_size × patch_size`` space-to-depth, then shift and scale.

    Parameters
    ----------
    patch_size
        Space-to-depth factor ``f``: 3×H×W ↔ 3f²×(H/f)×(W/f), exactly invertible.
    scaling_factor, shift_factor
        Latent normalisation (see the module notes).
    """

    @register_to_config
    def __init__(self, patch_size: int = 1, scaling_factor: float = 1.0, shift_factor: float = 0.0) -> None:
        super().__init__()
        # A parameter-free module still needs a tensor for `.device` / `.dtype`.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, subfolder: str | None = None, **kwargs: Any
    ) -> IdentityCodec:
        """Rebuild from ``config.json`` alone (there are no weights; other arguments are ignored)."""
        path = Path(folder) / subfolder if subfolder else Path(folder)
        return cls.from_config(cls.load_config(path))

    @property
    def latent_channels(self) -> int:
        return 3 * self.config.patch_size**2

    @property
    def downsample(self) -> int:
        return int(self.config.patch_size)

    def encode_raw(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Un-normalised latents ``(B, 3f², H/f, W/f)``."""
        p = self.config.patch_size
        return F.pixel_unshuffle(images, p) if p > 1 else images

    def decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        return F.pixel_shuffle(latents, p) if p > 1 else latents


class WhitenedCodec(_Normalised, ModelMixin, ConfigMixin):
    """Pixel blocks in their principal axes, each coefficient at unit variance (a linear codec).

    ``p × p`` space-to-depth gives ``C = 3p²`` channels, one per pixel and colour of a block;
    :meth:`fit` measures their mean and covariance over the training patches, and a latent
    channel is the block's coordinate on one principal axis divided by that axis's standard
    deviation. Exactly invertible; the basis travels with the weights (safetensors).

    Why: in pixel space a block's mean brightness carries two thirds of the variance and its
    finest details a ten-thousandth, so under one noise level the details are drowned long
    before the layout is, and a sampler makes them in its last step or two, where a briefly
    trained model leaves the noise it cannot tell from texture (docs/model.md, "Diagnosis").
    Whitened coefficients all have unit variance, so every axis is noised and denoised over
    the whole trajectory, and an error of the model in a low-variance axis is scaled down by
    that axis's standard deviation on decoding. Guth et al. (2022, "Wavelet score-based
    generative modeling") show the same whitening of multiscale coefficients makes the
    score well conditioned and sampling need far fewer steps.

    Parameters
    ----------
    patch_size
        Space-to-depth factor ``p``.
    floor
        Variances below ``floor`` × the largest are raised to it (guards a degenerate axis,
        e.g. a constant channel, from an infinite scale).
    scaling_factor, shift_factor
        Latent normalisation on top (about 1 and 0 once fitted; see the module notes).
    """

    @register_to_config
    def __init__(
        self, patch_size: int = 4, floor: float = 1e-4, scaling_factor: float = 1.0, shift_factor: float = 0.0
    ) -> None:
        super().__init__()
        c = 3 * patch_size**2
        self.register_buffer("mean", torch.zeros(c))  # (C,) per pixel-and-colour channel
        self.register_buffer("basis", torch.eye(c))  # (C, C): column k is principal axis k
        self.register_buffer("std", torch.ones(c))  # (C,) standard deviation along each axis

    @property
    def latent_channels(self) -> int:
        return 3 * self.config.patch_size**2

    @property
    def downsample(self) -> int:
        return int(self.config.patch_size)

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        """Measure the block mean and principal axes over images ``(B, 3, H, W)`` in [-1, 1]."""
        c, n = self.latent_channels, 0
        s1 = torch.zeros(c, dtype=torch.float64)
        s2 = torch.zeros(c, c, dtype=torch.float64)
        for x in batches:
            v = F.pixel_unshuffle(x.double().cpu(), self.config.patch_size)  # (B, C, h, w)
            v = v.permute(0, 2, 3, 1).reshape(-1, c)
            n, s1, s2 = n + len(v), s1 + v.sum(0), s2 + v.T @ v
        if n < 2:
            raise ValueError("WhitenedCodec.fit needs at least two blocks")
        mean = s1 / n
        cov = (s2 - n * torch.outer(mean, mean)) / (n - 1)
        lam, vec = torch.linalg.eigh(cov)  # ascending
        lam, vec = lam.flip(0), vec.flip(1)
        # An eigenvector's sign is arbitrary: fix it (largest entry positive) so fits reproduce.
        sign = torch.sign(vec.gather(0, vec.abs().argmax(0, keepdim=True)))
        vec = vec * sign
        std = lam.clamp(min=float(lam[0]) * self.config.floor).sqrt()
        for name, value in (("mean", mean), ("basis", vec), ("std", std)):
            getattr(self, name).copy_(value.to(getattr(self, name)))

    def encode_raw(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Whitened coefficients ``(B, 3p², H/p, W/p)``."""
        v = F.pixel_unshuffle(images, self.config.patch_size) - self.mean.view(1, -1, 1, 1)
        return torch.einsum("bchw,ck->bkhw", v, self.basis) / self.std.view(1, -1, 1, 1)

    def decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        v = torch.einsum("bkhw,ck->bchw", latents * self.std.view(1, -1, 1, 1), self.basis)
        return F.pixel_shuffle(v + self.mean.view(1, -1, 1, 1), self.config.patch_size)


class KLCodec(_Normalised, AutoencoderKL):
    """A diffusers ``AutoencoderKL`` with the codec interface; loads any AutoencoderKL folder."""

    @property
    def latent_channels(self) -> int:
        return int(self.config.latent_channels)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def encode_raw(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Un-normalised latents: a posterior sample with ``generator``, else its mode."""
        dist = self.encode(images).latent_dist
        return dist.sample(generator) if generator is not None else dist.mode()

    def decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decode(latents).sample


def build_codec(name: str) -> IdentityCodec | WhitenedCodec | KLCodec:
    """A fresh codec from :data:`CODEC_PRESETS` (``kl-*`` ones have random weights, ``pca-*`` an
    identity basis until :meth:`WhitenedCodec.fit`)."""
    if name not in CODEC_PRESETS:
        raise ValueError(f"unknown codec preset {name!r}; choose from {sorted(CODEC_PRESETS)}")
    kwargs = dict(CODEC_PRESETS[name])
    kind = kwargs.pop("kind")
    if kind == "identity":
        return IdentityCodec(**kwargs)
    if kind == "pca":
        return WhitenedCodec(**kwargs)
    n = len(kwargs["block_out_channels"])
    return KLCodec(
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        scaling_factor=1.0,
        shift_factor=0.0,
        **kwargs,
    )


def load_codec(spec: str | Path) -> IdentityCodec | WhitenedCodec | KLCodec:
    """A codec from a parameter-free preset name (``identity*``, ``pca-*``) or a local folder.

    The folder may be a ``histosynth train-codec`` output (its ``codec/``), a codec written by
    ``save_pretrained``, any diffusers ``AutoencoderKL`` (``config.json`` + weights), or a
    diffusers pipeline with a ``vae/`` subfolder. Nothing is downloaded.
    """
    name = str(spec)
    if name in CODEC_PRESETS and CODEC_PRESETS[name]["kind"] != "kl":
        return build_codec(name)
    folder = Path(spec)
    for sub in ("codec", "vae"):  # a train-codec output folder, or a diffusers pipeline
        if (folder / sub / "config.json").is_file() and not (folder / "config.json").is_file():
            folder = folder / sub
            break
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(
            f"{folder}: no codec here (expected config.json of an AutoencoderKL or codec, "
            f"or one of {[k for k, v in CODEC_PRESETS.items() if v['kind'] != 'kl']})"
        )
    cls_name = json.loads(cfg_path.read_text(encoding="utf-8")).get("_class_name")
    if cls_name == "IdentityCodec":
        return IdentityCodec.from_pretrained(folder)
    if cls_name == "WhitenedCodec":
        return WhitenedCodec.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    if cls_name not in ("KLCodec", "AutoencoderKL"):
        raise ValueError(f"{cfg_path}: _class_name {cls_name!r} is not a codec (KLCodec or AutoencoderKL)")
    return KLCodec.from_pretrained(folder, local_files_only=True, use_safetensors=True)


@torch.no_grad()
def measure_scale(
    codec: Any, batches: Iterable[torch.Tensor], set_config: bool = True
) -> tuple[float, float]:
    """Measure the latent shift (mean) and scale (1 / std) over batches of images in [-1, 1].

    A codec with a ``fit`` method (:class:`WhitenedCodec`) is fitted on the batches first.

    Parameters
    ----------
    codec
        An :class:`IdentityCodec`, :class:`WhitenedCodec` or :class:`KLCodec`.
    batches
        Image tensors ``(B, 3, H, W)``; a few hundred patches are plenty.
    set_config
        Write the measured numbers into the codec's config (they then travel with it).

    Returns
    -------
    tuple
        ``(scaling_factor, shift_factor)``.
    """
    batches = list(batches)
    if hasattr(codec, "fit"):
        codec.fit(batches)
    n, s1, s2 = 0, 0.0, 0.0
    device = codec.device
    for x in batches:
        z = codec.encode_raw(x.to(device, codec.dtype)).double()
        n += z.numel()
        s1 += float(z.sum())
        s2 += float((z * z).sum())
    if n == 0:
        raise ValueError("measure_scale needs at least one image")
    mean = s1 / n
    std = max((s2 / n - mean * mean) ** 0.5, 1e-6)
    scale, shift = 1.0 / std, mean
    if set_config:
        codec.register_to_config(scaling_factor=scale, shift_factor=shift)
    return scale, shift
