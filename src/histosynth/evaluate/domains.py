"""Per-domain Fréchet distance: does each lab's synthetic data look like that lab's real data?

When the real dataset holds several labs (a ``domain`` column, e.g. from ``histosynth
domains``) and a synthetic variant records which lab conditioned each image (its own ``domain``
column, or the lab of its crops), FD is computed per lab, between the synthetic images made with
lab-d crops and the real held-out patches of lab d, then averaged over labs::

    FD_domains = (1/K) Σ_d FD(real held-out of d, synthetic of d)

A generator that ignores its crops makes the same images whatever the lab, so its FD_domains
stays high; one that follows them matches each lab. The floor (the ``real-heldout`` row) is the
held-out patches of each lab against that lab's training patches.

The other end of the scale (``domainfd_blind_<detector>`` of the ``real-heldout`` row): each
lab's held-out patches against as many training patches drawn from every lab pooled, the labs
being those of the evaluated set that covers the most (:func:`blind_labs`).
That is a generator that ignores the lab, made perfectly: it reproduces the training labs'
tissue in their proportions whatever crop it is given. ``blind / floor`` is the largest ratio
"crop-blind FD over crop-following FD" the labs allow; when the labs differ little more than
patches of one lab do it is near 1 and no generator can show that its crops carry the lab.

The interval is a percentile bootstrap of the mean: each lab's two sets are resampled
independently (:func:`~histosynth.evaluate.bootstrap.bootstrap_fd`), the replicates are
averaged across labs, and the interval is shifted by the bootstrap estimate of bias as for FD.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from histosynth.evaluate.bootstrap import bootstrap_fd, percentile_interval
from histosynth.evaluate.distribution import fd_between
from histosynth.evaluate.features import Features

__all__ = ["blind_labs", "blind_reference", "domain_fd", "domain_metrics", "real_domains", "row_domains"]


def real_domains(real: Any) -> list[str] | None:
    """The lab of every row of a real dataset, or ``None`` when it has no ``domain`` column."""
    index = getattr(real, "index", None)
    if index is None or "domain" not in index.columns:
        return None
    return [str(d) for d in index["domain"]]


def row_domains(synthetic: Any, rows: Sequence[int], real: Any) -> list[str]:
    """The lab that conditioned each synthetic row ("" when unknown or mixed).

    The row's ``domain`` column when the sampler wrote one, else the lab of its crops' source
    patches in ``real`` when they all agree.
    """
    from histosynth.evaluate.crops import parse_crop_sources

    index = synthetic.index
    if "domain" in index.columns:
        return [str(index.at[r, "domain"] or "") for r in rows]
    labs = real_domains(real)
    if labs is None or "crop_sources" not in index.columns:
        return [""] * len(rows)
    by_id = {str(p): labs[i] for i, p in enumerate(real.index["id"])}
    out = []
    for r in rows:
        found = {by_id.get(c["patch"]) for c in parse_crop_sources(index.at[r, "crop_sources"])}
        out.append(found.pop() if len(found) == 1 and None not in found else "")
    return out


def _fd(x: np.ndarray, y: np.ndarray) -> float:
    return fd_between(Features(x, None, (), 0.0, False), Features(y, None, (), 0.0, False))


def domain_fd(
    real: np.ndarray,
    real_labs: Sequence[str],
    fake: np.ndarray,
    fake_labs: Sequence[str],
    replicates: int = 20,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any] | None:
    """FD per lab and its mean over labs, with a bootstrap interval of the mean.

    Parameters
    ----------
    real, fake
        Feature rows ``(n, d)`` of the reference set and of the evaluated set.
    real_labs, fake_labs
        The lab of each row; labs present in both sets with at least 2 rows each are scored.

    Returns
    -------
    dict or None
        ``{"mean", "ci_low", "ci_high", "per_lab": {lab: fd}, "labs"}``; ``None`` when no lab
        has enough rows in both sets.
    """
    real_labs, fake_labs = np.asarray(real_labs), np.asarray(fake_labs)
    labs = [
        d
        for d in sorted(set(real_labs) & set(fake_labs))
        if d and min((real_labs == d).sum(), (fake_labs == d).sum()) >= 2
    ]
    if not labs:
        return None
    per_lab, reps = {}, []
    for k, d in enumerate(labs):
        x, y = real[real_labs == d], fake[fake_labs == d]
        per_lab[d] = _fd(x, y)
        if replicates > 0:
            reps.append(bootstrap_fd(x, y, replicates, seed + k, level, per_lab[d])[2])
    out: dict[str, Any] = {"mean": float(np.mean(list(per_lab.values()))), "per_lab": per_lab, "labs": labs}
    if reps:
        mean_reps = np.mean(reps, axis=0)
        bias = float(mean_reps.mean()) - out["mean"]
        low, high = percentile_interval(mean_reps, level)
        out["ci_low"], out["ci_high"] = max(low - bias, 0.0), max(high - bias, 0.0)
    return out


def blind_labs(set_labs: dict[str, Sequence[str]]) -> list[str]:
    """The labs a crop-blind generator stands for: those of the set that covers the most labs.

    A benchmark renders its held-out maps with the crops of every training lab (that set covers
    the labs the generator learnt) and may add sets made with one new lab's crops; pooling the
    new lab in would make the blind reference a generator that never saw it.
    """
    covered = [sorted({d for d in labs if d}) for labs in set_labs.values()]
    return max(covered, key=len, default=[])


def blind_reference(train: np.ndarray, train_labs: Sequence[str], labs: Sequence[str],
                    seed: int = 0) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Per lab in ``labs``, as many training rows as that lab has, drawn from every lab in ``labs``.

    Returns the rows and their labels (the lab each draw stands in for), for :func:`domain_fd`.
    """
    from histosynth.seeding import numpy_rng

    train_labs = np.asarray(train_labs)
    pool = np.flatnonzero(np.isin(train_labs, list(labs)))
    rows, names = [], []
    for d in labs:
        n = min(int((train_labs == d).sum()), len(pool))
        rows.append(train[numpy_rng(seed, "blind-reference", d).choice(pool, size=n, replace=False)])
        names += [d] * n
    return (np.concatenate(rows) if rows else train[:0]), names


