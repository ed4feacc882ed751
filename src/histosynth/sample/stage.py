"""``histosynth sample``: a synthetic patch dataset from a trained model.

The output has the format of real data (:mod:`histosynth.data.patch_dataset`), so every later
stage takes it like real data, with extra index columns: ``seed``, ``map_source``,
``crop_sources`` (JSON: class id → list of crop provenance), ``sampler``, ``steps``,
``guidance_map`` and ``guidance_crops``. Every map written is exactly the map the image was
conditioned on.

Samples are made in batches, resumably (one journal entry per batch). Sample ``i`` draws its
map, its crops and its noise from generators seeded by (run seed, ``i``), so an image does not
depend on the batch size or on how many batches ran before an interruption.

Simulated labs (a crop bank of a ``histosynth domains`` dataset): ``crop_domain`` takes the
crops of one lab, or with ``"each"`` renders map ``i // K`` with the crops of lab ``i mod K``
(K labs, the same map and noise for all K, so only the crops differ); the index then gains a
``domain`` column and each crop's provenance its lab. ``reference_crops`` picks and records
crops for a model that reads none (map-only, or ``crops = "none"``): its images do not change,
and crop adherence (:mod:`histosynth.evaluate.adherence`) gets its control row.

``whole_passes`` (maps from a dataset or PNGs, ``n`` at least one pass): ``n`` is rounded up to
whole passes over the maps, so every map is rendered equally often and the synthetic set has
the class mix of the real patches it is evaluated against. Map ``i`` is map ``i mod len``: 64
images of 44 held-out maps render 20 maps twice, and that skew alone raised random-init-cnn
FD / floor from 1.14 to 1.38 for one model (docs/model.md).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from histosynth.artifacts import Kind, StageResult, prepare_output, read_manifest
from histosynth.config import config_to_dict, register_presets, without_defaults
from histosynth.data.patch_dataset import PatchDatasetWriter
from histosynth.jobs import RunSummary, run_items
from histosynth.sample import DEFAULT_SAMPLER
from histosynth.seeding import item_seed, numpy_rng

if TYPE_CHECKING:
    from histosynth.distributed.executors import Executor

__all__ = ["SampleConfig", "run", "sample_count"]


@dataclass(frozen=True)
class SampleConfig:
    """Settings of ``histosynth sample`` (see the module notes)."""

    n: int = 64
    maps: Literal["dataset", "png", "procedural"] = "dataset"
    maps_dir: str = ""
    split: str = "test"
    classes_file: str = ""
    procedural_kind: Literal["noise", "voronoi"] = "noise"
    fractions: tuple[float, ...] = ()
    crops: Literal["random", "same-slide", "nearest-colour", "none"] = "random"
    crops_per_class: int = 1
    sampler: str = DEFAULT_SAMPLER
    steps: int = 20
    guidance_map: float = 1.0
    guidance_crops: float = 1.0
    eta: float = 0.0
    batch_size: int = 8
    seed: int = 0
    # torch intra-op threads per batch; 0: every core of the machine. Fixed whatever the worker
    # count: oneDNN's convolutions round differently at 1 and 2 threads (1e-6 in the latents,
    # enough to flip a uint8 now and then), and an image must not depend on how many workers
    # made it. With --workers N on a CPU, set it to cores / N to avoid oversubscription.
    threads: int = 0
    crop_domain: str = ""  # a lab of the crop bank, "each" (see the module notes), or any lab
    reference_crops: bool = False  # record crops a model does not read (see the module notes)
    whole_passes: bool = False  # round n up to whole passes over finite maps (module notes)

    def __post_init__(self) -> None:
        if self.n < 1 or self.batch_size < 1 or self.steps < 1 or self.crops_per_class < 1:
            raise ValueError("n, batch_size, steps and crops_per_class must be at least 1")


# Fields added after synthetic datasets' ids were fixed: left out of the id at their defaults.
_ADDED = ("crop_domain", "reference_crops", "whole_passes")

register_presets(
    SampleConfig,
    {
        "paper": {"sampler": "ddim", "steps": 200, "eta": 1.0, "guidance_map": 1.0, "guidance_crops": 1.0},
        "fast": {"sampler": DEFAULT_SAMPLER, "steps": 20},
    },
)


def _map_source(cfg: SampleConfig, synth: Any):
    from histosynth.data.classmap import ClassMap
    from histosynth.sample import map_sources

    if cfg.maps == "dataset":
        return map_sources.DatasetMaps(cfg.maps_dir, cfg.split)
    if cfg.maps == "png":
        classes = ClassMap.from_json(cfg.classes_file) if cfg.classes_file else synth.classes
        return map_sources.PngMaps(cfg.maps_dir, classes)
    fractions = {i: f for i, f in enumerate(cfg.fractions) if f > 0} or None
    return map_sources.ProceduralMaps(synth.classes, synth.image_size, cfg.procedural_kind, fractions)


def _pick_crops(
    cfg: SampleConfig, bank: Any, item: Any, rng: np.random.Generator, domain: str | None
) -> list:
    if bank is None or (cfg.crops == "none" and not cfg.reference_crops):
        return []
    mode = "random" if cfg.crops == "none" else cfg.crops  # reference crops of a map-only sample
    crops = []
    for cls in (int(c) for c in np.unique(item.label)):
        colour = None
        if mode == "nearest-colour" and item.image is not None:
            colour = tuple(item.image[item.label == cls].reshape(-1, 3).mean(0))
        strategy = mode if (mode != "nearest-colour" or colour is not None) else "random"
        crops += bank.pick(
            cls, cfg.crops_per_class, rng, strategy, slide=item.slide, colour=colour, domain=domain
        )
    return crops


def sample_count(cfg: SampleConfig, n_maps: int | None, labs: int = 1) -> int:
    """How many images to make: ``cfg.n``, or with ``whole_passes`` and ``n_maps`` maps (None:
    procedural, unbounded) rounded up to whole passes of ``n_maps × labs`` images once it is at
    least one pass.

    >>> sample_count(SampleConfig(n=64, whole_passes=True), 44)
    88
    >>> sample_count(SampleConfig(n=64), 44), sample_count(SampleConfig(n=8, whole_passes=True), 44)
    (64, 8)
    """
    per_pass = (n_maps or 0) * labs
    if not cfg.whole_passes or per_pass == 0 or cfg.n < per_pass:
        return cfg.n
    return -(-cfg.n // per_pass) * per_pass


def _labs(cfg: SampleConfig, bank: Any) -> list[str]:
    """The labs samples cycle through: all of the bank's for "each", else one (or none: any lab)."""
    if cfg.crop_domain == "each":
        return bank.domains()
    return [cfg.crop_domain] if cfg.crop_domain else [""]


