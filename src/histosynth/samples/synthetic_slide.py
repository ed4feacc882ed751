"""A synthetic whole-slide image with a known ground-truth label map.

The slide is a pyramidal tiled TIFF (levels as consecutive IFDs, photometric RGB, mpp in the
resolution tags as pixels per centimetre), which OpenSlide (generic TIFF) and tiffslide open.
Tissue classes differ visibly in colour and texture and lie on a white background:

==========  ============  ==========================================================
 id          name          look
==========  ============  ==========================================================
 0           background    white glass with faint noise
 1           epithelium    lilac cytoplasm with large dark-purple nuclei
 2           stroma        pink with wavy eosinophilic fibres
 3           lymphoid      dense small blue-black nuclei
 4           necrosis      pale grey-pink mottle with debris (when ``num_classes=5``)
==========  ============  ==========================================================

The label map lives on a coarse grid of ``cell × cell`` level-0 pixels, so class borders are
axis-aligned steps at multiples of ``cell``: the level-0 ground truth is that grid repeated.
Pixel textures are functions of level-0 coordinates (hash noise, jittered-grid nuclei), so
rendering is tile-by-tile with flat memory and does not depend on the tiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from histosynth.data.classmap import ClassMap, TissueClass

__all__ = ["SYNTHETIC_CLASSES", "SyntheticSlide", "make_label_grid", "render_region", "write_synthetic_slide"]

SYNTHETIC_CLASSES = ClassMap(
    (
        TissueClass(0, "background", (255, 255, 255)),
        TissueClass(1, "epithelium", (150, 80, 170)),
        TissueClass(2, "stroma", (230, 140, 170)),
        TissueClass(3, "lymphoid", (40, 40, 140)),
        TissueClass(4, "necrosis", (200, 180, 180)),
    ),
    source="synthetic",
)


@dataclass(frozen=True)
class SyntheticSlide:
    """A written synthetic slide and its ground truth.

    Attributes
    ----------
    path
        The pyramidal TIFF.
    label_grid
        (rows, cols) uint8 class ids, one per ``cell × cell`` level-0 block.
    cell
        Level-0 pixels per label-grid cell.
    mpp
        Level-0 resolution in µm/px.
    classes
        The class map of the label ids.
    """

    path: Path
    label_grid: np.ndarray
    cell: int
    mpp: float
    classes: ClassMap
    width: int
    height: int

    def label(
        self, x0: int = 0, y0: int = 0, width: int | None = None, height: int | None = None
    ) -> np.ndarray:
        """The level-0 ground-truth labels of a region (out of bounds reads as background)."""
        width = self.width - x0 if width is None else width
        height = self.height - y0 if height is None else height
        return _labels_at(self.label_grid, self.cell, np.arange(x0, x0 + width), np.arange(y0, y0 + height))

    def save_label_png(self, path: str | Path) -> None:
        """The full level-0 label map as a PNG (small slides only)."""
        from PIL import Image

        Image.fromarray(self.label()).save(path)


# ---------------------------------------------------------------------------------- layout
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise, standardised; filtered and scaled in place (a 40k × 30k px
    slide's grid is 1.2 M cells, 9 MB of float64 per copy)."""
    from scipy.ndimage import gaussian_filter

    field = rng.standard_normal(shape)
    gaussian_filter(field, sigma, mode="reflect", output=field)
    mean, std = field.mean(), field.std()
    field -= mean
    field /= std + 1e-9
    return field


def make_label_grid(
    rows: int, cols: int, num_classes: int = 4, layout: str = "blobs", seed: int = 0
) -> np.ndarray:
    """A coarse label grid: tissue classes 1..num_classes-1 on background 0.

    ``layout="blobs"``: an elliptical tissue section with smooth, irregular regions;
    ``layout="blocks"``: axis-aligned rectangles on a 4×4 arrangement (for exact tests).
    """
    if not 2 <= num_classes <= len(SYNTHETIC_CLASSES):
        raise ValueError(f"num_classes must lie in 2..{len(SYNTHETIC_CLASSES)}, got {num_classes}")
    rng = np.random.default_rng(seed)
    if layout == "blocks":
        grid = np.zeros((rows, cols), np.uint8)
        rb, cb = np.linspace(0, rows, 5).astype(int), np.linspace(0, cols, 5).astype(int)
        for i in range(4):
            for j in range(4):
                if 0 < i < 3 or 0 < j < 3 or (i + j) % 2:
                    k = 1 + (i * 4 + j) % (num_classes - 1)
                    grid[rb[i] + 1 : rb[i + 1] - 1, cb[j] + 1 : cb[j + 1] - 1] = k
        return grid
    if layout != "blobs":
        raise ValueError(f"layout must be 'blobs' or 'blocks', got {layout!r}")
    # Two grid-sized float64 arrays at most, whatever the slide's size: the ellipse and the
    # noise are combined in place, and the class fields are compared as they come (a running
    # argmax, the first largest winning as with argmax) instead of stacked.
    yy, xx = np.ogrid[0:rows, 0:cols]
    ell = ((yy - rows / 2) / (0.45 * rows)) ** 2 + ((xx - cols / 2) / (0.45 * cols)) ** 2
    np.subtract(1.0, ell, out=ell)
    sigma = max(rows, cols) / 12
    noise = _smooth_noise(rng, (rows, cols), sigma)
    noise *= 0.35
    noise += ell
    tissue = noise > 0.15
    del ell, noise
    grid = np.ones((rows, cols), np.uint8)
    best = _smooth_noise(rng, (rows, cols), sigma / 1.5)
    for k in range(2, num_classes):
        field = _smooth_noise(rng, (rows, cols), sigma / 1.5)
        grid[field > best] = k
        np.maximum(best, field, out=best)
        del field
    grid[~tissue] = 0
    return grid


