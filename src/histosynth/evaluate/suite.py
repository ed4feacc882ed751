"""``evaluate``: every metric of synthetic variants against one real dataset → ``metrics.json``.

Steps (each timed into ``metrics.json``):

1. features of real-train, real-held-out and each variant under every detector (cached);
2. distribution metrics per (variant, detector): FD with bootstrap interval, KID, PRDC; the
   held-out real images are scored the same way as the pseudo-variant ``real-heldout``; when
   the real data holds simulated labs, per-domain FD and crop adherence
   (:mod:`histosynth.evaluate.domains`, :mod:`histosynth.evaluate.adherence`);
   a classifier two-sample test (C2ST) of each variant against the held-out real patches
   whose maps it was made from (the floor: held-out against training patches); the speckle
   ratio (high-frequency energy over that of the held-out patches);
3. per-class FD on pure class tiles;
4. memorisation: nearest training image per synthetic image (detectors and pixels), crop copying;
5. a segmenter trained on real data: mask fidelity on each variant and on held-out real images;
6. hallucination flags;
7. TSTR.

``metrics.json`` holds per variant a flat dict of ``<metric>_<detector>`` keys (detector-free
metrics such as ``mask_miou`` carry no suffix), plus counts, detector identities, the
preprocessing policy, versions, timing, and the listed offenders and flags.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import (
    Kind,
    StageResult,
    atomic_write_json,
    package_versions,
    prepare_output,
    read_manifest,
    write_manifest,
)
from histosynth.config import config_to_dict
from histosynth.evaluate.config import EvaluateConfig
from histosynth.evaluate.data import REAL_HELDOUT, EvalData, load_eval_data
from histosynth.evaluate.detectors import Detector, build_detector
from histosynth.evaluate.features import (
    FeatureCache,
    Features,
    extract,
    image_set,
    preprocessing_spec,
    read_png_rgb,
)
from histosynth.evaluate.folders import has_maps
from histosynth.evaluate.keys import slug
from histosynth.jobs import RunSummary
from histosynth.model_card import record_evaluation

__all__ = ["METRICS_FILE", "read_metrics", "run", "slug"]

METRICS_FILE = "metrics.json"
PIXELS = "pixels-32"


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(
    synthetic: Mapping[str, str | Path],
    out: str | Path,
    cfg: EvaluateConfig | None = None,
    *,
    real: str | Path,
    overwrite: bool = False,
) -> StageResult:
    """Evaluate each synthetic variant against ``real``; write ``out/metrics.json``.

    >>> result = run({"tokens": "syn/tokens"}, "eval", real="data/real")   # doctest: +SKIP
    >>> read_metrics(result.folder)["metrics"]["tokens"]["fd_handcrafted"]  # doctest: +SKIP

    Parameters
    ----------
    synthetic
        Variant name → synthetic patch dataset folder, or a plain folder of PNG images (the
        metrics that need label maps are then skipped for it, with a sentence in ``notes``).
    out
        The output folder (an artefact of kind ``metrics``); a finished one is returned as is.
    cfg
        The evaluation config (default :class:`~histosynth.evaluate.config.EvaluateConfig`).
    real
        A patch dataset folder (its ``cfg.real_split`` rows are the training data), or a plain
        folder of PNG images (a seeded ``cfg.heldout_fraction`` of them is held out).
    overwrite
        Replace an output folder that holds another evaluation.

    Returns
    -------
    StageResult
        The folder and its manifest; :func:`read_metrics` reads what was measured.
    """
    cfg = cfg or EvaluateConfig()
    data = load_eval_data(real, synthetic, cfg)
    config = config_to_dict(cfg)
    inputs = {"real": data.real.id, **{f"synthetic:{k}": v.id for k, v in data.synthetic.items()}}
    claim = prepare_output(out, Kind.METRICS, config, inputs, overwrite=overwrite)
    if claim.complete:
        return StageResult(claim.folder, read_manifest(claim.folder, Kind.METRICS), RunSummary())
    folder, timer, device = claim.folder, _Timer(), _device(cfg.device)
    with timer("detectors"):
        detectors = {n: build_detector(n, cfg.weights_for(n), device, cfg.registry_file, cfg.allow_hub)
                     for n in dict.fromkeys([*cfg.detectors, *_memo_names(cfg)])}  # fmt: skip
    cache = FeatureCache(cfg.cache_dir or folder / "features")
    variants = list(data.synthetic)
    sets = {
        "train": image_set(data.real, data.train_rows),
        REAL_HELDOUT: image_set(data.real, data.heldout_rows),
    }
    sets.update({v: image_set(data.synthetic[v], data.synthetic_rows[v]) for v in variants})
    feats: dict[str, dict[str, Features]] = {}
    with timer("features"):
        for name, det in detectors.items():
            feats[name] = {
                s: extract(imgs, det, cache, cfg.workers, f"{name} {s}") for s, imgs in sets.items()
            }
    metrics: dict[str, dict[str, Any]] = {v: {} for v in [*variants, REAL_HELDOUT]}
    with timer("distribution"):
        for name in cfg.detectors:
            root = _real_root(feats[name]["train"], [feats[name][v] for v in metrics])
            for v in metrics:
                res = _distribution(feats[name]["train"], feats[name][v], cfg, root)
                metrics[v].update({f"{k}_{name}": val for k, val in res.items()})
    with timer("domains"):  # per-domain FD and crop adherence, when the real data has labs
        labs = _domains(data, feats, detectors, cfg, metrics)
    if cfg.c2st:
        with timer("c2st"):
            _c2st(data, cfg, metrics)
    with timer("speckle"):
        _speckle(data, metrics)
    counts: dict[str, Any] = {"real_train": len(data.train_rows), "real_heldout": len(data.heldout_rows),
                              **{f"synthetic_{v}": len(data.synthetic_rows[v]) for v in variants}}  # fmt: skip
    if cfg.per_class and data.mapped():
        with timer("per_class"):
            _per_class(data, detectors, cache, cfg, metrics, counts)
    report: dict[str, Any] = {}
    with timer("memorization"):
        report["memorization"] = _memorization(data, feats, cfg, metrics)
        report["crop_copies"] = _crop_copies(data, cfg, metrics)
    seg_scores: dict[str, np.ndarray] = {}
    if (cfg.mask_fidelity or cfg.tstr.enabled) and has_maps(data.real):
        with timer("mask_fidelity"):
            seg_scores, report["segmenter_losses"] = _mask_fidelity(data, cfg, folder, device, metrics)
    if cfg.hallucination.enabled:
        with timer("hallucination"):
            report["flags"] = _hallucination(data, feats, seg_scores, cfg, metrics)
    if cfg.tstr.enabled and data.mapped():
        with timer("tstr"):
            report["tstr"] = _tstr(data, cfg, folder, device, metrics)
    report["samples"] = _samples(data, feats, cfg)
    result = {
        "schema": "histosynth-metrics/1",
        "real": {"folder": str(data.real.folder), "id": data.real.id, "heldout": data.heldout_source},
        "synthetic": {v: {"folder": str(ds.folder), "id": ds.id} for v, ds in data.synthetic.items()},
        "variants": variants,
        "classes": data.real.classes.to_json()["classes"] if has_maps(data.real) else [],
        **({"domains": labs} if labs else {}),
        "notes": data.notes(),
        "detectors": {n: d.identity for n, d in detectors.items()},
        "metric_detectors": list(cfg.detectors),
        "preprocessing": {n: preprocessing_spec(d) for n, d in detectors.items()},
        "metrics": metrics,
        "counts": counts,
        "versions": package_versions(
            (
                "histosynth",
                "numpy",
                "scipy",
                "torch",
                "torchvision",
                "timm",
                "segmentation-models-pytorch",
                "pillow",
            )
        ),  # fmt: skip
        "timing": {**timer.seconds, "total": round(sum(timer.seconds.values()), 3)},
        "config": config,
        **report,
    }
    atomic_write_json(folder / METRICS_FILE, _jsonable(result))
    manifest = write_manifest(folder, Kind.METRICS, config, inputs, counts, metrics_file=METRICS_FILE)
    # The latest numbers go into the card of each model whose samples were scored.
    record_evaluation(read_metrics(folder), data.synthetic, folder)
    return StageResult(folder, manifest, RunSummary())


def read_metrics(evaluation: str | Path) -> dict[str, Any]:
    """The ``metrics.json`` of a finished evaluation folder."""
    folder = Path(evaluation)
    read_manifest(folder, Kind.METRICS)
    return json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))


def _memo_names(cfg: EvaluateConfig) -> list[str]:
    return list(dict.fromkeys(cfg.memorization.detectors or (*cfg.detectors, PIXELS)))


def _jsonable(obj: Any) -> Any:
    """NaN and infinity become null: strict JSON readers (browsers) refuse them."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    return obj


