"""The interface every patch encoder offers, and the torch-backed implementation most use.

Every encoder turns RGB uint8 images ``(N, H, W, 3)`` into float32 features ``(N, dim)`` and
does its own resizing and normalisation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

__all__ = ["PatchEncoder", "TorchEncoder", "check_images"]


class PatchEncoder(ABC):
    """The interface every encoder offers.

    Attributes
    ----------
    name
        Registry name.
    dim
        Feature dimension.
    identity
        What produced the features: ``"<name>:sha256-<16 hex>"`` for weights, else a version and
        seed (``"handcrafted-v1"``, ``"random-init-cnn-v1-seed0"``).
    input_size
        Side, in pixels, that images are resized to before encoding.
    dtype
        Compute precision (``"float32"``, ``"bfloat16"``, ...); features are always float32.
    """

    name: str
    dim: int
    identity: str
    input_size: int
    dtype: str = "float32"
    device: str = "cpu"
    weights_sha256: str | None = None
    weights_path: str | None = None

    @abstractmethod
    def encode(self, images: np.ndarray) -> np.ndarray:
        """Features ``(N, dim)`` float32 of RGB uint8 images ``(N, H, W, 3)``."""

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for manifests."""
        return {
            "name": self.name,
            "dim": self.dim,
            "identity": self.identity,
            "input_size": self.input_size,
            "dtype": self.dtype,
            "weights": self.weights_path,
            "weights_sha256": self.weights_sha256,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dim={self.dim}, identity={self.identity!r})"


def check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    return images


class TorchEncoder(PatchEncoder):
    """An encoder backed by a torch module: resize, normalise, forward, pool.

    Parameters
    ----------
    name, dim, identity, input_size
        See :class:`PatchEncoder`.
    module
        The network; ``forward(module, x)`` maps a normalised ``(N, 3, S, S)`` batch to ``(N, dim)``.
    mean, std
        Per-channel normalisation of images scaled to [0, 1].
    device
        Torch device string.
    precision
        ``"auto"`` (bfloat16 autocast on CUDA, float32 elsewhere), ``"float32"``, ``"bfloat16"``
        or ``"float16"``.
    forward
        Pooling function; default ``module(x)``.
    """

    def __init__(self, name: str, module: Any, dim: int, identity: str, input_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...], device: str = "cpu",
                 precision: str = "auto", forward: Any = None) -> None:  # fmt: skip
        import torch

        self.name, self.dim, self.identity, self.input_size = name, dim, identity, input_size
        self.device = str(device)
        self.module = module.to(self.device).eval()
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        if precision == "auto":
            precision = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.dtype = precision
        self._forward = forward

    def preprocess(self, images: Any) -> Any:
        """uint8 ``(N, H, W, 3)`` tensor or array → normalised float ``(N, 3, S, S)`` on the device."""
        import torch
        import torch.nn.functional as F

        x = torch.as_tensor(images).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.input_size, self.input_size):
            shrink = x.shape[-1] > self.input_size
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=shrink)  # fmt: skip
        return (x - self.mean) / self.std

    def encode_tensor(self, images: Any) -> Any:
        """Features of a uint8 image batch (tensor or array) as a float32 CPU tensor."""
        import torch

        with torch.inference_mode():
            x = self.preprocess(images)
            enabled = self.dtype in ("bfloat16", "float16")
            dtype = torch.bfloat16 if self.dtype == "bfloat16" else torch.float16
            device_type = "cuda" if self.device.startswith("cuda") else "cpu"
            with torch.autocast(device_type=device_type, dtype=dtype, enabled=enabled):
                out = self._forward(self.module, x) if self._forward is not None else self.module(x)
            return out.float().cpu()

    def encode(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_tensor(images).numpy()
