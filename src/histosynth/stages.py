"""Every stage of the pipeline, by its command's name: one function of one shape.

A stage is ``run(inputs, out, cfg=None, *, overwrite=False, ...) -> StageResult``: the
artefacts it reads, the folder it writes, its config (a frozen dataclass, its defaults when
``None``), then keyword options, among them ``executor`` where the stage's items can run in
other processes or on a cluster. It returns a :class:`~histosynth.artifacts.StageResult`
(folder, manifest, summary; every failure is in ``summary.failed``) and prints nothing but
progress bars. A command of the command line parses its options, calls the stage and prints
what it returned; the demo and a Python user call the same functions:

>>> from histosynth.stages import STAGES
>>> STAGES.names()  # doctest: +NORMALIZE_WHITESPACE
['tile', 'dataset', 'domains', 'embed', 'cluster', 'crop-bank', 'train-codec', 'train', 'sample', 'sample-large',
 'evaluate', 'report']
>>> STAGES.get("tile").__module__
'histosynth.wsi.tile_stage'

Listing the stages imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from histosynth.registry import Registry

__all__ = ["STAGES"]

STAGES: Registry[Callable[..., Any]] = Registry("stage")
for _name, _where, _help in (
    ("tile", "wsi.tile_stage", "slides → tiles table (level-0 coords, mpp, tissue, split), QC pictures"),
    ("dataset", "data.build", "tiles + a label set → patch dataset (images, maps, index)"),
    (
        "domains",
        "domains.stage",
        "patch dataset → the same patches re-stained and re-scanned as simulated labs",
    ),
    ("embed", "embed.stage", "tiles → sub-tile features of a registered encoder"),
    ("cluster", "cluster.stage", "embeddings → tissue-type clusters, pseudo-map grids, HTML report"),
    ("crop-bank", "sample.crop_bank", "patch dataset → exemplar crops per class, with provenance"),
    ("train-codec", "train.codec", "patch dataset → a KL autoencoder (latent codec)"),
    ("train", "train.loop", "patch dataset → the map + crop conditioned diffusion model"),
    ("sample", "sample.stage", "model + maps + crop bank → synthetic patch dataset"),
    ("sample-large", "sample.large", "model + crop bank → one large image, its labels and regions"),
    ("evaluate", "evaluate.suite", "synthetic datasets vs one real dataset → metrics.json"),
    ("report", "report.page", "an evaluation → one self-contained HTML page"),
):
    STAGES.add(_name, f"histosynth.{_where}:run", help=_help)