def _distribution(real: Features, fake: Features, cfg: EvaluateConfig, root) -> dict[str, Any]:
    from histosynth.evaluate.distribution import distribution_metrics

    return distribution_metrics(real, fake, cfg, root)


def _real_root(real: Features, others: list[Features]):
    """Σ_real^½ once per detector, when any comparison takes the statistics route."""
    from histosynth.evaluate.stats import prefer_features, sqrtm_psd

    dim = real.features.shape[1]
    if all(prefer_features(len(real.features), len(o.features), dim) for o in others):
        return None
    return sqrtm_psd(real.stats.sigma)


def _domains(data: EvalData, feats, detectors, cfg: EvaluateConfig, metrics) -> list[str]:
    from histosynth.evaluate.domains import domain_metrics

    return domain_metrics(data, feats, detectors, cfg, metrics)


def _per_class(data: EvalData, detectors: dict[str, Detector], cache: FeatureCache, cfg: EvaluateConfig,
               metrics: dict[str, dict[str, Any]], counts: dict[str, Any]) -> None:  # fmt: skip
    from histosynth.evaluate.distribution import fd_between
    from histosynth.evaluate.regions import class_region_sets

    args = (cfg.region_tile, cfg.region_purity, cfg.region_max_per_image, cfg.seed)
    regions = {"train": class_region_sets(data.real, data.train_rows, *args),
               REAL_HELDOUT: class_region_sets(data.real, data.heldout_rows, *args)}  # fmt: skip
    for v, ds in data.mapped().items():
        regions[v] = class_region_sets(ds, data.synthetic_rows[v], *args)
    for c in data.real.classes.classes:
        key = slug(c.name)
        for s, per_class in regions.items():
            counts[f"tiles_{key}_{s}"] = len(per_class[c.id])
        if len(regions["train"][c.id]) < cfg.region_min_tiles:
            continue
        for name in cfg.detectors:
            ref = extract(regions["train"][c.id], detectors[name], cache, cfg.workers, f"{name} {key} train")
            for v in metrics:
                if v not in regions or len(regions[v][c.id]) < cfg.region_min_tiles:
                    continue
                f = extract(regions[v][c.id], detectors[name], cache, cfg.workers, f"{name} {key} {v}")
                metrics[v][f"fd_class_{key}_{name}"] = fd_between(ref, f)


