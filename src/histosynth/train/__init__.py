"""Training: the diffusion model (``histosynth train``) and the latent codec (``train-codec``).

>>> from histosynth.config import build_config
>>> from histosynth.train import TrainConfig, train
>>> cfg = build_config(TrainConfig, preset="cpu-tiny", overrides=["run.steps=100"])
>>> result = train(cfg, "datasets/cmu", "runs/cmu")       # doctest: +SKIP
"""

from histosynth.train.codec import CodecTrainConfig, train_codec
from histosynth.train.config import TrainConfig
from histosynth.train.loop import TrainResult, train

__all__ = ["CodecTrainConfig", "TrainConfig", "TrainResult", "train", "train_codec"]
