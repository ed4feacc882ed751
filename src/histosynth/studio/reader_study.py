"""A blinded reader study: real and synthetic images, shuffled, with a hidden key.

As in the paper's pathologist evaluation, a rater sees one image at a time, scores its
realism (1–5) and guesses whether it is real or synthetic. The study folder::

    <folder>/images/<item>.png    re-encoded pixels only (no metadata that could unblind)
    <folder>/study.json           item ids in the presentation order; what raters may see
    <folder>/key.json             item → source (real / synthetic), dataset id, patch id
    <folder>/ratings/<rater>.jsonl one line per rating, appended and fsynced as it is given
    <folder>/manifest.json        written last, kind "reader-study"

Item ids are random tokens, so neither the id nor the order tells the source. Each rater sees
the items in an order shuffled from (study seed, rater name), which spreads order effects.
The web app never serves ``key.json``; keep it away from raters when they see the folder.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import (
    ArtifactError,
    Kind,
    atomic_write_bytes,
    atomic_write_json,
    prepare_output,
    read_manifest,
    write_manifest,
)
from histosynth.seeding import numpy_rng

__all__ = ["SOURCES", "Rating", "ReaderStudy", "build_reader_study"]
SOURCES = ("real", "synthetic")
_RATER = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_FIELDS = ("rater", "item", "realism", "guess", "seconds", "time")


def _pick(folder: str | Path, n: int | None, split: str | None, rng: np.random.Generator):
    from histosynth.data.patch_dataset import PatchDataset

    ds = PatchDataset(folder, split=split)
    if len(ds) == 0:
        raise ArtifactError(f"{ds.folder}: has no images{f' in split {split!r}' if split else ''}")
    count = len(ds) if n is None else min(n, len(ds))
    return ds, sorted(rng.choice(len(ds), size=count, replace=False).tolist())


def build_reader_study(
    real: str | Path,
    synthetic: str | Path,
    out: str | Path,
    n_real: int | None = None,
    n_synthetic: int | None = None,
    real_split: str | None = "test",
    seed: int = 0,
    overwrite: bool = False,
) -> ReaderStudy:
    """Draw real and synthetic images into a blinded, shuffled study folder.

    Parameters
    ----------
    real, synthetic
        Patch datasets (the real one's ``real_split`` rows; every synthetic row).
    out
        The study folder.
    n_real, n_synthetic
        Images drawn from each (``None``: all).
    real_split
        Split of the real dataset to draw from (``None``: all rows).
    seed
        Draws, item ids and presentation orders derive from it.
    overwrite
        Replace a study of other settings in ``out``.
    """
    config = {"n_real": n_real, "n_synthetic": n_synthetic, "real_split": real_split, "seed": seed}
    rng = numpy_rng(seed, "reader-study")
    picks = [
        ("real", *_pick(real, n_real, real_split, rng)),
        ("synthetic", *_pick(synthetic, n_synthetic, None, rng)),
    ]
    inputs = {src: ds.id for src, ds, _ in picks}
    o = prepare_output(out, Kind.READER_STUDY, config, inputs, overwrite=overwrite)
    if not o.complete:
        _write_items(o.folder, picks, rng, seed)
        write_manifest(o.folder, Kind.READER_STUDY, config, inputs, {src: len(idx) for src, _, idx in picks})
    return ReaderStudy(o.folder)


def _write_items(folder: Path, picks: list, rng: np.random.Generator, seed: int) -> None:
    from histosynth.data.patch_dataset import encode_png

    total = sum(len(idx) for _, _, idx in picks)
    tokens: set[str] = set()
    while len(tokens) < total:
        tokens.add(f"{int(rng.integers(0, 2**40)):010x}")
    ids = rng.permutation(sorted(tokens)).tolist()
    key, shape = {}, None
    for src, ds, idx in picks:
        for i in idx:
            image = ds.image(i)
            if shape is not None and image.shape != shape:
                raise ArtifactError(
                    f"{ds.folder}: image {ds.index.at[i, 'id']} is {image.shape[1]}×{image.shape[0]} px but "
                    f"others are {shape[1]}×{shape[0]}; a blinded study needs one size"
                )
            shape = image.shape
            item = ids.pop()
            atomic_write_bytes(folder / "images" / f"{item}.png", encode_png(image))
            key[item] = {"source": src, "dataset": ds.id, "patch": str(ds.index.at[i, "id"])}
    order = rng.permutation(sorted(key)).tolist()
    atomic_write_json(folder / "key.json", {"seed": seed, "items": key})
    atomic_write_json(folder / "study.json", {"seed": seed, "items": order})


@dataclass(frozen=True)
class Rating:
    """One answer of one rater about one item."""

    rater: str
    item: str
    realism: int
    guess: str
    seconds: float | None = None
    time: str = ""


class ReaderStudy:
    """A finished study folder: items, per-rater orders, and ratings saved as they are given.

    Parameters
    ----------
    folder
        A folder written by :func:`build_reader_study`.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder, Kind.READER_STUDY)
        self.seed = int(json.loads((self.folder / "study.json").read_text(encoding="utf-8"))["seed"])
        self.items: list[str] = json.loads((self.folder / "study.json").read_text(encoding="utf-8"))["items"]
        self._known = set(self.items)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def check_rater(rater: str) -> str:
        """The rater name, refused unless 1–40 letters, digits, ``-`` or ``_``."""
        if not isinstance(rater, str) or not _RATER.match(rater):
            raise ValueError("a rater name may hold only letters, digits, '-' and '_' (at most 40)")
        return rater

    def order(self, rater: str) -> list[str]:
        """The items in the order this rater sees them."""
        return numpy_rng(self.seed, "order", self.check_rater(rater)).permutation(self.items).tolist()

    def image_path(self, item: str) -> Path | None:
        """The image of an item, or ``None`` for an id that is not in the study."""
        return self.folder / "images" / f"{item}.png" if item in self._known else None

    def ratings_path(self, rater: str) -> Path:
        return self.folder / "ratings" / f"{self.check_rater(rater)}.jsonl"

    def add(self, rating: Rating) -> None:
        """Append one rating as a JSON line and fsync it before returning."""
        self.check_rater(rating.rater)
        if rating.item not in self._known:
            raise ValueError(f"item {rating.item!r} is not part of this study")
        if rating.guess not in SOURCES:
            raise ValueError(f"the guess must be one of {list(SOURCES)}")
        if type(rating.realism) is not int or not 1 <= rating.realism <= 5:
            raise ValueError("the realism score must be a whole number from 1 to 5")
        record = {
            **rating.__dict__,
            "time": rating.time or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        path = self.ratings_path(rating.rater)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def ratings(self, rater: str | None = None) -> list[Rating]:
        """Saved ratings (one rater's or all); for an item rated twice the later answer counts.

        A last line cut short by a crash is skipped; every complete line before it is kept.
        """
        paths = [self.ratings_path(rater)] if rater else sorted((self.folder / "ratings").glob("*.jsonl"))
        latest: dict[tuple[str, str], Rating] = {}
        for path in paths:
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    r = Rating(**{k: rec[k] for k in _FIELDS if k in rec})
                except (json.JSONDecodeError, TypeError):
                    continue
                if r.item in self._known:
                    latest[(r.rater, r.item)] = r
        return list(latest.values())

    def progress(self, rater: str) -> dict[str, Any]:
        """How far a rater is, and the next item to show (``None`` when every item is rated)."""
        done = {r.item for r in self.ratings(rater)}
        nxt = next((i for i in self.order(rater) if i not in done), None)
        return {"rater": rater, "total": len(self.items), "done": len(done), "next": nxt}
