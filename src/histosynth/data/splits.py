"""Train/val/test splits by slide: deterministic from the seed, or read from a user's file.

Patches of one slide always share a split, so no slide leaks between training and testing.
Slides are ordered by a hash of (seed, slide name) and cut by the split fractions, so the
assignment depends only on the seed and the set of slide names, not on their order on disk.

With one slide (the demo, a single in-house section) ``by = "region"`` splits by region
instead: the slide is cut into square blocks of ``region_um`` µm, each patch belongs to the
block holding its centre, and the blocks that hold patches are ordered by a hash of (seed,
slide, block) and cut by the fractions. Use it with non-overlapping patches: overlapping ones
on either side of a block border would share pixels across splits.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from histosynth.config import ConfigError
from histosynth.seeding import item_seed

__all__ = ["SPLITS", "SplitConfig", "assign_splits", "read_split_file", "region_splits"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """Split fractions (normalised to sum 1) and an optional file that overrides them.

    Attributes
    ----------
    train, val, test
        Shares of the slides in each split.
    file
        A CSV (``slide,split`` per line, header optional) or JSON (``{"slide": "split"}``)
        file; when given, it decides every slide's split.
    by
        ``"slide"`` (default) or ``"region"`` (blocks within each slide, see the module notes).
    region_um
        Block side for ``by = "region"``, in µm.
    """

    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    file: Path | None = None
    by: Literal["slide", "region"] = "slide"
    region_um: float = 250.0

    def __post_init__(self) -> None:
        shares = (self.train, self.val, self.test)
        if any(s < 0 for s in shares) or sum(shares) <= 0:
            raise ValueError(f"split fractions must be non-negative and not all zero, got {shares}")


def _counts(n: int, shares: tuple[float, ...]) -> list[int]:
    total = sum(shares)
    raw = [n * s / total for s in shares]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))[: n - sum(counts)]:
        counts[i] += 1
    # Every split that asks for slides gets at least one when there are enough to go round.
    wanted = [i for i, s in enumerate(shares) if s > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    return counts


def assign_splits(slides: Iterable[str], cfg: SplitConfig = SplitConfig(), seed: int = 0) -> dict[str, str]:
    """Slide name → ``"train"``, ``"val"`` or ``"test"``.

    Raises
    ------
    ConfigError
        When a split file is given but misses a slide or names an unknown split.
    """
    names = sorted(set(slides))
    if cfg.file is not None:
        given = read_split_file(cfg.file)
        missing = [s for s in names if s not in given]
        if missing:
            raise ConfigError(f"{cfg.file}: no split given for slide {missing[0]!r} ({len(missing)} missing)")
        return {s: given[s] for s in names}
    order = sorted(names, key=lambda s: item_seed(seed, "split", s))
    counts = _counts(len(order), (cfg.train, cfg.val, cfg.test))
    out: dict[str, str] = {}
    start = 0
    for split, k in zip(SPLITS, counts, strict=True):
        out.update({s: split for s in order[start : start + k]})
        start += k
    return out


def region_splits(
    slide: str,
    x0: np.ndarray,
    y0: np.ndarray,
    size0: float,
    slide_mpp: float,
    cfg: SplitConfig,
    seed: int = 0,
) -> tuple[list[str], np.ndarray]:
    """Per-patch splits of one slide by blocks of ``cfg.region_um`` µm (see the module notes).

    Returns
    -------
    splits, keep
        The split of every patch, and a mask that drops patches reaching into a block of
        another split, so that no pixel is shared between splits even when patches overlap.
    """
    block = cfg.region_um / slide_mpp  # level-0 px
    x0, y0 = np.asarray(x0, float), np.asarray(y0, float)
    bx = np.floor((x0 + size0 / 2) / block).astype(np.int64)
    by = np.floor((y0 + size0 / 2) / block).astype(np.int64)
    keys = list(zip(bx.tolist(), by.tolist(), strict=True))
    order = sorted(set(keys), key=lambda k: item_seed(seed, "split", slide, f"{k[0]},{k[1]}"))
    counts = _counts(len(order), (cfg.train, cfg.val, cfg.test))
    of: dict[tuple[int, int], str] = {}
    start = 0
    for split, k in zip(SPLITS, counts, strict=True):
        of.update({b: split for b in order[start : start + k]})
        start += k
    splits = [of[k] for k in keys]
    keep = np.ones(len(keys), bool)
    for i in range(len(keys)):
        bx0, bx1 = int(x0[i] // block), int((x0[i] + size0 - 1e-6) // block)
        by0, by1 = int(y0[i] // block), int((y0[i] + size0 - 1e-6) // block)
        spanned = {of.get((a, b)) for a in range(bx0, bx1 + 1) for b in range(by0, by1 + 1)} - {None}
        keep[i] = spanned == {splits[i]}
    return splits, keep


def read_split_file(path: str | Path) -> dict[str, str]:
    """Read a user's split file (CSV ``slide,split`` or JSON mapping).

    Raises
    ------
    ConfigError
        On a missing or malformed file, or a split other than train/val/test.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: split file not found") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object mapping slide names to splits")
        pairs = [(str(k), str(v)) for k, v in data.items()]
    else:
        pairs = []
        for i, row in enumerate(csv.reader(text.splitlines())):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise ConfigError(f"{path}: line {i + 1} needs two columns: slide,split")
            if i == 0 and row[1].strip().lower() == "split":
                continue  # header
            pairs.append((row[0].strip(), row[1].strip()))
    for slide, split in pairs:
        if split not in SPLITS:
            raise ConfigError(f"{path}: slide {slide!r} has split {split!r}; expected one of {list(SPLITS)}")
    return dict(pairs)
