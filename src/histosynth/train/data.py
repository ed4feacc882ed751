"""Training batches: patches, maps and crops as a pure function of (seed, step).

Every sample of every step is fixed by the run seed alone: the order is a per-epoch
permutation of the patches (``numpy_rng(seed, "order", epoch)``), and each sample's
augmentation and crops come from ``numpy_rng(seed, "item", epoch, row)``. A resumed run
therefore sees exactly the batches the interrupted one would have seen, with any number of
DataLoader workers, and nothing about the data needs saving in a checkpoint.

A global batch of step ``s`` holds stream positions ``s·B … s·B + B − 1`` (``B`` = global
batch); process ``r`` of ``W`` takes, for accumulation step ``a``, the micro-batch at offset
``(a·W + r)·b`` (``b = B / (W · accum)``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histosynth.config import ConfigError
from histosynth.data.crops import CropSampler, canvas_size
from histosynth.data.patch_dataset import PatchDataset
from histosynth.diffusion.inputs import CropBatch, make_crop_batch
from histosynth.seeding import numpy_rng
from histosynth.train.config import DataConfig

__all__ = ["IDENTITY_LUT", "Batch", "BatchPlan", "Curriculum", "StepBatches", "TrainData", "dihedral"]

PRELOAD_LIMIT = 4 << 30  # bytes


IDENTITY_LUT = np.arange(256, dtype=np.int64)


def dihedral(arr: np.ndarray, k: int, copy: bool = True) -> np.ndarray:
    """One of the 8 symmetries of the square (``k`` in 0..7): ``k % 4`` quarter turns, flipped if ``k ≥ 4``.

    ``copy=False`` returns a strided view.
    """
    out = np.rot90(arr, k % 4, axes=(0, 1))
    out = out[:, ::-1] if k >= 4 else out
    return np.ascontiguousarray(out) if copy else out


def _resize(arr: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    if arr.shape[0] == size and arr.shape[1] == size:
        return arr
    from PIL import Image

    mode = Image.Resampling.NEAREST if nearest else Image.Resampling.BOX
    return np.asarray(Image.fromarray(arr).resize((size, size), mode))


@dataclass
class Batch:
    """A micro-batch: ``images (B, 3, S, S)`` in [-1, 1], ``maps (B, S, S)`` long, crops, patch ids,
    and each image's ``(dataset row, symmetry)`` (what the latent cache is keyed by)."""

    images: torch.Tensor
    maps: torch.Tensor
    crops: CropBatch
    ids: list[str]
    keys: list[tuple[int, int]] = field(default_factory=list)


