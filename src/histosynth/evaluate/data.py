"""The datasets an evaluation reads: one real dataset (training + held-out rows) and synthetic variants."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from histosynth.artifacts import ArtifactError
from histosynth.data.patch_dataset import PatchDataset
from histosynth.evaluate.config import EvaluateConfig
from histosynth.evaluate.folders import ImageFolder, has_maps, open_images
from histosynth.seeding import item_seed

__all__ = ["REAL_HELDOUT", "EvalData", "load_eval_data"]

# The pseudo-variant under which held-out real images are scored like a synthetic set: the
# floor every metric should be read against.
REAL_HELDOUT = "real-heldout"
_RESERVED = (REAL_HELDOUT, "real", "train")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class EvalData:
    """Real rows split into train (what the model saw) and held-out; synthetic rows per variant."""

    real: PatchDataset | ImageFolder
    train_rows: tuple[int, ...]
    heldout_rows: tuple[int, ...]
    heldout_source: str
    synthetic: dict[str, PatchDataset | ImageFolder]
    synthetic_rows: dict[str, tuple[int, ...]]

    def mapped(self) -> dict[str, PatchDataset]:
        """The variants with label maps, when the real data has them too (else none)."""
        if not has_maps(self.real):
            return {}
        return {v: ds for v, ds in self.synthetic.items() if has_maps(ds)}

    def notes(self) -> list[str]:
        """One sentence on the metrics plain image folders leave out, then any files they skipped."""
        plain = [ds for ds in (self.real, *self.synthetic.values()) if not has_maps(ds)]
        if not plain:
            return []
        what = "mask fidelity, TSTR, per-class FD and crop copies were skipped"
        if not has_maps(self.real):
            first = (
                f"{what}: the real images ({self.real.folder}) are a plain image folder without label maps"
            )
        else:
            names = ", ".join(f"{v} ({ds.folder})" for v, ds in self.synthetic.items() if not has_maps(ds))
            first = f"{what} for {names}: a plain image folder has no label maps"
        return [first, *(n for ds in plain if isinstance(ds, ImageFolder) and (n := ds.note()))]


def _cap(ds: PatchDataset, rows: list[int], n: int, seed: int) -> tuple[int, ...]:
    """At most ``n`` rows (0 = all), chosen by a per-id hash: stable when other rows change."""
    if n <= 0 or len(rows) <= n:
        return tuple(rows)
    ranked = sorted(rows, key=lambda r: item_seed(seed, "cap", ds.index.at[r, "id"]))
    return tuple(sorted(ranked[:n]))


def load_eval_data(real: str | Path, synthetic: Mapping[str, str | Path], cfg: EvaluateConfig) -> EvalData:
    """Open and check the datasets (patch datasets or plain PNG folders); split the real one.

    The real training rows are those of ``cfg.real_split`` (all rows outside the held-out
    split when no row has that split); held-out rows are those of ``cfg.heldout_split``, or, when there are none, a
    seeded ``cfg.heldout_fraction`` of the training rows (recorded as ``heldout_source``).
    """
    if not synthetic:
        raise ArtifactError("give at least one synthetic dataset (--synthetic NAME=DIR)")
    for name in synthetic:
        if not _NAME.match(name) or name == REAL_HELDOUT:
            raise ArtifactError(
                f"variant name {name!r} must be letters, digits, _ . + - and not {REAL_HELDOUT!r}"
            )
    rds = open_images(real)
    split = rds.index["split"].astype(str).tolist()
    held = [i for i, s in enumerate(split) if s == cfg.heldout_split]
    train = [i for i, s in enumerate(split) if s == cfg.real_split] or [
        i for i, s in enumerate(split) if s != cfg.heldout_split
    ]
    source = f"split {cfg.heldout_split!r}"
    if not held:
        ranked = sorted(train, key=lambda r: item_seed(cfg.seed, "heldout", rds.index.at[r, "id"]))
        n_held = max(2, int(round(cfg.heldout_fraction * len(train))))
        held, train = sorted(ranked[:n_held]), sorted(ranked[n_held:])
        source = f"seeded {cfg.heldout_fraction:.0%} of the training rows (no {cfg.heldout_split!r} split)"
    if len(train) < 2 or len(held) < 2:
        raise ArtifactError(
            f"{rds.folder}: too few real images to evaluate ({len(train)} train, {len(held)} held out)"
        )
    syn, syn_rows = {}, {}
    for name, folder in synthetic.items():
        ds = open_images(folder)
        if has_maps(rds) and has_maps(ds):
            # Synthetic maps may use a subset of the real classes, never a class the real data lacks.
            rds.classes.check_ids(ds.classes.ids, f"{ds.folder / 'classes.json'} (against the real dataset)")
        syn[name], syn_rows[name] = ds, _cap(ds, list(range(len(ds))), cfg.max_images, cfg.seed)
        if len(syn_rows[name]) < 2:
            raise ArtifactError(f"{ds.folder}: synthetic variant {name!r} has fewer than 2 images")
    return EvalData(
        rds,
        _cap(rds, train, cfg.max_images, cfg.seed),
        _cap(rds, held, cfg.max_images, cfg.seed),
        source,
        syn,
        syn_rows,
    )
