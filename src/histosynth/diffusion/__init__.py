"""The dual-conditioned latent diffusion model, as separate pieces (edm2's split).

=====================  ==============================================================
 module                 piece
=====================  ==============================================================
 ``codec``              latent codecs: KL autoencoder (diffusers), identity, whitened; scale
 ``inputs``             the maps and crops input format (:class:`CropBatch`)
 ``conditioning``       the three conditioning variants (:data:`CONDITIONINGS`)
 ``backbones``          backbone presets (:data:`BACKBONES`) and families (:data:`FAMILIES`)
 ``denoiser``           conditioning + backbone: UNet (:class:`HistoDenoiser`), DiT (:class:`DiTDenoiser`)
 ``dit``                the DiT-style transformer (adaLN-zero, cross-attention to crop tokens)
 ``schedule``, ``loss``  noise schedule and training loss, apart from the network
 ``pipeline``           inference (:class:`HistoSynthPipeline`, :data:`SAMPLERS`)
=====================  ==============================================================

Names are imported on first use: the name tables (:data:`CONDITIONINGS`, :data:`BACKBONES`, :data:`FAMILIES`)
load without torch, so the command line builds its choices from them; everything else
loads torch and diffusers.
"""

from __future__ import annotations

from histosynth.registry import lazy_getattr

__all__ = [
    "BACKBONES",
    "CODEC_PRESETS",
    "CONDITIONINGS",
    "SAMPLERS",
    "FAMILIES",
    "CropBatch",
    "DiTDenoiser",
    "Denoiser",
    "DiffusionLoss",
    "HistoDenoiser",
    "HistoSynthPipeline",
    "IdentityCodec",
    "KLCodec",
    "NoiseSchedule",
    "WhitenedCodec",
    "build_codec",
    "build_denoiser",
    "load_codec",
    "make_crop_batch",
    "make_scheduler",
    "measure_scale",
]

_WHERE = {
    "BACKBONES": "backbones",
    "CODEC_PRESETS": "codec",
    "CONDITIONINGS": "conditioning",
    "SAMPLERS": "pipeline",
    "FAMILIES": "backbones",
    "CropBatch": "inputs",
    "DiTDenoiser": "denoiser",
    "Denoiser": "denoiser",
    "DiffusionLoss": "loss",
    "HistoDenoiser": "denoiser",
    "HistoSynthPipeline": "pipeline",
    "IdentityCodec": "codec",
    "KLCodec": "codec",
    "WhitenedCodec": "codec",
    "NoiseSchedule": "schedule",
    "build_codec": "codec",
    "build_denoiser": "denoiser",
    "load_codec": "codec",
    "make_crop_batch": "inputs",
    "make_scheduler": "pipeline",
    "measure_scale": "codec",
}

__getattr__ = lazy_getattr(__name__, {name: f"{__name__}.{module}" for name, module in _WHERE.items()})