class Curriculum:
    """Coarse-to-fine maps for nested pseudo-map granularities (k = 5 first, then finer).

    The dataset's maps hold the finest clusters (ids ``0 .. K-1``); ``hierarchy.json`` in the
    dataset folder gives, for each coarser granularity ``k``, the parent cluster of every fine
    id: ``{"levels": {"5": [p_0, …, p_{K-1}], "10": […], …}}``. The file the ``cluster``
    stage writes, ``{"background": 0, "fine_k": K, "levels": …}``, counts ``k`` tissue types
    *plus* the background id 0 (parents in ``0..k``; stage ``K`` is the finest). During a coarse stage each map
    (and crop class) is relabelled to its parent, in an id range of its own after the fine
    ids (coarse ``k`` at ``K + offset_k``), so the fine ids keep their meaning and a finished
    model takes fine maps unchanged.

    Parameters
    ----------
    folder
        The dataset folder.
    num_fine
        ``K``, the number of fine ids.
    stages
        ``((k, until_step), …)``; the last stage lasts to the end.
    """

    def __init__(self, folder: str | Path, num_fine: int, stages: tuple[tuple[int, int], ...]) -> None:
        path = Path(folder) / "hierarchy.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            levels = {int(k): v for k, v in data["levels"].items()}
            # The cluster stage's format: background 0 is an extra id at every level.
            extra = 1 if "background" in data else 0
            fine = {num_fine, int(data["fine_k"])} if "fine_k" in data else {num_fine}
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: data.curriculum needs this file (parent cluster per fine id)"
            ) from None
        except (json.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a valid hierarchy file ({exc})") from None
        self.stages = tuple((int(k), int(until)) for k, until in stages)
        self.luts: list[np.ndarray] = []
        offset = num_fine
        for k, _ in self.stages:
            lut = np.arange(256, dtype=np.int64)
            if k not in fine:
                n = k + extra  # coarse ids at this level
                parents = np.asarray(levels.get(k, []), np.int64)
                if len(parents) != num_fine or parents.min() < 0 or parents.max() >= n:
                    raise ConfigError(f"{path}: level {k} must list {num_fine} parent ids in 0..{n - 1}")
                lut[:num_fine] = offset + parents
                offset += n
            self.luts.append(lut)
        self.num_classes = offset

    def lut(self, step: int) -> np.ndarray:
        """The id relabelling in force at ``step``."""
        for (_, until), lut in zip(self.stages, self.luts, strict=True):
            if step < until:
                return lut
        return self.luts[-1]


class TrainData:
    """Patches of a dataset prepared for training (resize, augment, crops).

    Parameters
    ----------
    dataset
        The patch dataset.
    cfg
        Data settings.
    seed
        The run seed.
    curriculum
        Optional coarse-to-fine relabelling.
    with_crops
        Sample crops (off for the map-only conditioning, which ignores them).
    place
        Compute paste positions for foreign crops (only the spatial conditioning reads them).
    """

    def __init__(
        self,
        dataset: PatchDataset,
        cfg: DataConfig,
        seed: int,
        curriculum: Curriculum | None = None,
        with_crops: bool = True,
        place: bool = True,
    ) -> None:
        if len(dataset) == 0:
            raise ConfigError(f"{dataset.folder}: no patches in split {cfg.split!r}")
        self.dataset, self.cfg, self.seed, self.curriculum = dataset, cfg, seed, curriculum
        self.with_crops, self.place = with_crops, place
        self.size = cfg.image_size
        self.canvas = canvas_size(self.size)
        self.sampler = CropSampler(cfg.per_class, cfg.max_crops, cfg.foreign_prob, cfg.min_area_frac)
        n = len(dataset)
        self.ids = [str(v) for v in dataset.index["id"]]
        frac = np.zeros((n, 256), np.float32)
        for i, f in enumerate(dataset.index["fractions"]):
            frac[i, : len(f)] = f
        self.fractions = frac  # (n, 256) class fractions by id
        # A dataset of simulated labs: foreign exemplars come from the image's own lab, since a
        # crop of another lab would teach the model that crops need not match the tissue's stain.
        index = dataset.index
        self.labs = index["domain"].astype(str).to_numpy() if "domain" in index.columns else None
        self._rows: dict[tuple[int, int], np.ndarray] = {}
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        if cfg.preload and n * self.size * self.size * 4 <= PRELOAD_LIMIT:
            self._cache = [self._read(i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.ids)

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image = _resize(self.dataset.image(i), self.size, nearest=False)
        label = _resize(self.dataset.label(i), self.size, nearest=True)
        return np.array(image), np.array(label)  # writable copies (PIL's arrays are read-only)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``(S, S, 3)`` uint8 and map ``(S, S)`` uint8 of row ``i`` (not augmented)."""
        return self._cache[i] if self._cache is not None else self._read(i)

    def rows_with(self, cls: int, lut: np.ndarray) -> np.ndarray:
        """Rows where class ``cls`` (after relabelling) covers at least ``min_area_frac``."""
        key = (cls, id(lut))  # luts are long-lived (IDENTITY_LUT, Curriculum.luts)
        if key not in self._rows:
            fine = np.flatnonzero(lut == cls)
            self._rows[key] = np.flatnonzero(self.fractions[:, fine].sum(1) >= self.cfg.min_area_frac)
        return self._rows[key]

    def symmetry(self, epoch: int, i: int) -> int:
        """The symmetry (0..7, see :func:`dihedral`) row ``i`` is shown under in ``epoch``."""
        return self._symmetry(numpy_rng(self.seed, "item", epoch, i))

    def _symmetry(self, rng: np.random.Generator) -> int:
        return int(rng.integers(8)) if self.cfg.augment else 0

    def item(self, epoch: int, i: int, lut: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
        """``(image, map, crops)`` of row ``i`` in ``epoch``: augmented, relabelled, with crops."""
        rng = numpy_rng(self.seed, "item", epoch, i)
        image, label = self.load(i)
        k = self._symmetry(rng)  # the item stream's first draw, as symmetry() repeats it
        image, label = dihedral(image, k), lut[dihedral(label, k)].astype(np.int64)

        def foreign(cls: int, r: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str] | None:
            rows = self.rows_with(cls, lut)
            if self.labs is not None:
                rows = rows[self.labs[rows] == self.labs[i]]
            rows = rows[rows != i] if len(rows) > 1 else rows
            if len(rows) == 0:
                return None
            j = int(rows[r.integers(len(rows))])
            img, lab = self.load(j)
            kj = int(r.integers(8)) if self.cfg.augment else 0
            return dihedral(img, kj, copy=False), lut[dihedral(lab, kj, copy=False)], self.ids[j]

        crops = self.sampler(image, label, rng, foreign, source=self.ids[i]) if self.with_crops else []
        return image, label, crops

    def collate(self, items: list[tuple[np.ndarray, np.ndarray, list]], ids: list[str]) -> Batch:
        images = np.stack([it[0] for it in items]).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
        maps = torch.from_numpy(np.stack([it[1] for it in items]))
        crops = make_crop_batch(
            [it[2] for it in items], maps, self.canvas, self.cfg.max_crops, place=self.place
        )
        return Batch(torch.from_numpy(images), maps, crops, ids)


@dataclass(frozen=True)
class BatchPlan:
    """Which rows make each micro-batch (see the module notes)."""

    n: int
    global_batch: int
    accum: int = 1
    world: int = 1
    rank: int = 0
    seed: int = 0

    @property
    def micro_batch(self) -> int:
        b, rem = divmod(self.global_batch, self.world * self.accum)
        if rem or b == 0:
            raise ConfigError(
                f"optim.batch_size {self.global_batch} is not a multiple of processes × accumulation "
                f"({self.world} × {self.accum})"
            )
        return b

    def positions(self, micro: int) -> range:
        """Positions in its step's global batch of the samples of micro-batch ``micro``."""
        b = self.micro_batch
        start = (micro * self.world + self.rank) * b
        return range(start, start + b)

    def rows(self, step: int, micro: int) -> list[tuple[int, int]]:
        """``(epoch, row)`` of each sample of micro-batch ``micro`` of ``step``."""
        return [
            (p // self.n, int(_perm(self.seed, p // self.n, self.n)[p % self.n]))
            for p in (step * self.global_batch + q for q in self.positions(micro))
        ]


@lru_cache(maxsize=4)
def _perm(seed: int, epoch: int, n: int) -> np.ndarray:
    return numpy_rng(seed, "order", epoch).permutation(n)


class StepBatches(torch.utils.data.Dataset):
    """Micro-batch ``k`` (= ``step · accum + micro``) as a map-style dataset for a DataLoader."""

    def __init__(self, data: TrainData, plan: BatchPlan) -> None:
        self.data, self.plan = data, plan

    def __len__(self) -> int:  # unbounded in principle; the sampler picks the range
        return 1 << 62

    def __getitem__(self, k: int) -> Batch:
        step, micro = divmod(int(k), self.plan.accum)
        lut = self.data.curriculum.lut(step) if self.data.curriculum else IDENTITY_LUT
        rows = self.plan.rows(step, micro)
        items = [self.data.item(e, i, lut) for e, i in rows]
        batch = self.data.collate(items, [self.data.ids[i] for _, i in rows])
        batch.keys = [(i, self.data.symmetry(e, i)) for e, i in rows]
        return batch


def make_loader(data: TrainData, plan: BatchPlan, start: int, stop: int, workers: int) -> Any:
    """A DataLoader over micro-batches ``start .. stop - 1`` (prefetched by ``workers`` processes)."""
    return torch.utils.data.DataLoader(
        StepBatches(data, plan),
        batch_size=None,
        sampler=range(start, stop),
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
