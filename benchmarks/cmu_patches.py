"""A small real patch dataset from the CMU H&E slide, for the CPU training demo and benchmark.

Stop-gap tooling: the ``histosynth dataset`` stage (issue 3) supersedes it once it makes
datasets from unannotated slides. The slide (skin; CC0) is read with openslide, brought to
about 2 µm/px, and labelled by colour deconvolution (``skimage.color.rgb2hed``):

- 0 background: bright, unstained glass (smoothed optical density below Otsu's threshold);
- 1 epidermis: hematoxylin-dense tissue (smoothed H above Otsu's threshold within tissue);
- 2 dermis: the rest of the tissue (eosin-dominated collagen).

64 px patches every 16 px are kept when tissue covers at least half the patch and no class
covers more than 90 % (mixed patches, in the spirit of the paper's 20–80 % rule). The top
80 % of the slide is ``train``, the rest ``val``.

Usage: ``python benchmarks/cmu_patches.py OUT [--size 64] [--mpp 2.0] [--stride 16]``;
``python benchmarks/cmu_patches.py OUT --check RUN`` labels a trained run's samples (and the
real val patches, for reference) with the same stain rule and reports how often each pixel's
label is the conditioning map's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from histosynth.artifacts import prepare_output
from histosynth.data.classmap import ClassMap, TissueClass
from histosynth.data.patch_dataset import PatchDatasetWriter
from histosynth.samples import cmu_small_region

CLASSES = ClassMap(
    (
        TissueClass(0, "background", (255, 255, 255)),
        TissueClass(1, "epidermis", (120, 60, 160)),
        TissueClass(2, "dermis", (235, 120, 160)),
    ),
    source="cmu-colour-deconvolution",
)


def _stains(rgb: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import gaussian_filter
    from skimage.color import rgb2hed

    od = -np.log(np.clip(rgb.astype(np.float64) / 255.0, 1e-3, 1)).mean(-1)
    return gaussian_filter(od, sigma), gaussian_filter(rgb2hed(rgb)[..., 0], sigma)


def label_slide(rgb: np.ndarray, sigma: float = 4.0) -> tuple[np.ndarray, tuple[float, float]]:
    """Background / epidermis / dermis ids by colour deconvolution, and the two thresholds."""
    from scipy.ndimage import binary_fill_holes
    from skimage.filters import threshold_otsu
    from skimage.morphology import remove_small_objects

    od, h = _stains(rgb, sigma)
    od_thr = float(threshold_otsu(od))
    tissue = remove_small_objects(od > od_thr, max_size=200)
    h_thr = float(threshold_otsu(h[tissue]))
    epi = remove_small_objects(binary_fill_holes(tissue & (h > h_thr)) & tissue, max_size=300)
    label = np.zeros(rgb.shape[:2], np.uint8)
    label[tissue] = 2
    label[epi] = 1
    return label, (od_thr, h_thr)


def label_patch(rgb: np.ndarray, thresholds: tuple[float, float], sigma: float = 2.0) -> np.ndarray:
    """The same rule on one patch, with the slide's thresholds (no morphology)."""
    od, h = _stains(rgb, sigma)
    tissue = od > thresholds[0]
    label = np.where(tissue, 2, 0).astype(np.uint8)
    label[tissue & (h > thresholds[1])] = 1
    return label


