"""The dual-conditioned latent diffusion model, as separate pieces (edm2's split).

=====================  ==============================================================
 module                 piece
=====================  ==============================================================
 ``codec``              latent codecs: KL autoencoder (diffusers), identity, whitened; scale
 ``inputs``             the maps and crops input format (:class:`CropBatch`)
 ``conditioning``       the three conditioning variants (:data:`CONDITIONINGS`)
 ``backbones``          UNet presets (:data:`BACKBONES`)
 ``denoiser``           conditioning + UNet (:class:`HistoDenoiser`)
 ``schedule``, ``loss``  noise schedule and training loss, apart from the network
 ``pipeline``           inference (:class:`HistoSynthPipeline`, :data:`SAMPLERS`)
=====================  ==============================================================

Importing this package loads torch and diffusers; the CLI imports it inside commands only.
"""

from histosynth.diffusion.backbones import BACKBONES
from histosynth.diffusion.codec import (
    CODEC_PRESETS,
    IdentityCodec,
    KLCodec,
    WhitenedCodec,
    build_codec,
    load_codec,
    measure_scale,
)
from histosynth.diffusion.conditioning import CONDITIONINGS
from histosynth.diffusion.denoiser import HistoDenoiser, build_denoiser
from histosynth.diffusion.inputs import CropBatch, make_crop_batch
from histosynth.diffusion.loss import DiffusionLoss
from histosynth.diffusion.pipeline import SAMPLERS, HistoSynthPipeline, make_scheduler
from histosynth.diffusion.schedule import NoiseSchedule

__all__ = [
    "BACKBONES",
    "CODEC_PRESETS",
    "CONDITIONINGS",
    "SAMPLERS",
    "CropBatch",
    "DiffusionLoss",
    "HistoDenoiser",
    "HistoSynthPipeline",
    "IdentityCodec",
    "KLCodec",
    "WhitenedCodec",
    "NoiseSchedule",
    "build_codec",
    "build_denoiser",
    "load_codec",
    "make_crop_batch",
    "make_scheduler",
    "measure_scale",
]
