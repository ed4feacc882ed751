"""Training: the diffusion model (``histosynth train``) and the latent codec (``train-codec``).

>>> from histosynth.config import build_config
>>> from histosynth.train import TrainConfig
>>> from histosynth.train.loop import run
>>> cfg = build_config(TrainConfig, preset="cpu-tiny", overrides=["run.steps=100"])
>>> result = run("datasets/cmu", "runs/cmu", cfg)           # doctest: +SKIP
>>> result.summary.finished, result.folder / "model"         # doctest: +SKIP

Names are imported on first use: the configs load without torch.
"""

from __future__ import annotations

from histosynth.registry import lazy_getattr

__all__ = ["CodecTrainConfig", "TrainConfig", "TrainSummary"]

_WHERE = {
    "CodecTrainConfig": "histosynth.train.codec",
    "TrainConfig": "histosynth.train.config",
    "TrainSummary": "histosynth.train.skeleton",
}

__getattr__ = lazy_getattr(__name__, _WHERE)