def _speckle(data: EvalData, metrics: dict[str, dict[str, Any]]) -> None:
    """Speckle ratio of every set against the held-out real patches (training patches for the floor)."""
    from histosynth.evaluate.sharpness import laplacian_energy

    def energy(ds, rows) -> float:
        return laplacian_energy(read_png_rgb(ds.folder / ds.index.at[r, "image"]) for r in rows)

    ref = energy(data.real, data.heldout_rows)
    metrics[REAL_HELDOUT]["speckle_ratio"] = energy(data.real, data.train_rows) / ref
    for v, ds in data.synthetic.items():
        metrics[v]["speckle_ratio"] = energy(ds, data.synthetic_rows[v]) / ref


def _c2st(data: EvalData, cfg: EvaluateConfig, metrics: dict[str, dict[str, Any]]) -> None:
    """C2ST per variant against held-out real patches, paired by map when every map is one of them.

    A synthetic image made from the map of held-out patch ``p`` (``map_source`` ends in ``:p``)
    is paired with ``p`` (first image per map), so both sets show the same layouts and the CNN
    can only tell them apart by how the tissue looks. Otherwise the two sets are compared
    unpaired. The real-heldout row is the held-out patches against the training patches.
    """
    from histosynth.evaluate.c2st import c2st

    def images(ds, rows) -> np.ndarray:
        return np.stack([read_png_rgb(ds.folder / ds.index.at[r, "image"]) for r in rows])

    held_ids = [str(data.real.index.at[r, "id"]) for r in data.heldout_rows]
    held = images(data.real, data.heldout_rows)
    kw = {"steps": cfg.c2st_steps, "seed": cfg.seed}
    try:
        floor = c2st(images(data.real, data.train_rows), held, **kw)
        metrics[REAL_HELDOUT].update(floor.summary())
    except ValueError:  # too few images for the folds: leave the metric out
        pass
    for v, ds in data.synthetic.items():
        rows = list(data.synthetic_rows[v])
        sources = ds.index["map_source"].astype(str).tolist() if "map_source" in ds.index else []
        first: dict[str, int] = {}  # held-out patch id -> first synthetic row made from its map
        for r in rows:
            if sources and sources[r].startswith("dataset:"):
                first.setdefault(sources[r].rsplit(":", 1)[-1], r)
        pairs = [(i, first[p]) for i, p in enumerate(held_ids) if p in first]
        paired = len(first) == len({sources[r] for r in rows}) if sources else False
        paired = paired and len(pairs) >= 5
        try:
            if paired:
                res = c2st(held[[i for i, _ in pairs]], images(ds, [r for _, r in pairs]), paired=True, **kw)
            else:
                res = c2st(held, images(ds, rows), **kw)
        except ValueError:  # too few images for the folds
            continue
        metrics[v].update({**res.summary(), "c2st_paired": paired})


