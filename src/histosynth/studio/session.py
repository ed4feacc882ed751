"""What the studio page works with: the model, the crop bank, held-out maps and uploads.

:class:`StudioSession` turns the page's requests into validated generator inputs and a
finished job into the files the page offers for download (image, label map, QuPath GeoJSON
and a provenance record).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.data.classmap import ClassMap, ClassMapError
from histosynth.data.crops import Crop
from histosynth.sample import DEFAULT_SAMPLER
from histosynth.studio.jobs import GenerateSettings, Generator, Job, JobQueue
from histosynth.studio.uploads import UploadError, UploadStore, decode_label

__all__ = ["Limits", "MapSource", "StudioSession", "check_same_classes"]


@dataclass(frozen=True)
class Limits:
    """Accepted ranges of the page's controls."""

    max_steps: int = 1000
    max_guidance: float = 20.0
    max_seed: int = 2**32 - 1
    max_crops_per_class: int = 8


def check_same_classes(model: ClassMap, other: ClassMap, where: str) -> None:
    """Raise when ``other`` names a class id differently from the model, or has ids it lacks."""
    names = dict(zip(model.ids, model.names, strict=True))
    for c in other.classes:
        if names.get(c.id) != c.name:
            raise ClassMapError(
                f"{where}: class {c.id} is {c.name!r} there but {names.get(c.id)!r} in the model; "
                "use data made with the model's class map"
            )


class MapSource:
    """Semantic maps of a held-out split of a patch dataset, resized to the model's size.

    Parameters
    ----------
    folder
        A patch dataset.
    split
        The split offered (``test`` by default; ``all`` for every row).
    size
        The model's image side; other map sizes are resized with nearest-neighbour.
    """

    def __init__(self, folder: str | Path, split: str, size: int) -> None:
        from histosynth.data.patch_dataset import PatchDataset

        self.dataset = PatchDataset(folder, split=None if split == "all" else split)
        self.size = size

    def __len__(self) -> int:
        return len(self.dataset)

    def listing(self) -> list[dict[str, Any]]:
        """Index, patch id and slide of every map."""
        rows = self.dataset.index
        return [{"index": i, "id": str(r.id), "slide": str(r.slide)} for i, r in enumerate(rows.itertuples())]

    def label(self, i: int) -> np.ndarray:
        """Class ids ``(size, size)`` of map ``i``."""
        from PIL import Image

        if not 0 <= i < len(self):
            raise IndexError(f"there is no held-out map {i}; the dataset has {len(self)}")
        label = self.dataset.label(i)
        if label.shape != (self.size, self.size):
            label = np.asarray(
                Image.fromarray(label).resize((self.size, self.size), Image.Resampling.NEAREST)
            )
        return label