def _row_domain(target: str, crops: list) -> str:
    """The lab a sample was conditioned on: the asked one, else its crops' lab when they agree."""
    if target:
        return target
    labs = {json.loads(c.source).get("domain") for c in crops if c.source}
    return labs.pop() if len(labs) == 1 and None not in labs else ""


@dataclass(frozen=True)
class _SampleWork:
    """One batch's work; carries how to load the model, never the model itself."""

    checkpoint: str
    device: str
    cfg: SampleConfig
    crop_bank: str | None
    folder: str

    def context(self) -> dict[str, Any]:
        """Model, map source, crop bank and writer, loaded once per worker process."""
        from histosynth.distributed.cache import per_worker

        return per_worker(("sample", self), self._load)

    def _load(self) -> dict[str, Any]:
        parts = self.parts()
        return {**parts, "writer": PatchDatasetWriter(self.folder, parts["source"].classes)}

    def parts(self) -> dict[str, Any]:
        """The settings, model, map source and crop bank (no writer: no folder is touched)."""
        from histosynth.sample.crop_bank import CropBank
        from histosynth.sample.synthesis import Synthesizer

        synth = Synthesizer.from_checkpoint(self.checkpoint, device=self.device)
        cfg = self.cfg
        bank = None
        if self.crop_bank and ((cfg.crops != "none" and synth.uses_crops) or cfg.reference_crops):
            bank = CropBank(self.crop_bank)
        return {"cfg": cfg, "synth": synth, "source": _map_source(cfg, synth), "bank": bank}

    def __call__(self, key: str, indices: list[int]) -> int:
        return _batch_work(key, indices, self.context())