def _put(metrics: dict[str, Any], key: str, space: str, value: Any, ci: tuple[float, float] | None) -> None:
    """``<key>_<space>`` and its interval as ``<key>_ci_low_<space>`` / ``<key>_ci_high_<space>``."""
    metrics[f"{key}_{space}"] = value
    if ci is not None:
        metrics[f"{key}_ci_low_{space}"], metrics[f"{key}_ci_high_{space}"] = ci


def domain_metrics(
    data: Any, feats: Any, detectors: Any, cfg: Any, metrics: dict[str, dict[str, Any]]
) -> list[str]:
    """Per-domain FD (every variant and the real floor) and crop adherence into ``metrics``.

    Keys: ``domainfd_<detector>`` (mean over labs) with its interval, ``domainfd_<lab>_<detector>``
    per lab, and on the real held-out row ``domainfd_blind_<detector>`` (see the module notes); ``adherence_<space>`` (``stain`` or a detector) with its interval,
    ``adherence_regions`` (also for the real held-out patches, the scale: see
    :func:`~histosynth.evaluate.adherence.real_regions`). Returns the labs of the real data (empty when it has none, and then
    nothing is computed).
    """
    from histosynth.evaluate.adherence import adherence, collect_regions, real_regions, reference_crops
    from histosynth.evaluate.data import REAL_HELDOUT
    from histosynth.evaluate.keys import slug

    labs = real_domains(data.real)
    if labs is None:
        return []
    held = [labs[r] for r in data.heldout_rows]
    # Each set against its reference: the floor is held-out against training patches, as for FD.
    pairs = {REAL_HELDOUT: ("train", [labs[r] for r in data.train_rows], held)}
    for v, ds in data.synthetic.items():
        pairs[v] = (REAL_HELDOUT, held, row_domains(ds, data.synthetic_rows[v], data.real))
    boot = (cfg.bootstrap, cfg.seed, cfg.ci_level)
    scored = blind_labs({v: v_labs for v, (_, _, v_labs) in pairs.items() if v != REAL_HELDOUT})
    for name in cfg.detectors:
        for v, (ref, ref_labs, v_labs) in pairs.items():
            res = domain_fd(feats[name][ref].features, ref_labs, feats[name][v].features, v_labs, *boot)
            if res is None:
                continue
            ci = (res["ci_low"], res["ci_high"]) if "ci_low" in res else None
            _put(metrics[v], "domainfd", name, res["mean"], ci)
            metrics[v].update({f"domainfd_{slug(d)}_{name}": fd for d, fd in res["per_lab"].items()})
        if scored:  # the crop-blind end of the scale, beside the floor
            train = feats[name]["train"].features
            blind, blind_names = blind_reference(train, pairs[REAL_HELDOUT][1], scored, cfg.seed)
            res = domain_fd(feats[name][REAL_HELDOUT].features, held, blind, blind_names, *boot)
            if res is not None:
                ci = (res["ci_low"], res["ci_high"]) if "ci_low" in res else None
                _put(metrics[REAL_HELDOUT], "domainfd_blind", name, res["mean"], ci)
    refs = reference_crops(data.real, data.train_rows, labs, seed=cfg.seed)
    found = {v: collect_regions(ds, data.synthetic_rows[v], data.real, labs, seed=cfg.seed)
             for v, ds in data.mapped().items()}  # fmt: skip
    if any(len(r) for r in found.values()):  # the scale: real held-out patches with own-lab crops
        found[REAL_HELDOUT] = real_regions(data.real, data.heldout_rows, data.train_rows, labs, seed=cfg.seed)
    for v, regions in found.items():
        if not len(regions):
            continue
        res = adherence(regions, refs, {n: detectors[n] for n in cfg.detectors}, *boot)
        metrics[v]["adherence_regions"] = res["regions"]
        for space in ("stain", *cfg.detectors):
            if space in res:
                _put(metrics[v], "adherence", space, res[space], res.get(f"{space}_ci"))
    return sorted(set(labs))
