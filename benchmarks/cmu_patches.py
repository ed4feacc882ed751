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

Usage: ``python benchmarks/cmu_patches.py OUT [--size 64] [--mpp 2.0] [--stride 16]``
"""

from __future__ import annotations

import argparse
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


def label_slide(rgb: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """Background / epidermis / dermis ids by colour deconvolution (see the module notes)."""
    from scipy.ndimage import binary_fill_holes, gaussian_filter
    from skimage.color import rgb2hed
    from skimage.filters import threshold_otsu
    from skimage.morphology import remove_small_objects

    od = -np.log(np.clip(rgb.astype(np.float64) / 255.0, 1e-3, 1)).mean(-1)
    tissue = gaussian_filter(od, sigma) > threshold_otsu(gaussian_filter(od, sigma))
    tissue = remove_small_objects(tissue, max_size=200)
    h = gaussian_filter(rgb2hed(rgb)[..., 0], sigma)
    epi = tissue & (h > threshold_otsu(h[tissue]))
    epi = remove_small_objects(binary_fill_holes(epi) & tissue, max_size=300)
    label = np.zeros(rgb.shape[:2], np.uint8)
    label[tissue] = 2
    label[epi] = 1
    return label


def main(argv: list[str] | None = None) -> None:
    import openslide
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mpp", type=float, default=2.0)
    ap.add_argument("--stride", type=int, default=16)
    args = ap.parse_args(argv)

    path = cmu_small_region()
    slide = openslide.OpenSlide(str(path))
    mpp0 = float(slide.properties["openslide.mpp-x"])
    w0, h0 = slide.dimensions
    ds = args.mpp / mpp0
    w, h = round(w0 / ds), round(h0 / ds)
    rgb = np.asarray(
        slide.read_region((0, 0), 0, (w0, h0)).convert("RGB").resize((w, h), Image.Resampling.BOX)
    )
    label = label_slide(rgb)
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
    Image.fromarray(CLASSES.colorize(label)).save(Path(args.out) / "slide_labels.png")
    Image.fromarray(rgb).save(Path(args.out) / "slide.png")
    print(
        f"{len(rows)} patches ({sum(r['split'] == 'train' for r in rows)} train) of {s} px at {args.mpp} µm/px"
    )


if __name__ == "__main__":
    main()