class StudioSession:
    """The state behind the studio page.

    Parameters
    ----------
    generator
        The model (see :class:`histosynth.studio.jobs.Generator`).
    crop_bank
        A :class:`histosynth.sample.crop_bank.CropBank` with the model's classes.
    maps
        Held-out maps to start from, or ``None``.
    uploads
        Where uploaded crops are kept.
    limits
        Ranges of the controls.
    """

    def __init__(
        self,
        generator: Generator,
        crop_bank: Any,
        maps: MapSource | None = None,
        uploads: UploadStore | None = None,
        limits: Limits = Limits(),
    ) -> None:
        self.generator = generator
        self.classes: ClassMap = generator.classes
        self.size = int(generator.image_size)
        check_same_classes(self.classes, crop_bank.classes, f"crop bank {crop_bank.folder}")
        if maps is not None:
            check_same_classes(self.classes, maps.dataset.classes, f"maps {maps.dataset.folder}")
        self.bank = crop_bank
        self.maps = maps
        self.uploads = uploads or UploadStore()
        self.limits = limits
        self.queue = JobQueue(generator)
        self._crop_ids = set(crop_bank.index["crop_id"].astype(str))

    # ------------------------------------------------------------------ page data
    def config(self) -> dict[str, Any]:
        """Everything the page needs to draw its controls."""
        counts = self.bank.index["class_id"].value_counts()
        background = 0 if 0 in self.classes.ids else self.classes.ids[0]
        lim = self.limits
        samplers = list(self.generator.samplers)
        return {
            "size": self.size,
            "background": background,
            "classes": [
                {"id": c.id, "name": c.name, "color": list(c.color), "crops": int(counts.get(c.id, 0))}
                for c in self.classes.classes
            ],
            "samplers": samplers,
            "defaults": {
                "guidance_map": 1.0,
                "guidance_crops": 1.0,
                "steps": 20,
                "seed": 0,
                "sampler": DEFAULT_SAMPLER if DEFAULT_SAMPLER in samplers else samplers[0],
            },
            "limits": {
                "max_steps": lim.max_steps,
                "max_guidance": lim.max_guidance,
                "max_seed": lim.max_seed,
                "max_crops_per_class": lim.max_crops_per_class,
                "max_upload_bytes": self.uploads.limits.max_bytes,
            },
            "maps": len(self.maps) if self.maps is not None else 0,
        }

    def crop_listing(self, class_id: int, offset: int = 0, limit: int = 24) -> dict[str, Any]:
        """A page of the bank's crops of one class, with their source slide, patch and box."""
        rows = self.bank.index[self.bank.index["class_id"] == class_id]
        page = rows.iloc[max(offset, 0) : max(offset, 0) + max(1, min(limit, 200))]
        items = [
            {
                "id": str(r.crop_id),
                "slide": str(r.slide),
                "patch": str(r.patch),
                "box": [int(r.x), int(r.y), int(r.w), int(r.h)],
            }
            for r in page.itertuples()
        ]
        return {"class_id": class_id, "total": len(rows), "offset": offset, "items": items}

    def crop_png(self, crop_id: str) -> bytes | None:
        """PNG bytes of a bank crop or an upload, or ``None`` when no such crop exists."""
        from histosynth.data.patch_dataset import encode_png

        if crop_id in self._crop_ids:
            return (Path(self.bank.folder) / "crops" / f"{crop_id}.png").read_bytes()
        upload = self.uploads.get(crop_id)
        return encode_png(upload.pixels) if upload is not None else None

    # ------------------------------------------------------------------ requests
    def resolve_crops(self, refs: list[dict[str, Any]], label: np.ndarray) -> list[Crop]:
        """Crops named by the page (bank ids or upload ids), for the classes present in ``label``.

        Raises
        ------
        UploadError
            For an unknown crop id, a class the model lacks or too many crops of a class.
        """
        present = set(np.unique(label).tolist())
        pairs = [(int(ref["class_id"]), str(ref["crop"])) for ref in refs]
        for cid in {c for c, _ in pairs}:
            if cid not in self.classes.ids:
                raise UploadError(f"class id {cid} is not a class of the model")
            if sum(c == cid for c, _ in pairs) > self.limits.max_crops_per_class:
                raise UploadError(f"at most {self.limits.max_crops_per_class} crops may be picked per class")
        # an exemplar of a class that the map does not show conditions nothing: it is left out
        crops = [self._crop(cid, crop_id) for cid, crop_id in pairs if cid in present]
        return crops

    def _crop(self, class_id: int, crop_id: str) -> Crop:
        if crop_id in self._crop_ids:
            row = self.bank.index[self.bank.index["crop_id"] == crop_id].iloc[0]
            if int(row["class_id"]) != class_id:
                raise UploadError(f"crop {crop_id} shows class {int(row['class_id'])}, not class {class_id}")
            return Crop(class_id, self.bank.load(crop_id), None, self.bank.provenance(row))
        upload = self.uploads.get(crop_id)
        if upload is None:
            raise UploadError(f"crop {crop_id!r} is unknown or its upload has expired; pick it again")
        return Crop(class_id, upload.pixels, None, upload.provenance())

    def settings(self, body: dict[str, Any]) -> GenerateSettings:
        """Checked generation settings from the page's fields."""
        lim = self.limits
        s = GenerateSettings(
            float(body["guidance_map"]),
            float(body["guidance_crops"]),
            int(body["steps"]),
            str(body["sampler"]),
            int(body["seed"]),
        )
        if s.sampler not in self.generator.samplers:
            raise UploadError(f"sampler {s.sampler!r} is not one of {list(self.generator.samplers)}")
        if not 1 <= s.steps <= lim.max_steps:
            raise UploadError(f"steps must lie between 1 and {lim.max_steps}")
        for name, v in (("map", s.guidance_map), ("crop", s.guidance_crops)):
            if not 0.0 <= v <= lim.max_guidance:
                raise UploadError(f"the {name} guidance scale must lie between 0 and {lim.max_guidance:g}")
        if not 0 <= s.seed <= lim.max_seed:
            raise UploadError(f"the seed must lie between 0 and {lim.max_seed}")
        return s

    def submit(self, body: dict[str, Any]) -> Job:
        """Validate a generate request and queue it."""
        label = decode_label(body["label"], self.size, self.classes.ids)
        settings = self.settings(body)
        crops = self.resolve_crops(list(body.get("crops", [])), label)
        return self.queue.submit(label, crops, settings)

    # ------------------------------------------------------------------ results
    def job_status(self, job: Job) -> dict[str, Any]:
        """What the page polls: state, queue position, progress, error, classes present."""
        out: dict[str, Any] = {
            "id": job.id,
            "state": job.state,
            "position": self.queue.position(job),
            "step": job.step,
            "total": job.total,
            "error": job.error,
        }
        if job.state == "done":
            out["classes"] = sorted(int(c) for c in np.unique(job.label))
            out["size"] = list(job.image.shape[:2])  # type: ignore[union-attr]
            out["seconds"] = round((job.finished or 0) - (job.started or 0), 2)
        return out

    def result_file(self, job: Job, name: str) -> tuple[bytes, str] | None:
        """Bytes and media type of one download of a finished job, or ``None`` for an unknown name."""
        from histosynth.data.geojson_export import label_to_geojson
        from histosynth.data.patch_dataset import encode_png

        if job.state != "done" or job.image is None:
            return None
        makers = {
            "image.png": (lambda: encode_png(job.image), "image/png"),
            "label.png": (lambda: encode_png(job.label), "image/png"),
            "label-colour.png": (lambda: encode_png(self.classes.colorize(job.label)), "image/png"),
            "annotation.geojson": (
                lambda: json.dumps(label_to_geojson(job.label, self.classes)).encode(),
                "application/geo+json",
            ),
            "provenance.json": (
                lambda: json.dumps(self._provenance(job), indent=2).encode(),
                "application/json",
            ),
        }
        if name not in makers:
            return None
        make, media = makers[name]
        if name not in job.cache:
            job.cache[name] = make()
        return job.cache[name], media

    def _provenance(self, job: Job) -> dict[str, Any]:
        s = job.settings
        return {
            "job": job.id,
            "seed": s.seed,
            "sampler": s.sampler,
            "steps": s.steps,
            "guidance_map": s.guidance_map,
            "guidance_crops": s.guidance_crops,
            "crop_sources": job.crop_sources(),
            "crop_bank": self.bank.id,
            "model": getattr(self.generator, "source", None),
            "classes": self.classes.to_json()["classes"],
        }

    def close(self) -> None:
        """Stop the generation worker."""
        self.queue.close()
