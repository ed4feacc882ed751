"""Patch embeddings: the encoder registry and the ``embed`` stage.

* :mod:`~histosynth.embed.base` — :class:`PatchEncoder`, the interface, and
  :class:`TorchEncoder`; :mod:`~histosynth.embed.spec` — :class:`EncoderSpec`, a registry entry;
* :mod:`~histosynth.embed.encoders` — the ``ENCODERS`` registry, :func:`load_encoder` (local
  weights only) and :func:`encoder_status` for ``doctor``;
* :mod:`~histosynth.embed.weights` — where weights come from (path, registry file, opt-in hub
  cache) and safe loading (safetensors only);
* :mod:`~histosynth.embed.handcrafted`, :mod:`~histosynth.embed.cnn`,
  :mod:`~histosynth.embed.ssl`, :mod:`~histosynth.embed.foundation` — the encoders;
* :mod:`~histosynth.embed.subtiles`, :mod:`~histosynth.embed.store`,
  :mod:`~histosynth.embed.stage` — sub-tile geometry, the feature store and the stage.

Nothing heavy is imported here.
"""
