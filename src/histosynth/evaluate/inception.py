"""Inception-v3 pool3 features from a local weight file, for FID-comparable numbers.

The network is torchvision's ``inception_v3`` (built with ``aux_logits=True`` so a full
torchvision state dict loads strictly) whose classifier is replaced by the identity: the output
is the 2048-d average-pooled ``Mixed_7c`` activation ("pool3"), the layer FID uses
(Heusel et al. 2017). Weights are never downloaded: pass the path of a safetensors state dict
(a ``.pth`` checkpoint is refused with the one-line command that converts it). Inputs are scaled to [−1, 1], the range the TF-ported torchvision
weights expect (torchvision's ``transform_input`` maps ImageNet-normalised input to the same).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from histosynth.artifacts import file_sha256

__all__ = ["INPUT_SIZE", "load_inception_v3", "load_state_dict"]

INPUT_SIZE = 299


def load_state_dict(path: str | Path) -> dict:
    """Tensors of a safetensors weight file; pickle checkpoints are refused (see ``safe_io``)."""
    from histosynth.safe_io import load_safetensors

    state = load_safetensors(path)
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_inception_v3(weights: str | Path, device: str = "cpu"):
    """The pool3 feature network and the SHA-256 of its weight file.

    Returns
    -------
    (torch.nn.Module, str)
        A module mapping (N, 3, 299, 299) float images in [−1, 1] to (N, 2048) features, in
        eval mode on ``device``; and the weight file's checksum.
    """
    import torch
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    state = load_state_dict(weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise ValueError(f"{weights}: not a torchvision inception_v3 state dict ({first[:200]})") from None
    model.fc = torch.nn.Identity()
    model.AuxLogits = None  # never run in eval mode; dropping it frees its parameters
    # channels-last: oneDNN's convolutions run about twice as fast on CPU in NHWC, which is also
    # the layout images arrive in (no transposing copy).
    return model.eval().to(device, memory_format=torch.channels_last), file_sha256(weights)


def inception_features(model, images: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(N, 2048) float32 features of float images (N, 299, 299, 3) with values 0..255."""
    import torch

    x = np.asarray(images, np.float32)
    x = torch.from_numpy(x if x.flags.writeable else x.copy()).permute(
        0, 3, 1, 2
    )  # an NHWC (channels-last) view
    with torch.inference_mode():
        x = x.to(device) / 127.5 - 1.0
        return model(x).float().cpu().numpy()
