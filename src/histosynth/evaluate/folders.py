"""Plain image folders as evaluation inputs, and FD/KID/PRDC between two folders in one call.

``histosynth evaluate`` takes a plain folder of PNG images wherever it takes a patch dataset:
another generator's output, a collaborator's folder, ``DS/images`` of any dataset. Such a
folder has no label maps, so the metrics that need maps (mask fidelity, TSTR, per-class FD,
crop copying) are skipped for it, with one sentence in the summary and in ``metrics.json``;
FD, KID, precision/recall/density/coverage, memorisation and density outlier flags are
computed as for a patch dataset.

A folder's identity (its feature-cache key and its input id in the manifest) is a hash of
every image's relative path and content, so renaming or copying the folder keeps its cache,
and changing one pixel does not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histosynth.artifacts import ArtifactError, file_sha256, read_manifest
from histosynth.data.patch_dataset import PatchDataset

__all__ = ["ImageFolder", "compare_folders", "has_maps", "open_images"]

# Other image formats are listed (and skipped, with a sentence) rather than silently ignored:
# a folder of JPEGs gives no FD at all, and a mixed folder a smaller one than its owner expects.
_OTHER_IMAGES = (".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
# Files that mark an unfinished histosynth artefact: such a folder is not a plain image folder
# (its maps/*.png are label maps), and its own "not finished" error is the right answer.
_ARTEFACT_MARKERS = (".pending.json", "index.parquet", "_journal.jsonl")


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


@dataclass(frozen=True)
class ImageFolder:
    """A folder of PNG images (searched recursively, hidden entries skipped), read like the image
    side of a :class:`~histosynth.data.patch_dataset.PatchDataset`.

    Attributes
    ----------
    folder
        The resolved folder.
    id
        ``images-<hash>`` of the images' relative paths and contents.
    index
        One row per image, sorted by path: ``id`` (relative path without suffix), ``image``
        (relative path), ``split`` (``"train"``: a plain folder has no splits).
    ignored
        Relative paths of image files in other formats, not evaluated.
    """

    folder: Path
    id: str
    index: Any
    ignored: tuple[str, ...]

    classes = None  # no label maps, hence no classes

    @classmethod
    def open(cls, folder: str | Path) -> ImageFolder:
        """List and fingerprint the images of ``folder``.

        Raises
        ------
        ArtifactError
            When the folder holds no PNG image.
        """
        import pandas as pd

        root = Path(folder).resolve()
        files = sorted(p for p in root.rglob("*") if p.is_file() and _visible(p, root))
        pngs = [p for p in files if p.suffix.lower() == ".png"]
        others = tuple(p.relative_to(root).as_posix() for p in files if p.suffix.lower() in _OTHER_IMAGES)
        if not pngs:
            extra = f" ({len(others)} images in other formats: evaluation reads PNG only)" if others else ""
            raise ArtifactError(f"{root}: neither a histosynth dataset (no manifest.json) nor a folder of PNG images{extra}")  # fmt: skip
        rel = [p.relative_to(root).as_posix() for p in pngs]
        h = hashlib.sha256()
        for r, p in zip(rel, pngs, strict=True):
            h.update(f"{r}\t{file_sha256(p)}\n".encode())
        index = pd.DataFrame({"id": [r[: -len(".png")] for r in rel], "image": rel, "split": "train"})
        return cls(root, f"images-{h.hexdigest()[:16]}", index, others)

    def __len__(self) -> int:
        return len(self.index)

    def note(self) -> str | None:
        """One sentence on image files left out, if any."""
        if not self.ignored:
            return None
        return (f"{self.folder}: {len(self.ignored)} image file(s) not in PNG format were left out, e.g. "
                f"{self.ignored[0]!r} (evaluation reads PNG only: JPEG artefacts alone move FD)")  # fmt: skip


def open_images(folder: str | Path) -> PatchDataset | ImageFolder:
    """A patch dataset when ``folder`` is one, else a plain folder of PNG images.

    Raises
    ------
    ArtifactError
        For an unfinished histosynth artefact (re-run its stage), or a folder without PNGs.
    """
    path = Path(folder)
    if (path / "manifest.json").is_file() or any((path / m).exists() for m in _ARTEFACT_MARKERS):
        read_manifest(path)  # an unfinished artefact says so, in its own words
        return PatchDataset(path)
    return ImageFolder.open(path)


def has_maps(dataset: PatchDataset | ImageFolder) -> bool:
    """True for a patch dataset (images with label maps), False for a plain image folder."""
    return isinstance(dataset, PatchDataset)


def compare_folders(
    a: str | Path,
    b: str | Path,
    detector: str = "handcrafted",
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    workers: int = 2,
    seed: int = 0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    prdc_k: int = 5,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """FD, KID and precision/recall/density/coverage between two image folders, in one call.

    Both folders may be plain folders of PNG images or histosynth patch datasets (all rows).
    Images are preprocessed as ``histosynth evaluate`` does (clean-fid's "clean" resize).

    Parameters
    ----------
    a, b
        The two folders; ``a`` plays the part of the real images (precision is the share of
        ``b`` inside ``a``'s manifold, recall the converse).
    detector
        A detector name (``histosynth evaluate --list-detectors``); ``inception-v3`` with
        ``weights`` gives the usual FID.
    weights
        A local weight file for the detector, when it needs one.
    device, workers
        Torch device of the detector; image-decoding threads.
    seed, kid_subsets, kid_subset_size, prdc_k
        KID subsets and PRDC's k, as in :class:`~histosynth.evaluate.config.EvaluateConfig`.
    cache_dir
        Keep features here and reuse them on the next call with the same images and detector.

    Returns
    -------
    dict
        ``fd``, ``kid``, ``kid_std``, ``precision``, ``recall``, ``density``, ``coverage`` (the
        last four only when each folder has more than ``prdc_k`` images), ``n_a``, ``n_b`` and
        ``detector`` (its identity).
    """
    from histosynth.evaluate.config import EvaluateConfig
    from histosynth.evaluate.detectors import build_detector
    from histosynth.evaluate.distribution import distribution_metrics
    from histosynth.evaluate.features import FeatureCache, extract, image_set

    cfg = EvaluateConfig(detectors=(detector,), device=device, workers=workers, seed=seed, bootstrap=0,
                         kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, prdc_k=prdc_k)  # fmt: skip
    det = build_detector(detector, str(weights) if weights else None, device)
    cache = FeatureCache(cache_dir) if cache_dir else None
    fa, fb = (extract(image_set(open_images(f)), det, cache, workers, f"{detector} {f}") for f in (a, b))
    out = distribution_metrics(fa, fb, cfg)
    out["n_a"], out["n_b"] = out.pop("n_real"), out.pop("n_synthetic")
    return {**out, "detector": det.identity}