def _batch_work(key: str, indices: list[int], ctx: dict[str, Any]) -> int:
    import os

    import torch

    cfg: SampleConfig = ctx["cfg"]
    synth, source, bank, writer = ctx["synth"], ctx["source"], ctx["bank"], ctx["writer"]
    labs = _labs(cfg, bank)
    k = len(labs)  # 1 unless crop_domain is "each": then map and noise are those of sample i // k
    items, crop_lists, seeds = [], [], []
    for i in indices:
        rng = numpy_rng(cfg.seed, "sample", i // k)
        item = source.get(i // k, rng)
        if item.label.shape != (synth.image_size, synth.image_size):
            raise ValueError(
                f"{item.source}: map is {item.label.shape}, the model makes {synth.image_size} px images"
            )
        items.append(item)
        crop_lists.append(_pick_crops(cfg, bank, item, rng, labs[i % k] or None))
        seeds.append(item_seed(cfg.seed, "noise", i // k))
    reads = synth.uses_crops and cfg.crops != "none"  # reference crops are recorded, never shown
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)  # see SampleConfig.threads
    try:
        images = synth.generate_batch(
            [it.label for it in items], [c if reads else [] for c in crop_lists], seeds, cfg.guidance_map,
            cfg.guidance_crops, cfg.steps, cfg.sampler, cfg.eta,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    with_labs = bank is not None and bool(bank.domains())
    rows = []
    for i, item, crops, seed, image in zip(indices, items, crop_lists, seeds, images, strict=True):
        row = writer.write_patch(f"syn{i:06d}", image, item.label)
        sources: dict[str, list] = {}
        for c in crops:
            sources.setdefault(str(c.class_id), []).append(json.loads(c.source) if c.source else None)
        row.update(split="synthetic", slide=item.slide or "synthetic", x0=0, y0=0, size0=int(item.label.shape[0]),
                   mpp=float("nan"), seed=int(seed), map_source=item.source, crop_sources=json.dumps(sources),
                   sampler=cfg.sampler, steps=cfg.steps, guidance_map=cfg.guidance_map,
                   guidance_crops=cfg.guidance_crops)  # fmt: skip
        if with_labs:
            row["domain"] = _row_domain(labs[i % k], crops)
        rows.append(row)
    return writer.write_shard(key, rows)


def _check_labs(cfg: SampleConfig, bank: Any, folder: Any) -> None:
    """One sentence when the lab settings ask for what the crop bank cannot give."""
    if cfg.reference_crops and bank is None:
        raise ValueError("reference_crops records crops from a crop bank: give --crop-bank")
    if not cfg.crop_domain:
        return
    labs = bank.domains() if bank is not None else []
    if not labs:
        raise ValueError(
            f"{folder}: crop_domain needs a crop bank of a dataset with labs (histosynth domains)"
        )
    if cfg.crop_domain != "each" and cfg.crop_domain not in labs:
        raise ValueError(f"{folder}: no crops of lab {cfg.crop_domain!r}; its labs are {labs}")


def run(
    checkpoint: str | Path,
    out: str | Path,
    cfg: SampleConfig | None = None,
    *,
    crop_bank: str | Path | None = None,
    device: str = "cpu",
    executor: Executor | None = None,
    overwrite: bool = False,
) -> StageResult:
    """Write (or resume) a synthetic patch dataset.

    >>> cfg = SampleConfig(n=16, maps_dir="dataset")
    >>> result = run("train/tokens", "synthetic", cfg, crop_bank="crop-bank")   # doctest: +SKIP

    Parameters
    ----------
    checkpoint
        A ``histosynth train`` output, checkpoint or pipeline folder.
    out
        The synthetic dataset folder.
    cfg
        Sampling settings (default :class:`SampleConfig`).
    crop_bank
        A crop bank folder (needed unless ``cfg.crops == "none"`` or the model reads no crops).
    device
        Where the model runs.
    executor
        Where batches run (:mod:`histosynth.distributed.executors`; default: here). Each
        worker loads the model once; images depend only on (seed, sample index), so the
        dataset is the same whichever executor and worker count made it.
    overwrite
        Replace a folder of another configuration.

    Returns
    -------
    StageResult
        The folder, its manifest (``None`` when a batch failed: re-run to finish) and the
        outcome per batch.
    """
    from histosynth.distributed.cache import remember

    cfg = cfg or SampleConfig()

    work = _SampleWork(str(checkpoint), device, cfg, str(crop_bank) if crop_bank else None, "")
    ctx = work.parts()
    synth, bank, source = ctx["synth"], ctx["bank"], ctx["source"]
    if bank is None and cfg.crops != "none" and synth.uses_crops:
        raise ValueError(f"{checkpoint}: this model takes crops; give --crop-bank or --set crops=none")
    _check_labs(cfg, bank, crop_bank)
    # batch_size and threads change how work is split, never the images: not in the artefact id.
    config = {k: v for k, v in config_to_dict(cfg).items() if k not in ("batch_size", "threads")}
    config = without_defaults(config, cfg, _ADDED)
    config["conditioning"] = synth.conditioning
    inputs = {"model": synth.source}
    if bank is not None:
        inputs["crop_bank"] = bank.id
    if cfg.maps == "dataset":
        inputs["maps"] = source.ds.id
    claim = prepare_output(out, Kind.PATCH_DATASET, config, inputs, overwrite=overwrite)
    if claim.complete:
        return StageResult(claim.folder, read_manifest(claim.folder), RunSummary.recorded(claim.folder))
    work = dataclasses.replace(work, folder=str(claim.folder))
    writer = PatchDatasetWriter(claim.folder, source.classes)
    remember(("sample", work), {**ctx, "writer": writer})  # batches run here reuse this model
    n = sample_count(cfg, len(source) if cfg.maps != "procedural" else None, len(_labs(cfg, bank)))
    batches = [list(range(s, min(s + cfg.batch_size, n))) for s in range(0, n, cfg.batch_size)]
    # Keys name the samples, not the batch number, so a resumed run with the same batch size
    # finds its finished batches.
    items = [(f"samples-{b[0]:06d}-{b[-1]:06d}", b) for b in batches]
    summary = run_items(items, work, claim.folder, desc="sample", executor=executor)
    manifest = None
    if summary.ok:
        model_manifest = Path(synth.source).parent / "manifest.json"
        extra = (
            {"model_manifest": read_manifest(model_manifest.parent)["id"]} if model_manifest.is_file() else {}
        )
        manifest = writer.finalize([k for k, _ in items], config, inputs, synthetic=True, **extra)
    return StageResult(claim.folder, manifest, summary)
