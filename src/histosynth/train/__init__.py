"""Training: the diffusion model (``histosynth train``) and the latent codec (``train-codec``).

>>> from histosynth.config import build_config
>>> from histosynth.train import TrainConfig, train
>>> cfg = build_config(TrainConfig, preset="cpu-tiny", overrides=["run.steps=100"])
>>> result = train(cfg, "datasets/cmu", "runs/cmu")       # doctest: +SKIP

Names are imported on first use: the configs load without torch.
"""

from __future__ import annotations

from histosynth.registry import lazy_getattr

__all__ = ["CodecTrainConfig", "TrainConfig", "TrainResult", "train", "train_codec"]

_WHERE = {
    "CodecTrainConfig": "histosynth.train.codec",
    "TrainConfig": "histosynth.train.config",
    "TrainResult": "histosynth.train.loop",
    "train": "histosynth.train.loop",
    "train_codec": "histosynth.train.codec",
}

__getattr__ = lazy_getattr(__name__, _WHERE)
