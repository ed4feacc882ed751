"""A two-class map derived from the slide itself by colour deconvolution.

This is a documented *stand-in for expert annotations*, used by the demo and by anyone who
wants the annotated path on a slide without annotations: hematoxylin-dense tissue (epithelium,
e.g. the epidermis of the bundled CMU skin slide) against eosin-dominated tissue (stroma,
e.g. the dermis), on background. It is computed once per slide on a low-resolution view:

1. tissue = Otsu threshold on saturation, closed and cleaned of small specks;
2. hematoxylin optical density (Ruifrok & Johnston deconvolution, ``skimage.color.rgb2hed``),
   smoothed over ~``smooth_um`` micrometres so the map follows tissue compartments, not nuclei;
3. epithelium = smoothed hematoxylin above the Otsu threshold of its values inside the tissue.

The resulting grid answers :class:`~histosynth.wsi.labels.LabelSource` queries by nearest
upsampling, so patch maps at any mpp come from one consistent segmentation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from histosynth.data.classmap import ClassMap, TissueClass
from histosynth.wsi.labels import LabelSet

__all__ = ["DERIVED_CLASSES", "StainLabelSource", "derive_stain_labels", "stain_label_source", "stain_labels"]

DERIVED_CLASSES = ClassMap(
    (
        TissueClass(0, "background", (255, 255, 255)),
        TissueClass(1, "epithelium", (120, 40, 160)),
        TissueClass(2, "stroma", (240, 130, 170)),
    ),
    source="derived (colour deconvolution)",
)


def derive_stain_labels(
    rgb: np.ndarray, um_per_px: float, smooth_um: float = 16.0, min_um2: float = 2e4
) -> np.ndarray:
    """Label a low-resolution RGB view: 0 background, 1 hematoxylin-dense, 2 eosin-dominated.

    Parameters
    ----------
    rgb
        (H, W, 3) uint8 view of the slide.
    um_per_px
        Resolution of ``rgb`` in µm per pixel.
    smooth_um
        Gaussian smoothing of the hematoxylin density, in µm.
    min_um2
        Tissue specks and label islands smaller than this area (µm²) are removed.
    """
    from scipy import ndimage as ndi
    from skimage import color, filters, morphology

    hsv = color.rgb2hsv(rgb)
    sat = hsv[..., 1]
    t = filters.threshold_otsu(sat)
    tissue = ndi.binary_closing(sat > t, structure=np.ones((3, 3)), iterations=2)
    min_px = max(1, int(min_um2 / um_per_px**2))
    tissue = morphology.remove_small_objects(tissue, max_size=min_px)
    hema = color.rgb2hed(rgb)[..., 0]
    # Smooth inside tissue only (normalised convolution) so background does not dilute edges.
    sigma = smooth_um / um_per_px
    num = ndi.gaussian_filter(np.where(tissue, hema, 0.0), sigma)
    den = ndi.gaussian_filter(tissue.astype(float), sigma)
    dens = num / np.maximum(den, 1e-6)
    if tissue.sum() < 16:
        return np.zeros(rgb.shape[:2], np.uint8)
    th = filters.threshold_otsu(dens[tissue])
    epi = tissue & (dens > th)
    epi = morphology.remove_small_objects(epi, max_size=min_px)
    labels = np.where(tissue, 2, 0).astype(np.uint8)
    labels[epi] = 1
    return labels


@dataclass
class StainLabelSource:
    """:class:`~histosynth.wsi.labels.LabelSource` over a slide's derived stain labels.

    Parameters
    ----------
    grid
        Labels of the slide at ``cell`` level-0 pixels per grid cell.
    cell
        Level-0 pixels per grid cell.
    """

    grid: np.ndarray
    cell: float
    classes: ClassMap = DERIVED_CLASSES

    @classmethod
    def from_reader(cls, reader, view_mpp: float = 2.0, **kwargs) -> StainLabelSource:  # reader: SlideReader
        """Derive the labels of a slide from a view at ``view_mpp`` µm/px."""
        from PIL import Image

        mpp = reader.require_mpp()
        w0, h0 = reader.dimensions
        ds = max(view_mpp / mpp, 1.0)
        level = reader.best_level(ds)
        lw, lh = reader.level_dimensions[level]
        img = reader.read_region(0, 0, level, lw, lh)
        tw, th = max(1, round(w0 / ds)), max(1, round(h0 / ds))
        if (lw, lh) != (tw, th):
            img = np.asarray(Image.fromarray(img).resize((tw, th), Image.Resampling.BOX))
        return cls(derive_stain_labels(img, mpp * w0 / tw, **kwargs), w0 / tw)

    def label_region(self, x0: int, y0: int, size0: float, out_size: int) -> np.ndarray:
        # Pixel centres of the output square, in grid cells (nearest neighbour).
        centres = (np.arange(out_size) + 0.5) * (size0 / out_size)
        rows = np.floor((y0 + centres) / self.cell).astype(int)
        cols = np.floor((x0 + centres) / self.cell).astype(int)
        out = np.zeros((out_size, out_size), np.uint8)
        vr = (rows >= 0) & (rows < self.grid.shape[0])
        vc = (cols >= 0) & (cols < self.grid.shape[1])
        out[np.ix_(vr, vc)] = self.grid[np.ix_(rows[vr], cols[vc])]
        return out


def stain_label_source(path: str, slide_mpp: float | None = None, view_mpp: float = 2.0) -> StainLabelSource:
    """Open a slide and derive its stain labels (picklable entry point for worker processes)."""
    from histosynth.wsi import open_slide

    with open_slide(path, mpp=slide_mpp) as reader:
        return StainLabelSource.from_reader(reader, view_mpp=view_mpp)


def stain_labels(tiles: str | Path) -> LabelSet:
    """Stain-derived label sources of every slide of a finished ``tile`` folder (each computed
    inside its slide's work item)."""
    from histosynth.wsi.tiling import slide_facts

    sources = {
        s: functools.partial(stain_label_source, info["path"], info["slide_mpp"])
        for s, info in slide_facts(tiles).items()
    }
    return LabelSet(DERIVED_CLASSES, sources, "derived-stain-v1")
