"""Train on synthetic, test on real (TSTR): DeepLabv3+ under several training sets.

Conditions (the rows of the paper's segmentation table), each trained for ``seeds`` seeds and
tested on the same held-out real split:

* ``real``: the real training split;
* ``synthetic:<variant>``: the synthetic images of one variant, with the maps they were
  conditioned on as labels;
* ``real+synthetic:<variant>@<mix>``: the real split plus ``round(mix · n_real)`` synthetic
  images of the variant (fewer when the variant has fewer), drawn by a seeded generator.

Each (condition, seed) is one journalled item (:func:`histosynth.jobs.run_items`), so an
interrupted evaluation resumes without retraining the finished ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.data.classmap import ClassMap
from histosynth.evaluate.config import TSTRConfig
from histosynth.evaluate.segmentation import Source, load_segmenter, save_segmenter, score, train_segmenter
from histosynth.evaluate.segmetrics import dice_per_class, iou_per_class, mean_score
from histosynth.jobs import run_items
from histosynth.seeding import numpy_rng

__all__ = ["Condition", "conditions", "run_tstr", "train_or_load"]


@dataclass(frozen=True)
class Condition:
    """One training set: ``train`` is "real", "synthetic" or "real+synthetic"."""

    train: str
    variant: str | None = None
    mix: float | None = None

    @property
    def name(self) -> str:
        if self.train == "real":
            return "real"
        if self.train == "synthetic":
            return f"synthetic:{self.variant}"
        return f"real+synthetic:{self.variant}@{self.mix:g}"


def conditions(variants: list[str], mixes: tuple[float, ...]) -> list[Condition]:
    """The conditions in table order: real, then per variant synthetic-only and the mixes."""
    out = [Condition("real")]
    for v in variants:
        out.append(Condition("synthetic", v))
        out += [Condition("real+synthetic", v, float(m)) for m in mixes]
    return out


def train_or_load(sources: list[Source], classes: ClassMap, cfg, seed: int, device: str, path: Path | None):
    """Train a segmenter, or load it from ``path`` when a previous run saved it there."""
    if path is not None and path.is_file():
        return load_segmenter(path, classes, cfg, device)
    seg = train_segmenter(sources, classes, cfg, seed, device)
    if path is not None:
        save_segmenter(seg, path)
    return seg


def _sources(cond: Condition, real: Source, synthetic: Mapping[str, Source], seed: int) -> list[Source]:
    if cond.train == "real":
        return [real]
    syn = synthetic[cond.variant]
    if cond.train == "synthetic":
        return [syn]
    n = min(len(syn.rows), int(round(cond.mix * len(real.rows))))
    pick = numpy_rng(seed, "tstr-mix", cond.name).choice(len(syn.rows), n, replace=False)
    return [real, Source(syn.dataset, tuple(syn.rows[i] for i in sorted(pick)))]


def run_tstr(
    real_train: Source,
    real_test: Source,
    synthetic: Mapping[str, Source],
    classes: ClassMap,
    cfg: TSTRConfig,
    folder: Path,
    seed: int = 0,
    device: str = "cpu",
    real_model: Path | None = None,
) -> dict[str, Any]:
    """Train every (condition, seed), test on ``real_test``; returns runs and the summary table.

    ``real_model``: where the real-only seed-0 model is (or will be) saved, so mask fidelity and
    TSTR share it instead of training it twice.
    """
    conds = conditions(list(synthetic), cfg.mixes)
    items = [(f"{c.name}|seed{s}", (c, s)) for c in conds for s in range(cfg.seeds)]

    def work(key: str, item: tuple[Condition, int]) -> dict[str, Any]:
        cond, s = item
        sources = _sources(cond, real_train, synthetic, seed + s)
        path = real_model if (cond.train == "real" and s == 0) else None
        seg = train_or_load(sources, classes, cfg.segmenter, seed + s, device, path)
        cm, _ = score(seg, real_test)
        return {
            "condition": cond.name, "train": cond.train, "variant": cond.variant, "mix": cond.mix, "seed": s,
            "n_real": sum(len(x.rows) for x in sources if x is real_train),
            "n_synthetic": sum(len(x.rows) for x in sources if x is not real_train),
            "iou": _nan_to_none(iou_per_class(cm)), "dice": _nan_to_none(dice_per_class(cm)),
            "miou": mean_score(iou_per_class(cm)), "mdice": mean_score(dice_per_class(cm)),
            "final_loss": seg.losses[-1] if seg.losses else None,
        }  # fmt: skip

    summary = run_items(items, work, folder / "_tstr_journal.jsonl", desc="TSTR runs")
    if not summary.ok:
        raise RuntimeError("TSTR failed: " + "; ".join(f"{r.key}: {r.error}" for r in summary.failed))
    runs = [summary.records[k].output for k, _ in items]
    return {
        "classes": classes.names,
        "test_images": len(real_test.rows),
        "runs": runs,
        "table": _table(conds, runs, classes),
    }


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def _table(conds: list[Condition], runs: list[dict[str, Any]], classes: ClassMap) -> list[dict[str, Any]]:
    """One row per condition: mean and standard deviation over seeds, per class and overall."""
    rows = []
    for c in conds:
        mine = [r for r in runs if r["condition"] == c.name]
        iou = np.array([[np.nan if v is None else v for v in r["iou"]] for r in mine], np.float64)
        miou = np.array([r["miou"] for r in mine], np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: classes absent from the test
            mean_c, std_c = np.nanmean(iou, axis=0), np.nanstd(iou, axis=0)
        rows.append({
            "condition": c.name, "train": c.train, "variant": c.variant, "mix": c.mix, "seeds": len(mine),
            "n_real": mine[0]["n_real"], "n_synthetic": mine[0]["n_synthetic"],
            "iou_mean": dict(zip(classes.names, _nan_to_none(mean_c), strict=True)),
            "iou_std": dict(zip(classes.names, _nan_to_none(std_c), strict=True)),
            "miou_mean": float(np.nanmean(miou)) if np.isfinite(miou).any() else None,
            "miou_std": float(np.nanstd(miou)) if np.isfinite(miou).any() else None,
        })  # fmt: skip
    return rows
