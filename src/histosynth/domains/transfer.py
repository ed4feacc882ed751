"""Transfer to a new lab without its annotations: DeepLabv3+ trained in lab A, tested in lab B.

Conditions, each trained for ``seeds`` seeds and tested on lab B's held-out real patches (the
maps of lab B are used only to score, never to train, except by the reference row):

* ``a-real``: lab A's annotated training patches;
* ``a-real/norm-<name>``: the same models, each lab-B test image stain-normalised to lab A's
  colours first (:mod:`histosynth.domains.normalize`, fitted on A's training images);
* ``a-real+hed-jitter``: lab A's patches with HED-jitter augmentation
  (:class:`~histosynth.domains.labs.HedJitter`);
* ``a-real+synthetic:<variant>``: lab A's patches plus synthetic lab-B images (made from A's
  maps and a few crops per class of lab B), ``mix`` synthetic images per real one;
* ``b-real``: lab B's own annotated training patches: the ceiling, not a competitor.

Every (condition, seed) is one journalled item (:func:`histosynth.jobs.run_items`), so an
interrupted run resumes without retraining the finished ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.evaluate.config import SegmenterConfig

__all__ = ["TransferConfig", "run_transfer"]


@dataclass(frozen=True)
class TransferConfig:
    """Settings of the transfer experiment (see the module notes).

    Attributes
    ----------
    source, target
        The labs (``domain`` values) trained in and tested in.
    seeds
        Segmenter seeds per condition (mean ± standard deviation over them).
    seed
        Base seed (seed ``s`` of a condition trains with ``seed + s``).
    segmenter
        The DeepLabv3+ of every condition (equal steps for all).
    jitter_scale, jitter_bias
        HED-jitter ranges (Tellez et al.'s HED-strong scale, HED-light bias).
    normalizers
        Test-time stain normalisations compared (``macenko``, ``reinhard``).
    mix
        Synthetic images added per real image.
    reference
        Also train on lab B's own annotations (the ceiling row).
    """

    source: str = "lab-A"
    target: str = "lab-B"
    seeds: int = 3
    seed: int = 0
    segmenter: SegmenterConfig = field(default_factory=lambda: SegmenterConfig(steps=300, crop=64))
    jitter_scale: float = 0.2
    jitter_bias: float = 0.05
    normalizers: tuple[str, ...] = ("macenko", "reinhard")
    mix: float = 1.0
    reference: bool = True


def _rows(ds: Any, lab: str, split: str) -> tuple[int, ...]:
    idx = ds.index
    return tuple(int(i) for i in np.flatnonzero((idx["domain"].astype(str) == lab) & (idx["split"] == split)))


def run_transfer(labs: str | Path, synthetic: Mapping[str, str | Path], folder: str | Path,
                 cfg: TransferConfig | None = None, device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Train and test every (condition, seed); returns the runs and a table of mIoU mean ± std.

    Parameters
    ----------
    labs
        A patch dataset of simulated labs (``histosynth domains``) holding both labs.
    synthetic
        Variant → synthetic patch dataset of lab-B images (all its rows are used).
    folder
        Where the journal of finished runs is kept (created).
    """
    from histosynth.artifacts import ArtifactError
    from histosynth.data.patch_dataset import PatchDataset
    from histosynth.domains.labs import HedJitter
    from histosynth.domains.normalize import make_normalizer
    from histosynth.evaluate.segmentation import Source, score, train_segmenter
    from histosynth.evaluate.segmetrics import iou_per_class, mean_score
    from histosynth.jobs import run_items
    from histosynth.seeding import numpy_rng

    cfg = cfg or TransferConfig()
    ds = PatchDataset(labs)
    if "domain" not in ds.index.columns:
        raise ArtifactError(
            f"{ds.folder / 'index.parquet'}: has no domain column (make one with histosynth domains)"
        )
    a_train, b_test = Source(ds, _rows(ds, cfg.source, "train")), Source(ds, _rows(ds, cfg.target, "test"))
    if len(a_train.rows) < 2 or len(b_test.rows) < 2:
        raise ArtifactError(f"{ds.folder}: too few patches of {cfg.source} (train) or {cfg.target} (test)")
    unlabelled_b = [ds.image(r) for r in _rows(ds, cfg.target, "train")]  # B's images, never its maps
    norms = {
        n: make_normalizer(n, (ds.image(r) for r in a_train.rows), unlabelled_b) for n in cfg.normalizers
    }
    syn = {v: PatchDataset(p) for v, p in synthetic.items()}

    def miou(seg, transform=None) -> float:
        return mean_score(iou_per_class(score(seg, b_test, transform=transform)[0]))

    def work(key: str, item: tuple[str, int]) -> dict[str, float]:
        cond, s = item
        sources, colour = [a_train], None
        if cond == "a-real+hed-jitter":
            colour = HedJitter(cfg.jitter_scale, cfg.jitter_bias)
        elif cond.startswith("a-real+synthetic:"):
            extra = syn[cond.split(":", 1)[1]]
            n = min(len(extra), int(round(cfg.mix * len(a_train.rows))))
            pick = numpy_rng(cfg.seed + s, "transfer-mix", cond).choice(len(extra), n, replace=False)
            sources = [a_train, Source(extra, tuple(sorted(int(i) for i in pick)))]
        elif cond == "b-real":
            sources = [Source(ds, _rows(ds, cfg.target, "train"))]
        seg = train_segmenter(sources, ds.classes, cfg.segmenter, cfg.seed + s, device, colour=colour)
        out = {cond: miou(seg)}
        if cond == "a-real":  # test-time normalisation reuses the lab-A models
            out.update({f"a-real/norm-{n}": miou(seg, norm) for n, norm in norms.items()})
        return out

    trained = [
        "a-real",
        "a-real+hed-jitter",
        *(f"a-real+synthetic:{v}" for v in syn),
        *(["b-real"] if cfg.reference else []),
    ]
    items = [(f"{c}|seed{s}", (c, s)) for c in trained for s in range(cfg.seeds)]
    Path(folder).mkdir(parents=True, exist_ok=True)
    summary = run_items(items, work, Path(folder) / "_transfer_journal.jsonl", desc="transfer runs")
    if not summary.ok:
        raise RuntimeError(
            "transfer runs failed: " + "; ".join(f"{r.key}: {r.error}" for r in summary.failed)
        )
    runs = [summary.records[k].output for k, _ in items]
    names = ["a-real", *(f"a-real/norm-{n}" for n in cfg.normalizers), *trained[1:]]
    table = []
    for name in names:
        values = np.array([r[name] for r in runs if name in r], np.float64)
        table.append({"condition": name, "miou": values.tolist(), "miou_mean": float(values.mean()),
                      "miou_std": float(values.std()), "seeds": len(values)})  # fmt: skip
    return {"source": cfg.source, "target": cfg.target, "train_images": len(a_train.rows),
            "test_images": len(b_test.rows), "synthetic_images": {v: len(d) for v, d in syn.items()},
            "table": table}  # fmt: skip