def _memorization(data: EvalData, feats, cfg: EvaluateConfig, metrics) -> dict[str, Any]:
    from histosynth.evaluate.memorization import nearest_check

    listed: dict[str, list[dict[str, Any]]] = {v: [] for v in data.synthetic}
    train_ids = feats[_memo_names(cfg)[0]]["train"].ids
    for name in _memo_names(cfg):
        f = feats[name]
        for v in data.synthetic:
            check = nearest_check(f["train"].features, f[REAL_HELDOUT].features, f[v].features,
                                  cfg.memorization.percentile)  # fmt: skip
            metrics[v].update({f"{k}_{name}": val for k, val in check.summary().items()})
            for j in check.offenders:
                listed[v].append({"id": f[v].ids[j], "space": name, "distance": float(check.synthetic_distance[j]),
                                  "threshold": check.threshold, "nearest_train": train_ids[check.synthetic_nearest[j]]})  # fmt: skip
    for v in listed:
        listed[v].sort(key=lambda r: r["distance"] / r["threshold"] if r["threshold"] > 0 else 0.0)
        metrics[v]["memo_offending_images"] = len({r["id"] for r in listed[v]})
        listed[v] = listed[v][: cfg.memorization.max_listed]
    return listed


def _crop_copies(data: EvalData, cfg: EvaluateConfig, metrics) -> dict[str, list[dict[str, Any]]]:
    from histosynth.evaluate.crops import check_crop_copies

    out = {}
    for v, ds in data.mapped().items():
        records = check_crop_copies(ds, data.synthetic_rows[v], data.real, cfg.memorization.crop_tolerance)
        checked = [r for r in records if r["status"] == "checked"]
        if not records:
            continue
        metrics[v].update({
            "crops_checked": len(checked), "crops_unresolved": len(records) - len(checked),
            "crop_copies": sum(r["copied"] for r in checked),
            "crop_rmse_median": float(np.median([r["rmse"] for r in checked])) if checked else None,
        })  # fmt: skip
        copied = sorted((r for r in checked if r["copied"]), key=lambda r: r["rmse"])
        out[v] = copied[: cfg.memorization.max_listed]
    return out