def _labels_at(grid: np.ndarray, cell: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    gr, gc = ys // cell, xs // cell
    out = np.zeros((len(ys), len(xs)), np.uint8)
    vr = (gr >= 0) & (gr < grid.shape[0])
    vc = (gc >= 0) & (gc < grid.shape[1])
    out[np.ix_(vr, vc)] = grid[np.ix_(gr[vr], gc[vc])]
    return out


# ---------------------------------------------------------------------------------- texture
def _hash01(x: np.ndarray, y: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic per-coordinate uniform noise in [0, 1) (a 32-bit integer hash)."""
    h = (x.astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (y.astype(np.uint32) * np.uint32(0xD8163841))
    h ^= np.uint32(salt * 0x9E3779B1 & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h.astype(np.float32) / np.float32(2**32)


def _nuclei(x: np.ndarray, y: np.ndarray, spacing: int, radius: float, salt: int) -> np.ndarray:
    """Soft nucleus mask (0..1): one disc per jittered grid cell, Worley style."""
    best = np.full(x.shape, np.inf, np.float32)
    cx, cy = x // spacing, y // spacing
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            gx, gy = cx + dx, cy + dy
            px = (gx + 0.15 + 0.7 * _hash01(gx, gy, salt)) * spacing
            py = (gy + 0.15 + 0.7 * _hash01(gx, gy, salt + 1)) * spacing
            r = radius * (0.7 + 0.6 * _hash01(gx, gy, salt + 2))
            d = np.sqrt((x - px) ** 2 + (y - py) ** 2) / r
            best = np.minimum(best, d)
    return np.clip(1.5 - best, 0.0, 1.0)


def _texture(cls: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    grain = _hash01(x, y, 7)[..., None] - 0.5
    if cls == 0:
        return np.clip(247 + 6 * grain, 0, 255) * np.ones(3, np.float32)
    if cls == 1:
        n = _nuclei(x, y, 16, 5.5, 11)[..., None]
        base = np.array([205, 160, 215], np.float32) * (1 - n) + np.array([85, 40, 120], np.float32) * n
        return base + 18 * grain
    if cls == 2:
        phase = (x * 0.8 + y * 0.6) / 3.5 + 2.0 * np.sin(y / 40.0) + 1.5 * np.sin(x / 55.0)
        fib = (0.5 + 0.5 * np.sin(phase))[..., None]
        base = np.array([245, 190, 215], np.float32) * (1 - fib) + np.array([215, 105, 150], np.float32) * fib
        return base + 14 * grain
    if cls == 3:
        n = _nuclei(x, y, 8, 3.2, 23)[..., None]
        base = np.array([190, 175, 220], np.float32) * (1 - n) + np.array([35, 30, 110], np.float32) * n
        return base + 22 * grain
    if cls == 4:
        mott = _hash01(x // 6, y // 6, 31)[..., None]
        base = np.array([225, 205, 210], np.float32) * (1 - 0.3 * mott) + 25 * grain
        return base
    raise ValueError(f"no texture for class {cls}")


def render_region(
    grid: np.ndarray, cell: int, x0: int, y0: int, width: int, height: int, step: float = 1.0
) -> np.ndarray:
    """RGB of a region: level-0 origin ``(x0, y0)``, ``width × height`` output pixels of
    ``step`` level-0 pixels each (``step > 1`` renders lower pyramid levels by box averaging)."""
    k = max(1, int(round(step)))
    xs = x0 + np.arange(width * k)
    ys = y0 + np.arange(height * k)
    lab = _labels_at(grid, cell, xs, ys)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    img = np.zeros((*lab.shape, 3), np.float32)
    for cls in np.unique(lab):
        m = lab == cls
        img[m] = _texture(int(cls), xx[m], yy[m])
    if k > 1:
        img = img.reshape(height, k, width, k, 3).mean(axis=(1, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------- writing
def write_synthetic_slide(
    path: str | Path,
    size: tuple[int, int] = (4096, 3072),
    levels: int = 3,
    mpp: float = 0.5,
    num_classes: int = 4,
    layout: str = "blobs",
    cell: int = 32,
    tile: int = 256,
    compression: str = "jpeg",
    seed: int = 0,
) -> SyntheticSlide:
    """Write a pyramidal tiled TIFF with a known label map.

    Parameters
    ----------
    path
        Output ``.tif`` path.
    size
        Level-0 (width, height) in pixels.
    levels
        Pyramid levels, each half the previous (consecutive IFDs).
    mpp
        Level-0 µm per pixel, written as pixels per centimetre.
    num_classes
        Classes including background (2..5).
    layout
        ``"blobs"`` or ``"blocks"`` (axis-aligned rectangles).
    cell
        Label-grid cell in level-0 pixels.
    tile
        TIFF tile side.
    compression
        ``"jpeg"`` (quality 90), ``"deflate"`` or ``"none"`` (lossless, for exact tests).
    seed
        Layout seed.
    """
    from histosynth.data.pyramid_tiff import write_pyramid_tiff

    width, height = size
    grid = make_label_grid(-(-height // cell), -(-width // cell), num_classes, layout, seed)

    def region(x0: int, y0: int, w: int, h: int, step: int) -> np.ndarray:
        return render_region(grid, cell, x0, y0, w, h, step=step)

    path = write_pyramid_tiff(
        path, region, (width, height), mpp, levels=levels, tile=tile, compression=compression,
        description=f"histosynth synthetic slide; mpp={mpp}",
    )  # fmt: skip
    classes = ClassMap(SYNTHETIC_CLASSES.classes[:num_classes], source="synthetic")
    return SyntheticSlide(path, grid, cell, mpp, classes, width, height)
