"""Crop adherence: does a generated region look like the crop it was conditioned on?

For every region of a synthetic image (the pixels of one class of its map) whose exemplar crop
comes from lab d of the real dataset::

    adherence = Σ_regions dist(region, its own crop)
                / Σ_regions mean_{c ∈ same-class crops of the other labs} dist(region, c)

Below 1 the images follow their crops (closer to their own crop than to the same tissue class
from other labs); a generator that ignores its crops scores about 1, since its image does not
depend on which lab's crop it was given: summed over labs in equal numbers, the distances to
own-lab and other-lab crops are then equal in expectation. The control row is a map-only model
sampled with ``reference_crops`` (the crops it would have been given are recorded).

Two spaces, each a row of numbers per picture:

* a detector's features of the region's largest square (cut by the crop bank's rule,
  :func:`~histosynth.data.crops.region_crop`) and of each crop, each mirrored outwards to the
  synthetic patch size (:func:`canvas`: the same magnification for all, where resizing a 20 px
  crop and a 40 px square to one input would not) and then resized to the detector's input as
  every evaluated image is (:func:`~histosynth.evaluate.features.clean_resize`);
* stain statistics: mean and standard deviation of the hematoxylin and eosin concentrations
  (:mod:`histosynth.domains.stain`) over all the region's pixels and over each crop.

The other labs' crops are cut from the real dataset's training rows by the same rule, at most
``per_lab`` per (lab, class), chosen by a seeded hash of the patch id. The interval is a
percentile bootstrap over regions of the ratio of sums.

The scale (:func:`real_regions`, the ``real-heldout`` row): the real held-out patches of each
lab scored the same way, each region's "own crop" a same-class crop of another training patch
of its lab, as a crop bank gives one. That is what a generator reproducing each lab exactly
would score; it is well below 1 only when labs differ more than patches within a lab do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from histosynth.evaluate.bootstrap import percentile_interval
from histosynth.seeding import item_seed, numpy_rng

__all__ = [
    "Regions",
    "adherence",
    "canvas",
    "collect_regions",
    "real_regions",
    "reference_crops",
    "stain_statistics",
]


def stain_statistics(pixels: np.ndarray) -> np.ndarray:
    """``[mean H, mean E, std H, std E]`` of RGB pixels ``(..., 3)`` (natural OD units)."""
    from histosynth.domains.stain import concentrations

    conc = concentrations(np.asarray(pixels).reshape(-1, 3))[:, :2]
    return np.concatenate([conc.mean(0), conc.std(0)])


def reference_crops(real: Any, rows: Sequence[int], labs: Sequence[str], min_area_frac: float = 0.05,
                    per_lab: int = 32, seed: int = 0) -> dict[tuple[str, int], list[np.ndarray]]:  # fmt: skip
    """Crops of every (lab, class) cut from ``rows`` of ``real`` (class 0, background, skipped)."""
    from histosynth.data.crops import region_crop

    out: dict[tuple[str, int], list[np.ndarray]] = {}
    ranked = sorted(rows, key=lambda r: item_seed(seed, "adherence-ref", real.index.at[r, "id"]))
    for r in ranked:
        image, label = real.image(r), real.label(r)
        min_area = max(1, int(min_area_frac * label.size))
        for c in (int(v) for v in np.unique(label) if v != 0):
            key = (labs[r], c)
            if len(out.setdefault(key, [])) >= per_lab:
                continue
            got = region_crop(
                image, label, c, numpy_rng(seed, "adherence-ref", real.index.at[r, "id"], c), min_area
            )
            if got is not None:
                out[key].append(got[0])
    return out


@dataclass
class Regions:
    """Generated regions with their own crops: what :func:`adherence` scores."""

    squares: list[np.ndarray] = field(default_factory=list)  # the region's largest square
    stains: list[np.ndarray] = field(default_factory=list)  # stain statistics of all its pixels
    own: list[np.ndarray] = field(default_factory=list)  # its conditioning crop
    labs: list[str] = field(default_factory=list)  # the lab of that crop
    classes: list[int] = field(default_factory=list)
    unresolved: int = 0  # crops whose source patch is not in the real dataset
    size: int = 64  # side of the synthetic images: the canvas pictures are mirrored to

    def __len__(self) -> int:
        return len(self.squares)

    def add(
        self, image: np.ndarray, label: np.ndarray, cls: int, square: np.ndarray, own: np.ndarray, lab: str
    ) -> None:
        """Region ``cls`` of ``image`` (its largest ``square``) with its ``own`` crop from ``lab``."""
        self.squares.append(square)
        self.stains.append(stain_statistics(image[label == cls]))
        self.own.append(own)
        self.labs.append(lab)
        self.classes.append(cls)


def collect_regions(synthetic: Any, rows: Sequence[int], real: Any, real_labs: Sequence[str],
                    min_area_frac: float = 0.05, seed: int = 0) -> Regions:  # fmt: skip
    """Every (synthetic image, exemplar crop) whose class region is large enough to score."""
    from histosynth.data.crops import region_crop
    from histosynth.evaluate.crops import parse_crop_sources

    out = Regions()
    if "crop_sources" not in synthetic.index.columns:
        return out
    by_id = {str(p): i for i, p in enumerate(real.index["id"])}
    for r in rows:
        crops = parse_crop_sources(synthetic.index.at[r, "crop_sources"])
        if not crops:
            continue
        image, label = synthetic.image(r), synthetic.label(r)
        out.size = min(label.shape)
        min_area = max(1, int(min_area_frac * label.size))
        for crop in crops:
            j, c = by_id.get(crop["patch"]), int(crop["class"])
            if j is None:
                out.unresolved += 1
                continue
            sid = synthetic.index.at[r, "id"]
            got = region_crop(image, label, c, numpy_rng(seed, "adherence", sid, c), min_area)
            if got is None:
                continue
            x, y, w, h = crop["box"]
            out.add(image, label, c, got[0], real.image(j)[y : y + h, x : x + w], real_labs[j])
    return out


def real_regions(real: Any, rows: Sequence[int], train_rows: Sequence[int], real_labs: Sequence[str],
                 min_area_frac: float = 0.05, seed: int = 0) -> Regions:  # fmt: skip
    """The regions of real patches ``rows``, each with a same-lab, same-class crop as its own.

    The own crop is drawn (seeded by the patch id and class) from crops of ``train_rows`` cut
    by the crop bank's rule; patches whose lab has no crop of that class are skipped.
    """
    from histosynth.data.crops import region_crop

    pool = reference_crops(
        real, train_rows, real_labs, min_area_frac, per_lab=64, seed=item_seed(seed, "own")
    )
    out = Regions()
    for r in rows:
        image, label = real.image(r), real.label(r)
        out.size = min(label.shape)
        min_area = max(1, int(min_area_frac * label.size))
        pid = real.index.at[r, "id"]
        for c in (int(v) for v in np.unique(label) if v != 0):
            crops = pool.get((real_labs[r], c))
            got = (
                region_crop(image, label, c, numpy_rng(seed, "adherence", pid, c), min_area)
                if crops
                else None
            )
            if got is None:
                continue
            own = crops[numpy_rng(seed, "adherence-own", pid, c).integers(len(crops))]
            out.add(image, label, c, got[0], own, real_labs[r])
    return out


def canvas(picture: np.ndarray, size: int) -> np.ndarray:
    """``picture`` mirrored outwards to ``size`` × ``size`` px, at its own scale.

    Crops and region squares differ in size; resizing each to the detector's input would
    compare tissue at different magnifications. Mirroring keeps the scale and avoids seams.
    """
    h, w = picture.shape[:2]
    return np.pad(picture, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="symmetric")[
        :size, :size
    ]


def _detector_rows(pictures: Sequence[np.ndarray], detector: Any, size: int) -> np.ndarray:
    from histosynth.evaluate.features import clean_resize

    rows = []
    for start in range(0, len(pictures), detector.batch_size):
        chunk = pictures[start : start + detector.batch_size]
        rows.append(
            detector.features(np.stack([clean_resize(canvas(p, size), detector.input_size) for p in chunk]))
        )
    return np.concatenate(rows) if rows else np.zeros((0, detector.dim), np.float32)


def adherence(regions: Regions, refs: Mapping[tuple[str, int], list[np.ndarray]], detectors: Mapping[str, Any],
              replicates: int = 20, seed: int = 0, level: float = 0.95) -> dict[str, Any]:  # fmt: skip
    """Adherence per space (``stain`` and each detector's name) with its interval.

    Returns ``{"regions": n, "<space>": value, "<space>_ci": (low, high)}``; only regions with
    same-class crops of at least one other lab count.
    """
    keys = sorted(refs)
    keep = [i for i in range(len(regions)) if any(k[1] == regions.classes[i] and k[0] != regions.labs[i] and refs[k]
                                                  for k in keys)]  # fmt: skip
    out: dict[str, Any] = {"regions": len(keep)}
    if not keep:
        return out
    ref_pics = [(k, p) for k in keys for p in refs[k]]
    spaces: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
        "stain": (np.stack([regions.stains[i] for i in keep]),
                  np.stack([stain_statistics(regions.own[i]) for i in keep]),
                  np.stack([stain_statistics(p) for _, p in ref_pics])),
    }  # fmt: skip
    size = regions.size
    for name, det in detectors.items():
        spaces[name] = (_detector_rows([regions.squares[i] for i in keep], det, size),
                        _detector_rows([regions.own[i] for i in keep], det, size),
                        _detector_rows([p for _, p in ref_pics], det, size))  # fmt: skip
    ref_lab = np.array([k[0] for k, _ in ref_pics])
    ref_cls = np.array([k[1] for k, _ in ref_pics])
    for name, (region, own, ref) in spaces.items():
        d_own = np.linalg.norm(region - own, axis=1)
        d_other = np.empty(len(keep))
        for n, i in enumerate(keep):
            others = (ref_cls == regions.classes[i]) & (ref_lab != regions.labs[i])
            d_other[n] = np.linalg.norm(ref[others] - region[n], axis=1).mean()
        out[name] = float(d_own.sum() / d_other.sum()) if d_other.sum() > 0 else None
        if replicates > 0 and out[name] is not None:
            rng = np.random.default_rng(item_seed(seed, "adherence-bootstrap", name))
            counts = rng.multinomial(len(keep), np.full(len(keep), 1.0 / len(keep)), size=replicates)
            out[f"{name}_ci"] = percentile_interval(
                counts @ d_own / np.maximum(counts @ d_other, 1e-12), level
            )
    return out