def _mask_fidelity(data: EvalData, cfg: EvaluateConfig, folder: Path, device: str, metrics):
    from histosynth.evaluate.segmentation import Source, score
    from histosynth.evaluate.segmetrics import dice_per_class, iou_per_class, mean_score
    from histosynth.evaluate.tstr import train_or_load

    seg = train_or_load([Source(data.real, data.train_rows)], data.real.classes, cfg.tstr.segmenter, cfg.seed,
                        device, folder / "segmenter_real.safetensors")  # fmt: skip
    per_image: dict[str, np.ndarray] = {}
    sources = {REAL_HELDOUT: Source(data.real, data.heldout_rows)}
    sources.update({v: Source(ds, data.synthetic_rows[v]) for v, ds in data.mapped().items()})
    for v, src in sources.items():
        cm, per_image[v] = score(seg, src)
        iou, dice = iou_per_class(cm), dice_per_class(cm)
        metrics[v].update({"mask_miou": mean_score(iou), "mask_mdice": mean_score(dice)})
        for c, i_c, d_c in zip(data.real.classes.names, iou, dice, strict=True):
            metrics[v][f"mask_iou_{slug(c)}"], metrics[v][f"mask_dice_{slug(c)}"] = float(i_c), float(d_c)
    return per_image, seg.losses


def _hallucination(data: EvalData, feats, seg_scores: dict[str, np.ndarray], cfg: EvaluateConfig, metrics):
    from histosynth.evaluate.hallucination import density_ratio, flag_images, segmenter_threshold

    q = cfg.hallucination.quantile
    threshold = segmenter_threshold(seg_scores[REAL_HELDOUT], q) if REAL_HELDOUT in seg_scores else None
    listed = {}
    for v in data.synthetic:
        ratios = {n: density_ratio(feats[n]["train"].features, feats[n][REAL_HELDOUT].features,
                                   feats[n][v].features, cfg.prdc_k, q) for n in cfg.detectors}  # fmt: skip
        rows = flag_images(list(feats[cfg.detectors[0]][v].ids), ratios, seg_scores.get(v), threshold)
        flagged = sorted((r for r in rows if r["flagged"]), key=lambda r: -(r["density_ratio"] or 0.0))
        metrics[v]["hallucination_flagged"] = len(flagged)
        metrics[v]["hallucination_share"] = len(flagged) / max(len(rows), 1)
        listed[v] = {"segmenter_threshold": threshold, "images": flagged[: cfg.hallucination.max_listed]}
    return listed


def _tstr(data: EvalData, cfg: EvaluateConfig, folder: Path, device: str, metrics) -> dict[str, Any]:
    from histosynth.evaluate.segmentation import Source
    from histosynth.evaluate.tstr import run_tstr

    res = run_tstr(Source(data.real, data.train_rows), Source(data.real, data.heldout_rows),
                   {v: Source(ds, data.synthetic_rows[v]) for v, ds in data.mapped().items()},
                   data.real.classes, cfg.tstr, folder, cfg.seed, device,
                   folder / "segmenter_real.safetensors")  # fmt: skip
    for row in res["table"]:
        if row["train"] == "real":
            metrics[REAL_HELDOUT]["tstr_miou"] = row["miou_mean"]
        elif row["train"] == "synthetic":
            metrics[row["variant"]]["tstr_miou"] = row["miou_mean"]
        else:
            metrics[row["variant"]][f"tstr_miou_mix{row['mix']:g}"] = row["miou_mean"]
    return res


def _samples(data: EvalData, feats, cfg: EvaluateConfig, n: int = 8) -> dict[str, list[dict[str, Any]]]:
    """The first ``n`` images of each variant with their nearest real training image (report grids)."""
    from histosynth.evaluate.neighbors import nearest

    name = cfg.detectors[0]
    train = feats[name]["train"]
    out = {}
    for v in data.synthetic:
        f = feats[name][v]
        d, i = nearest(f.features[:n], train.features, k=1)
        out[v] = [{"id": f.ids[j], "nearest_train": train.ids[i[j, 0]], "distance": float(d[j, 0]), "space": name}
                  for j in range(len(d))]  # fmt: skip
    return out
