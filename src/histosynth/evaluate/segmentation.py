"""A DeepLabv3+ segmenter: trained on patch datasets (real, synthetic or both), applied to images.

Class ids of the maps (uint8, possibly sparse) are mapped to contiguous channels through a
lookup table built from the real class map; ids outside it are ignored by the loss. Training
is a fixed number of AdamW steps with a cosine learning-rate decay (Loshchilov & Hutter 2017),
batches drawn with replacement from the union of the training sources by a seeded generator,
so a run is reproducible and every condition gets the same compute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from histosynth.data.classmap import ClassMap
from histosynth.evaluate.config import SegmenterConfig
from histosynth.evaluate.segmetrics import IGNORE, confusion
from histosynth.seeding import item_seed

__all__ = ["Segmenter", "Source", "load_segmenter", "save_segmenter", "score", "train_segmenter"]


@dataclass(frozen=True)
class Source:
    """Rows of one patch dataset used for training or testing."""

    dataset: object  # histosynth.data.patch_dataset.PatchDataset
    rows: tuple[int, ...]


def class_lut(classes: ClassMap) -> np.ndarray:
    """uint8 id → channel index (IGNORE for ids outside the class map)."""
    lut = np.full(256, IGNORE, np.uint8)
    for channel, cid in enumerate(classes.ids):
        lut[cid] = channel
    return lut


def _build_model(cfg: SegmenterConfig, num_classes: int):
    import segmentation_models_pytorch as smp

    return smp.DeepLabV3Plus(encoder_name=cfg.encoder, encoder_depth=cfg.encoder_depth, encoder_weights=None,
                             classes=num_classes, decoder_channels=cfg.decoder_channels)  # fmt: skip


def _to_tensor(images: np.ndarray):
    import torch

    x = torch.from_numpy(np.array(images, np.float32)).permute(
        0, 3, 1, 2
    )  # a copy: decoded PNGs are read-only
    # Per-image standardisation: no ImageNet statistics apply to a randomly initialised encoder.
    return (x / 127.5) - 1.0


class _Crops:
    """Random crops (+ flips and 90° turns, + an optional colour augmentation) of training pairs."""

    def __init__(self, pairs: list[tuple[object, int]], lut: np.ndarray, crop: int, augment: bool, seed: int,
                 colour: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None):  # fmt: skip
        self.pairs, self.lut, self.crop, self.augment, self.seed = pairs, lut, crop, augment, seed
        self.colour = colour

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]):
        i, draw = key
        ds, row = self.pairs[i]
        img, lab = ds.image(row), self.lut[ds.label(row)]
        rng = np.random.default_rng(item_seed(self.seed, "crop", draw))
        h, w = lab.shape
        c = min(self.crop, h, w)
        y, x = rng.integers(0, h - c + 1), rng.integers(0, w - c + 1)
        img, lab = img[y : y + c, x : x + c], lab[y : y + c, x : x + c]
        if self.augment:
            k = int(rng.integers(4))
            img, lab = np.rot90(img, k), np.rot90(lab, k)
            if rng.random() < 0.5:
                img, lab = img[:, ::-1], lab[:, ::-1]
        if self.colour is not None:  # its own generator: the geometric draws stay as without it
            img = self.colour(
                np.ascontiguousarray(img), np.random.default_rng(item_seed(self.seed, "colour", draw))
            )
        return np.ascontiguousarray(img), np.ascontiguousarray(lab)


class _Draws:
    """The pre-drawn (pair, draw) keys of a run, as a map-style dataset."""

    def __init__(self, data: _Crops, draws: list[tuple[int, int]]) -> None:
        self.data, self.draws = data, draws

    def __len__(self) -> int:
        return len(self.draws)

    def __getitem__(self, j: int):
        return self.data[self.draws[j]]


class Segmenter:
    """A trained DeepLabv3+ with its class map; ``predict`` returns class *ids* (not channels)."""

    def __init__(self, model, classes: ClassMap, device: str = "cpu", losses: Sequence[float] = ()) -> None:
        self.model, self.classes, self.device = model.eval(), classes, device
        self.losses = list(losses)
        self.lut = class_lut(classes)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) uint8 class ids of RGB images (N, H, W, 3), padded by reflection to a multiple of 32."""
        import torch
        import torch.nn.functional as F

        h, w = images.shape[1:3]
        x = _to_tensor(images).to(self.device)
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        with torch.inference_mode():
            channels = self.model(x)[:, :, :h, :w].argmax(1).cpu().numpy()
        return np.asarray(self.classes.ids, np.uint8)[channels]

    def confusion(self, label: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Confusion matrix (channel order of ``classes``) of predicted ids against a map's ids."""
        return confusion(self.lut[label], self.lut[pred], len(self.classes))


def train_segmenter(
    sources: Sequence[Source],
    classes: ClassMap,
    cfg: SegmenterConfig,
    seed: int,
    device: str = "cpu",
    colour: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
) -> Segmenter:
    """Train DeepLabv3+ on the union of ``sources`` for ``cfg.steps`` steps.

    ``colour``: an augmentation ``(image, rng) -> image`` applied to every training crop with a
    generator of its own (e.g. :class:`~histosynth.domains.labs.HedJitter`); picklable when
    ``cfg.workers > 0``.
    """
    import torch
    from torch.utils.data import DataLoader

    pairs = [(s.dataset, r) for s in sources for r in s.rows]
    if not pairs:
        raise ValueError("no training images for the segmenter")
    if cfg.batch_size < 2:
        raise ValueError("segmenter batch_size must be at least 2 (DeepLabv3+ pools batch statistics)")
    torch.manual_seed(item_seed(seed, "segmenter-init"))
    model = _build_model(cfg, len(classes)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    rng = np.random.default_rng(item_seed(seed, "segmenter-batches"))
    draws = [(int(i), d) for d, i in enumerate(rng.integers(0, len(pairs), cfg.steps * cfg.batch_size))]
    data = _Crops(pairs, class_lut(classes), cfg.crop, cfg.augment, seed, colour)
    loader = DataLoader(
        _Draws(data, draws), batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=list
    )
    losses = []
    for batch in loader:
        # Crops of smaller images set the batch's size; the encoder needs multiples of 32.
        size = min(min(b[1].shape) for b in batch) // 32 * 32
        if size < 32:
            raise ValueError("segmenter training images must be at least 32×32 pixels")
        x = _to_tensor(np.stack([b[0][:size, :size] for b in batch])).to(device)
        y = torch.from_numpy(np.stack([b[1][:size, :size] for b in batch]).astype(np.int64)).to(device)
        loss = torch.nn.functional.cross_entropy(model(x), y, ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return Segmenter(model, classes, device, losses)


def score(seg: Segmenter, source: Source, batch: int = 16,
          transform: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Segment every image of ``source`` and compare with its map.

    Returns the summed confusion matrix and each image's own mIoU (the per-image agreement used
    by the hallucination flags). ``transform``: applied to each image first (e.g. a stain
    normaliser, :mod:`histosynth.domains.normalize`).
    """
    from histosynth.evaluate.segmetrics import iou_per_class, mean_score

    total = np.zeros((len(seg.classes), len(seg.classes)), np.int64)
    per_image = np.empty(len(source.rows))
    rows = list(source.rows)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        images = [source.dataset.image(r) for r in chunk]
        if transform is not None:
            images = [transform(im) for im in images]
        if len({im.shape for im in images}) == 1:
            preds = seg.predict(np.stack(images))
        else:  # mixed sizes: one at a time
            preds = [seg.predict(im[None])[0] for im in images]
        for j, (row, pred) in enumerate(zip(chunk, preds, strict=True)):
            cm = seg.confusion(source.dataset.label(row), pred)
            total += cm
            per_image[start + j] = mean_score(iou_per_class(cm))
    return total, per_image


def save_segmenter(seg: Segmenter, path) -> None:
    """Weights as safetensors; the loss curve travels in its metadata."""
    import json

    from safetensors.torch import save

    from histosynth.artifacts import atomic_write_bytes

    state = {k: v.detach().cpu().contiguous() for k, v in seg.model.state_dict().items()}
    atomic_write_bytes(path, save(state, metadata={"losses": json.dumps(seg.losses)}))


def load_segmenter(path, classes: ClassMap, cfg: SegmenterConfig, device: str = "cpu") -> Segmenter:
    """A segmenter saved by :func:`save_segmenter` for the same config and classes."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    model = _build_model(cfg, len(classes))
    model.load_state_dict(load_file(str(path), device="cpu"))
    with safe_open(str(path), framework="pt") as fh:
        losses = json.loads((fh.metadata() or {}).get("losses", "[]"))
    return Segmenter(model.to(device), classes, device, losses)
