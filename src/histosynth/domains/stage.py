"""``histosynth domains``: a patch dataset re-stained and re-scanned as K simulated labs.

Every image of the input dataset is transformed by :func:`~histosynth.domains.labs.apply_lab`
for each lab (``assign = "all"``: the same tissue in every lab) or for one lab drawn per patch
(``assign = "one"``: each lab sees other tissue, as real labs do); maps are copied unchanged.
The output is a patch dataset like any other, with one more index column, ``domain`` (the
lab's name), and ids ``<source id>_<lab>``. ``domains.json`` and the manifest list every lab's
parameters, so the transform can be reapplied to other data. Patches are written in chunks,
resumably.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from histosynth.artifacts import (
    ArtifactError,
    Kind,
    StageResult,
    atomic_write_json,
    prepare_output,
    read_manifest,
)
from histosynth.config import ConfigError, config_to_dict
from histosynth.data.patch_dataset import PatchDataset, PatchDatasetWriter
from histosynth.domains.labs import Lab, LabRanges, apply_lab, draw_labs
from histosynth.jobs import RunSummary, run_items
from histosynth.seeding import item_seed

__all__ = ["DOMAINS_FILE", "DomainsConfig", "read_labs", "run"]

DOMAINS_FILE = "domains.json"


@dataclass(frozen=True)
class DomainsConfig:
    """Settings of ``histosynth domains``.

    Attributes
    ----------
    labs
        How many labs to draw (named lab-A, lab-B, ...).
    seed
        Seeds the draw of the labs (and, with ``assign = "one"``, which lab each patch goes to).
    assign
        ``all``: every patch in every lab; ``one``: each patch in one lab, balanced.
    only
        Keep only these labs (names), e.g. to make a single stain variant of a dataset.
    ranges
        Where the lab parameters are drawn (:class:`~histosynth.domains.labs.LabRanges`).
    chunk
        Source patches per work item (resume granularity).
    """

    labs: int = 4
    seed: int = 0
    assign: Literal["all", "one"] = "all"
    only: tuple[str, ...] = ()
    ranges: LabRanges = field(default_factory=LabRanges)
    chunk: int = 64

    def __post_init__(self) -> None:
        if self.assign not in ("all", "one"):
            raise ConfigError(f"assign must be 'all' or 'one', got {self.assign!r}")
        if self.chunk < 1:
            raise ConfigError(f"chunk must be at least 1, got {self.chunk}")

    def draw(self) -> list[Lab]:
        """The labs this config makes, after ``only``."""
        labs = draw_labs(self.labs, self.seed, self.ranges)
        unknown = sorted(set(self.only) - {lab.name for lab in labs})
        if unknown:
            raise ConfigError(
                f"only names unknown labs {unknown}; these labs exist: {[lab.name for lab in labs]}"
            )
        return [lab for lab in labs if not self.only or lab.name in self.only]


def _assigned(cfg: DomainsConfig, labs: list[Lab], pid: str, all_labs: int) -> list[Lab]:
    if cfg.assign == "all":
        return labs
    # A per-patch hash picks the lab: the same patch goes to the same lab whatever else is in the data.
    name = f"lab-{chr(65 + item_seed(cfg.seed, 'assign', pid) % all_labs)}"
    return [lab for lab in labs if lab.name == name]


def _chunk_work(key: str, rows: list[dict[str, Any]], source: Path, folder: Path, cfg: DomainsConfig,
                labs: list[Lab]) -> int:  # fmt: skip
    from histosynth.data.patch_dataset import decode_png

    writer = PatchDatasetWriter(folder, _classes(source))
    out = []
    for row in rows:
        image = decode_png(source / row["image"], "RGB")
        label = decode_png(source / row["map"], "L")
        mpp = float(row.get("mpp") or "nan")
        mpp = mpp if math.isfinite(mpp) and mpp > 0 else 1.0  # synthetic rows carry no mpp
        for lab in _assigned(cfg, labs, str(row["id"]), cfg.labs):
            new = writer.write_patch(f"{row['id']}_{lab.name}", apply_lab(image, lab, mpp), label)
            out.append({**row, **new, "domain": lab.name})
    return writer.write_shard(key, out)


@functools.lru_cache(maxsize=8)
def _classes(source: Path):
    from histosynth.data.classmap import ClassMap

    return ClassMap.from_json(source / "classes.json")


def run(
    dataset: str | Path, out: str | Path, cfg: DomainsConfig | None = None, *, overwrite: bool = False
) -> StageResult:
    """Write (or resume) the simulated-lab version of a patch dataset.

    >>> result = run("dataset", "dataset-labs", DomainsConfig(labs=4, seed=0))   # doctest: +SKIP

    Parameters
    ----------
    dataset
        A finished patch dataset (real or synthetic).
    out
        The output patch dataset folder.
    cfg
        Labs and assignment (default :class:`DomainsConfig`).
    overwrite
        Replace a folder of another configuration.

    Returns
    -------
    StageResult
        The folder, its manifest (``None`` while a chunk failed: re-run to finish) and the
        outcome per chunk.
    """
    cfg = cfg or DomainsConfig()
    labs = cfg.draw()
    ds = PatchDataset(dataset)
    if "domain" in ds.index.columns:
        raise ArtifactError(
            f"{ds.folder / 'index.parquet'}: already has a domain column; give the dataset before its labs"
        )
    config = config_to_dict(cfg)
    inputs = {"dataset": ds.id}
    claim = prepare_output(out, Kind.PATCH_DATASET, config, inputs, overwrite=overwrite)
    if claim.complete:
        return StageResult(claim.folder, read_manifest(claim.folder), RunSummary.recorded(claim.folder))
    writer = PatchDatasetWriter(claim.folder, ds.classes)
    rows = ds.index.to_dict("records")
    items = [(f"rows-{s:06d}", rows[s : s + cfg.chunk]) for s in range(0, len(rows), cfg.chunk)]
    work = functools.partial(_chunk_work, source=ds.folder, folder=claim.folder, cfg=cfg, labs=labs)
    summary = run_items(items, work, claim.folder, desc="labs")
    manifest = None
    if summary.ok:
        described = [lab.to_json() for lab in labs]
        atomic_write_json(claim.folder / DOMAINS_FILE, {"labs": described, "source": str(ds.folder)})
        manifest = writer.finalize([k for k, _ in items], config, inputs, domains=described)
    return StageResult(claim.folder, manifest, summary)


def read_labs(folder: str | Path) -> list[Lab]:
    """The labs of a finished ``domains`` output folder."""
    import json

    data = json.loads((Path(folder) / DOMAINS_FILE).read_text(encoding="utf-8"))
    names = {f.name for f in dataclasses.fields(Lab)}
    return [Lab(**{k: v for k, v in lab.items() if k in names}) for lab in data["labs"]]