def check(run: str, data: str, n: int = 32, steps: int = 25) -> dict:
    """How well a trained model's samples follow the maps.

    The same stain rule labels the generated and the real val patches; agreement is the
    fraction of pixels whose label is the conditioning map's. Crops come from other (train)
    patches of each class, as the sampling stage will take them from a crop bank.
    """
    import torch

    from histosynth.data.crops import CropSampler
    from histosynth.data.patch_dataset import PatchDataset
    from histosynth.diffusion.pipeline import HistoSynthPipeline
    from histosynth.seeding import numpy_rng, torch_generator

    thresholds = tuple(json.loads((Path(data) / "thresholds.json").read_text()))
    model = Path(run) / "model"
    if not model.is_dir():
        model = sorted((Path(run) / "checkpoints").glob("step-*"))[-1]
    pipe = HistoSynthPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    val, train = PatchDataset(data, split="val"), PatchDataset(data, split="train")
    rows = np.linspace(0, len(val) - 1, min(n, len(val))).round().astype(int)
    maps = np.stack([val.label(int(i)).astype(np.int64) for i in rows])
    reals = np.stack([val.image(int(i)) for i in rows])
    frac = np.stack([np.asarray(f) for f in train.index["fractions"]])
    sampler = CropSampler(foreign_prob=1.0)

    def foreign(cls: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        j = int(rng.choice(np.flatnonzero(frac[:, cls] >= 0.05)))
        return train.image(j), train.label(j), str(train.index.at[j, "id"])

    crops = [
        sampler(r, m, numpy_rng(0, "check", i), foreign)
        for i, (r, m) in enumerate(zip(reals, maps, strict=True))
    ]
    gens = [torch_generator(0, "check", i) for i in range(len(rows))]
    with torch.inference_mode():
        synth = pipe(maps, crops, num_inference_steps=steps, generator=gens).images

    def agreement(images: np.ndarray, targets: np.ndarray = maps) -> float:
        pairs = zip(images, targets, strict=True)
        return float(np.mean([(label_patch(x, thresholds) == m).mean() for x, m in pairs]))

    return {
        "model": str(model), "patches": len(rows), "sampler_steps": steps,
        "agreement_synthetic": agreement(synth), "agreement_real": agreement(reals),
        # chance level: the same samples scored against the maps of other patches
        "agreement_synthetic_vs_other_maps": agreement(synth, np.roll(maps, 1, axis=0)),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    import openslide
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mpp", type=float, default=2.0)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument(
        "--check", metavar="RUN", help="Measure how RUN's samples follow the maps of OUT's val split."
    )
    args = ap.parse_args(argv)
    if args.check:
        print(json.dumps(check(args.check, args.out), indent=2))
        return

    path = cmu_small_region()
    slide = openslide.OpenSlide(str(path))
    mpp0 = float(slide.properties["openslide.mpp-x"])
    w0, h0 = slide.dimensions
    ds = args.mpp / mpp0
    w, h = round(w0 / ds), round(h0 / ds)
    rgb = np.asarray(
        slide.read_region((0, 0), 0, (w0, h0)).convert("RGB").resize((w, h), Image.Resampling.BOX)
    )
    label, thresholds = label_slide(rgb)
    config = {"source": "cmu_small_region", "mpp": args.mpp, "size": args.size, "stride": args.stride,
              "labels": "rgb2hed-otsu-v1"}  # fmt: skip
    out = prepare_output(args.out, "patch-dataset", config, overwrite=True)
    writer = PatchDatasetWriter(out.folder, CLASSES)
    rows, s = [], args.size
    for y in range(0, h - s + 1, args.stride):
        for x in range(0, w - s + 1, args.stride):
            lab = label[y : y + s, x : x + s]
            frac = np.bincount(lab.ravel(), minlength=3) / lab.size
            if frac[1:].sum() < 0.5 or frac.max() > 0.9:
                continue
            row = writer.write_patch(f"cmu_{x:04d}_{y:04d}", rgb[y : y + s, x : x + s], lab)
            row.update(split="train" if y + s <= 0.8 * h else "val", slide=path.stem,
                       x0=round(x * ds), y0=round(y * ds), size0=round(s * ds), mpp=args.mpp)  # fmt: skip
            rows.append(row)
    writer.write_shard("cmu", rows)
    writer.finalize(["cmu"], config)
    (Path(args.out) / "thresholds.json").write_text(json.dumps(thresholds))
    Image.fromarray(CLASSES.colorize(label)).save(Path(args.out) / "slide_labels.png")
    Image.fromarray(rgb).save(Path(args.out) / "slide.png")
    print(
        f"{len(rows)} patches ({sum(r['split'] == 'train' for r in rows)} train) of {s} px at {args.mpp} µm/px"
    )


if __name__ == "__main__":
    main()
