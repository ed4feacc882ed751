"""The crop bank: exemplar crops of real tissue per class, with provenance.

Built once from a patch dataset (the training split by default), it is where the sampling
stage and the studio pick "what each tissue looks like". Each crop is cut with the paper's
rule (:func:`histosynth.data.crops.region_crop`: the largest square inside the class region,
a sub-rectangle of a large one) and stored as a PNG with its source slide, patch and box.

::

    <folder>/crops/<crop id>.png
    <folder>/index.parquet   crop_id, class_id, class_name, slide, patch, x, y, w, h, r, g, b
                             (+ domain, for a dataset of simulated labs)
    <folder>/classes.json
    <folder>/manifest.json   kind "crop-bank", input: the patch dataset id

Picking strategies: ``random`` (any crop of the class), ``same-slide`` (crops from one slide,
falling back to any), and ``nearest-colour`` (closest mean RGB to a target colour); each can be
limited to the crops of one lab (``domain``).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import (
    ArtifactError,
    Kind,
    StageResult,
    atomic_write_bytes,
    prepare_output,
    read_manifest,
    write_manifest,
)
from histosynth.config import without_defaults
from histosynth.data.classmap import ClassMap
from histosynth.data.crops import Crop, region_crop
from histosynth.data.patch_dataset import PatchDataset, decode_png, encode_png
from histosynth.jobs import RunSummary, run_items
from histosynth.seeding import item_seed, numpy_rng

__all__ = ["PICK_STRATEGIES", "CropBank", "CropBankConfig", "run"]

PICK_STRATEGIES = ("random", "same-slide", "nearest-colour")


@dataclass(frozen=True)
class CropBankConfig:
    """How crops are cut from a patch dataset.

    Attributes
    ----------
    split
        Dataset split to cut from (``"all"`` for every row).
    per_patch
        Crops per class per patch.
    min_area_frac
        Class regions under this fraction of the patch give no crop.
    skip_classes
        Class ids never banked (background by default).
    seed
        Run seed; each (patch, class, k) derives its own generator.
    domain
        Cut only patches of this lab (a dataset from ``histosynth domains``); empty: all.
    max_per_class
        Keep at most this many crops per class, chosen by a seeded hash of the crop id (a few
        exemplars of a new lab); 0: all.
    """

    split: str = "train"
    per_patch: int = 1
    min_area_frac: float = 0.05
    skip_classes: tuple[int, ...] = (0,)
    seed: int = 0
    domain: str = ""
    max_per_class: int = 0


# Fields added after crop banks' ids were fixed: left out of the id at their defaults.
_ADDED = ("domain", "max_per_class")
COLUMNS = ["crop_id", "class_id", "slide", "patch", "x", "y", "w", "h", "r", "g", "b"]


def _cut_patch(key: str, row: dict[str, Any], folder: Path, dataset: Path, cfg: CropBankConfig) -> list[dict]:
    image = decode_png(dataset / row["image"], "RGB")
    label = decode_png(dataset / row["map"], "L")
    min_area = max(1, int(cfg.min_area_frac * label.size))
    out = []
    for cls in (int(c) for c in np.unique(label)):
        if cls in cfg.skip_classes:
            continue
        for k in range(cfg.per_patch):
            got = region_crop(image, label, cls, numpy_rng(cfg.seed, key, cls, k), min_area)
            if got is None:
                continue
            pixels, (y, x) = got
            crop_id = f"{key}_c{cls}_{k}"
            atomic_write_bytes(folder / "crops" / f"{crop_id}.png", encode_png(pixels))
            r, g, b = (float(v) for v in pixels.reshape(-1, 3).mean(0))
            out.append(dict(crop_id=crop_id, class_id=cls, slide=str(row["slide"]), patch=key,
                            x=x, y=y, w=int(pixels.shape[1]), h=int(pixels.shape[0]), r=r, g=g, b=b))  # fmt: skip
            if "domain" in row:
                out[-1]["domain"] = str(row["domain"])
    return out


def _domain_rows(ds: PatchDataset, domain: str) -> PatchDataset:
    """``ds`` cut to the rows of one lab."""
    if "domain" not in ds.index.columns:
        raise ArtifactError(
            f"{ds.folder / 'index.parquet'}: has no domain column (make one with histosynth domains)"
        )
    ds.index = ds.index[ds.index["domain"].astype(str) == domain].reset_index(drop=True)
    return ds


def _keep_per_class(rows: list[dict], n: int, seed: int) -> list[dict]:
    """At most ``n`` rows per class, by a seeded hash of the crop id (stable when others change)."""
    ranked = sorted(rows, key=lambda r: item_seed(seed, "keep", r["crop_id"]))
    kept, counts = set(), {}
    for r in ranked:
        if counts.get(r["class_id"], 0) < n:
            counts[r["class_id"]] = counts.get(r["class_id"], 0) + 1
            kept.add(r["crop_id"])
    return [r for r in rows if r["crop_id"] in kept]


def run(
    dataset: str | Path,
    out: str | Path,
    cfg: CropBankConfig | None = None,
    *,
    overwrite: bool = False,
    show_progress: bool = True,
) -> StageResult:
    """Cut a crop bank from a patch dataset (resumable per patch); open it with :class:`CropBank`.

    >>> bank = CropBank(run("dataset", "crop-bank").folder)           # doctest: +SKIP

    Parameters
    ----------
    dataset
        A finished patch dataset.
    out
        The crop bank folder.
    cfg
        Cutting settings (default :class:`CropBankConfig`).
    overwrite
        Replace a crop bank of another configuration in ``out``.
    """
    import dataclasses

    import pandas as pd

    cfg = cfg or CropBankConfig()
    ds = PatchDataset(dataset, split=None if cfg.split == "all" else cfg.split)
    if cfg.domain:
        ds = _domain_rows(ds, cfg.domain)
    config = without_defaults(dataclasses.asdict(cfg), cfg, _ADDED)
    claim = prepare_output(out, Kind.CROP_BANK, config, {"dataset": ds.id}, overwrite=overwrite)
    folder = claim.folder
    if claim.complete:
        return StageResult(folder, read_manifest(folder, Kind.CROP_BANK), RunSummary.recorded(folder))
    (folder / "crops").mkdir(parents=True, exist_ok=True)
    items = [(str(r["id"]), r) for r in ds.index.to_dict("records")]
    work = functools.partial(_cut_patch, folder=folder, dataset=ds.folder, cfg=cfg)
    summary = run_items(items, work, folder, desc="crop bank", show_progress=show_progress)
    rows = [row for key, _ in items for row in summary.outputs().get(key, [])]
    if cfg.max_per_class:
        rows = _keep_per_class(rows, cfg.max_per_class, cfg.seed)
    index = pd.DataFrame(rows, columns=COLUMNS + (["domain"] if "domain" in ds.index.columns else []))
    index["class_name"] = [ds.classes.names[ds.classes.ids.index(c)] for c in index["class_id"]]
    buf = io.BytesIO()
    index.to_parquet(buf, index=False)
    atomic_write_bytes(folder / "index.parquet", buf.getvalue())
    ds.classes.save(folder / "classes.json")
    counts = {"crops": len(index), "failed": len(summary.failed)}
    counts.update({f"class_{c}": int(n) for c, n in index["class_id"].value_counts().sort_index().items()})
    mpp = float(ds.index["mpp"].median()) if len(ds.index) else float("nan")
    manifest = write_manifest(
        folder, Kind.CROP_BANK, config, {"dataset": ds.id}, counts, mpp=mpp, dataset_path=str(ds.folder)
    )
    return StageResult(folder, manifest, summary)


class CropBank:
    """A finished crop bank: pick exemplar crops per class.

    Parameters
    ----------
    folder
        A folder written by :func:`run`.
    """

    def __init__(self, folder: str | Path) -> None:
        import pandas as pd

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder, Kind.CROP_BANK)
        self.id = self.manifest["id"]
        self.classes = ClassMap.from_json(self.folder / "classes.json")
        self.index = pd.read_parquet(self.folder / "index.parquet")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def mpp(self) -> float | None:
        """Median resolution (µm/px) of the patches the crops were cut from, when known."""
        mpp = self.manifest.get("mpp")
        return float(mpp) if mpp is not None and np.isfinite(mpp) else None

    def class_ids(self) -> list[int]:
        """Classes that have at least one crop."""
        return sorted(int(c) for c in self.index["class_id"].unique())

    def load(self, crop_id: str) -> np.ndarray:
        """RGB uint8 pixels of one crop."""
        return decode_png(self.folder / "crops" / f"{crop_id}.png", "RGB")

    def domains(self) -> list[str]:
        """The labs the crops come from (empty for a bank of a dataset without labs)."""
        return sorted(self.index["domain"].astype(str).unique()) if "domain" in self.index.columns else []

    def pick(self, class_id: int, n: int, rng: np.random.Generator, strategy: str = "random",
             slide: str | None = None, colour: tuple[float, float, float] | None = None,
             domain: str | None = None) -> list[Crop]:  # fmt: skip
        """``n`` crops of ``class_id`` (with replacement when the bank has fewer).

        Parameters
        ----------
        strategy
            ``random``, ``same-slide`` (needs ``slide``; falls back to any slide) or
            ``nearest-colour`` (needs ``colour``, mean RGB 0..255; the ``n`` nearest).
        domain
            Pick only crops of this lab.
        """
        if strategy not in PICK_STRATEGIES:
            raise ValueError(f"crop strategy must be one of {PICK_STRATEGIES}, got {strategy!r}")
        rows = self.index[self.index["class_id"] == class_id]
        if domain:
            if domain not in self.domains():
                raise ValueError(f"{self.folder}: no crops of lab {domain!r}; its labs are {self.domains()}")
            rows = rows[rows["domain"].astype(str) == domain]
        if rows.empty:
            return []
        if strategy == "same-slide" and slide is not None and (rows["slide"] == slide).any():
            rows = rows[rows["slide"] == slide]
        if strategy == "nearest-colour" and colour is not None:
            d = ((rows[["r", "g", "b"]].to_numpy() - np.asarray(colour)) ** 2).sum(1)
            chosen = rows.iloc[np.argsort(d, kind="stable")[:n]]
        else:
            idx = rng.choice(len(rows), size=n, replace=len(rows) < n)
            chosen = rows.iloc[idx]
        return [
            Crop(int(class_id), self.load(r.crop_id), None, self.provenance(r)) for r in chosen.itertuples()
        ]

    @staticmethod
    def provenance(row: Any) -> str:
        """JSON provenance of a crop row: crop id, slide, patch and box ``[x, y, w, h]``."""
        import json

        record = {"crop": row.crop_id, "slide": row.slide, "patch": row.patch,
                  "box": [int(row.x), int(row.y), int(row.w), int(row.h)]}  # fmt: skip
        if getattr(row, "domain", None) is not None:  # banks of a dataset with labs say whose crop it is
            record["domain"] = str(row.domain)
        return json.dumps(record)
