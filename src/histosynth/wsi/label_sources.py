"""Label sources from annotations: polygons (XML/GeoJSON) and label-mask rasters (PANDA).

Both implement :class:`~histosynth.wsi.labels.LabelSource`: ``label_region(x0, y0, size0,
out_size)`` returns the class ids of a level-0 square sampled at ``out_size`` pixel centres,
so a patch's map is rasterised directly at the target mpp (no level-0 detour).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import file_sha256
from histosynth.config import ConfigError
from histosynth.data.classmap import ClassMap
from histosynth.wsi.annotations import AnnotationError, check_within, read_polygons
from histosynth.wsi.labels import LabelSet
from histosynth.wsi.rasterize import fill_rings, geometry_rings
from histosynth.wsi.schemes import LabelScheme, load_scheme
from histosynth.wsi.tiling import slide_facts

__all__ = [
    "ANNOTATION_SUFFIXES",
    "MaskLabels",
    "PolygonLabels",
    "annotation_labels",
    "find_annotation",
    "load_label_source",
]

POLYGON_SUFFIXES = (".xml", ".geojson", ".json")
MASK_SUFFIXES = (".tif", ".tiff", ".png")
ANNOTATION_SUFFIXES = POLYGON_SUFFIXES + MASK_SUFFIXES


class PolygonLabels:
    """Class ids painted from polygons.

    Polygons are painted largest first, so a region drawn inside another (an exclusion inside
    a tumour outline, a nested annotation) wins over its container.

    Parameters
    ----------
    shapes
        ``(class id, shapely (Multi)Polygon)`` pairs in level-0 pixels.
    classes
        The class map the ids belong to.
    """

    def __init__(self, shapes: list[tuple[int, Any]], classes: ClassMap) -> None:
        self.classes = classes
        order = sorted(range(len(shapes)), key=lambda i: -shapes[i][1].area)
        self._ids = np.array([shapes[i][0] for i in order], np.uint8)
        self._geoms = [shapes[i][1] for i in order]
        self._tree = None

    def __getstate__(self) -> dict[str, Any]:  # STRtree does not pickle; rebuild in workers
        return {**self.__dict__, "_tree": None}

    def label_region(self, x0: int, y0: int, size0: float, out_size: int) -> np.ndarray:
        import shapely

        out = np.zeros((out_size, out_size), np.uint8)
        if not self._geoms:
            return out
        if self._tree is None:
            self._tree = shapely.STRtree(self._geoms)
        x1, y1 = x0 + size0, y0 + size0
        hits = np.sort(self._tree.query(shapely.box(x0, y0, x1, y1)))  # ascending = paint order
        scale = out_size / size0
        pad = 2 * size0 / out_size  # clip a little outside so edges near the border stay exact
        for i in hits:
            part = shapely.clip_by_rect(self._geoms[i], x0 - pad, y0 - pad, x1 + pad, y1 + pad)
            if part.is_empty:
                continue
            inside = fill_rings(geometry_rings(part, x0, y0, scale), (out_size, out_size))
            out[inside] = self._ids[i]
        return out


class MaskLabels:
    """Class ids read from a label-mask raster aligned with the slide (PANDA style).

    The mask may be smaller than the slide (a downsampled mask) but must cover the same area:
    its level-0 size divided by the slide's is the same in x and y. Values are read from the
    first channel and sampled by nearest neighbour at the output pixel centres.

    Parameters
    ----------
    mask
        An ``(H, W)`` uint8 array, or the path of a tiled (pyramidal) TIFF mask, opened on first
        use in each process (so the source pickles for worker processes).
    classes
        Class map; mask values outside it are an error naming the file.
    slide_size
        The slide's level-0 ``(width, height)``.
    path
        The mask's file name, for messages.
    """

    def __init__(self, mask: Any, classes: ClassMap, slide_size: tuple[int, int], path: str) -> None:
        self.classes = classes
        self.path = path
        self._mask = mask
        self._reader = None
        mw, mh = (mask.shape[1], mask.shape[0]) if isinstance(mask, np.ndarray) else self._open().dimensions
        sw, sh = slide_size
        self._sx, self._sy = mw / sw, mh / sh
        if abs(self._sx - self._sy) > 0.01 * max(self._sx, self._sy) + 2 / min(sw, sh):
            raise AnnotationError(
                f"{path}: label mask of {mw}×{mh} px is not aligned with the {sw}×{sh} px slide "
                f"(different aspect ratio)"
            )
        self._known = np.zeros(256, bool)
        self._known[classes.ids] = True
        # Ids 0..k all known: a max() check suffices for most maps (a lookup per pixel is slower).
        self._max_id = int(np.argmin(self._known)) - 1 if not self._known.all() else 255

    def label_region(self, x0: int, y0: int, size0: float, out_size: int) -> np.ndarray:
        centres = (np.arange(out_size) + 0.5) * (size0 / out_size)
        mx = (x0 + centres) * self._sx  # mask level-0 coordinates of the pixel centres
        my = (y0 + centres) * self._sy
        if isinstance(self._mask, np.ndarray):
            arr, ox, oy, ds = self._mask, 0, 0, 1.0
        else:
            arr, ox, oy, ds = self._read(mx, my, size0 * self._sx / out_size)
        cols = np.floor(mx / ds).astype(np.int64) - ox
        rows = np.floor(my / ds).astype(np.int64) - oy
        vc = (cols >= 0) & (cols < arr.shape[1])
        vr = (rows >= 0) & (rows < arr.shape[0])
        if vc.all() and vr.all():  # the common case: two takes beat one fancy index
            out = np.ascontiguousarray(arr.take(rows, axis=0).take(cols, axis=1), dtype=np.uint8)
        else:
            out = np.zeros((out_size, out_size), np.uint8)
            out[np.ix_(vr, vc)] = arr[np.ix_(rows[vr], cols[vc])]
        if out.max() > self._max_id and not self._known[out].all():
            bad = sorted(set(np.unique(out).tolist()) - set(self.classes.ids))
            raise AnnotationError(f"{self.path}: label values {bad} are not classes of {self.classes.source}")
        return out

    def _open(self):
        if self._reader is None:
            from histosynth.wsi.readers import TiffSlideReader

            # tiffslide returns the stored values; OpenSlide composites and could alter them.
            self._reader = TiffSlideReader(self._mask, mpp=1.0)
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reader": None}

    def __del__(self) -> None:
        if getattr(self, "_reader", None) is not None:
            self._reader.close()

    def _read(self, mx: np.ndarray, my: np.ndarray, step: float) -> tuple[np.ndarray, int, int, float]:
        reader = self._open()
        level = reader.best_level(step)
        ds = reader.level_downsamples[level]
        lw, lh = reader.level_dimensions[level]
        c0, c1 = int(np.floor(mx[0] / ds)), int(np.floor(mx[-1] / ds)) + 1
        r0, r1 = int(np.floor(my[0] / ds)), int(np.floor(my[-1] / ds)) + 1
        c0, r0 = max(c0, 0), max(r0, 0)
        c1, r1 = min(c1, lw), min(r1, lh)
        if c1 <= c0 or r1 <= r0:
            return np.zeros((1, 1), np.uint8), -(10**9), -(10**9), ds
        region = reader.read_region(round(c0 * ds), round(r0 * ds), level, c1 - c0, r1 - r0)
        return region[..., 0], c0, r0, ds


def find_annotation(folder: str | Path, slide: str) -> Path | None:
    """The annotation file of ``slide`` in ``folder``: ``<slide>.<ext>`` or ``<slide>_mask.<ext>``."""
    folder = Path(folder)
    for stem in (slide, f"{slide}_mask"):
        for suffix in ANNOTATION_SUFFIXES:
            path = folder / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


def load_label_source(path: str | Path, scheme: LabelScheme, slide_size: tuple[int, int]):
    """Build the label source of one slide from its annotation file.

    Parameters
    ----------
    path
        ``.xml`` (ASAP/Camelyon16), ``.geojson``/``.json`` (QuPath) or a label mask
        (``.tif``/``.tiff``/``.png``, values are class ids).
    scheme
        Classes and name aliases.
    slide_size
        The slide's level-0 ``(width, height)``; polygons outside it are an error.

    Raises
    ------
    AnnotationError, UnsafeFileError, ClassMapError
        Malformed file, hostile XML, or a class name the class map does not know.
    """
    path = Path(path)
    if path.suffix.lower() in POLYGON_SUFFIXES:
        annotations = read_polygons(path)
        check_within(annotations, path, *slide_size)
        shapes = [(_class_id(scheme, a, path), a.geometry) for a in annotations]
        return PolygonLabels(shapes, scheme.classes)
    if path.suffix.lower() in MASK_SUFFIXES:
        return MaskLabels(_open_mask(path), scheme.classes, slide_size, str(path))
    raise AnnotationError(
        f"{path}: unknown annotation format; expected one of {', '.join(ANNOTATION_SUFFIXES)}"
    )


def annotation_labels(
    slides: str | Path | Mapping[str, tuple[int, int]],
    annotations: str | Path,
    classes: LabelScheme | str,
) -> LabelSet:
    """The annotations in a folder, one file per slide, as lazy label sources.

    Parameters
    ----------
    slides
        A finished ``tile`` folder (its slides and their sizes), or slide name → level-0
        ``(width, height)``.
    annotations
        The folder of ``<slide>.xml``, ``.geojson``, ``.json``, ``.tif`` or ``.png`` files.
    classes
        Their label scheme: a :class:`~histosynth.wsi.schemes.LabelScheme`, a classes.json or a
        preset name (``camelyon16``...); its fill class is the set's.

    Raises
    ------
    ConfigError
        When no annotation file matches a slide.
    """
    scheme = load_scheme(classes) if isinstance(classes, str) else classes
    if isinstance(slides, Mapping):
        sizes, where = dict(slides), "the slides given"
    else:
        sizes = {slide: (info["width"], info["height"]) for slide, info in slide_facts(slides).items()}
        where = str(slides)
    sources, listing = {}, []
    for slide, size in sizes.items():
        path = find_annotation(annotations, slide)
        if path is None:
            continue
        sources[slide] = functools.partial(load_label_source, path, scheme, size)
        listing.append(f"{slide}\t{path.name}\t{file_sha256(path)}")  # content, not location or mtime
    if not sources:
        raise ConfigError(
            f"{Path(annotations)}: no annotation file matches any slide of {where} "
            f"(expected <slide>.xml, .geojson, .json, .tif or .png)"
        )
    ident = hashlib.sha256("\n".join([*listing, repr(scheme.aliases)]).encode()).hexdigest()[:16]
    return LabelSet(scheme.classes, sources, f"annotations-{ident}", fill=scheme.fill)


def _class_id(scheme: LabelScheme, annotation: Any, path: Path) -> int:
    """The class id of an annotation's name; an ASAP group "None" without a meaning says how to give one."""
    if annotation.name == "None" and "None" not in scheme.aliases and "None" not in scheme.classes.names:
        raise AnnotationError(
            f'{path}: {annotation.label} has PartOfGroup="None", which the class map '
            f'{scheme.classes.source} does not name; add "aliases": {{"None": "<class>"}} to it '
            f"(--classes camelyon16 reads it as normal tissue)"
        )
    return scheme.class_id(annotation.name, where=f"{path}: {annotation.label}")


def _open_mask(path: Path):
    """A label mask as an array (PNG, untiled TIFF) or, for a tiled TIFF, its path (read lazily)."""
    if path.suffix.lower() == ".png":
        import warnings

        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                # Palette and greyscale PNGs hold the ids themselves; never convert those.
                arr = np.asarray(im if im.mode in ("L", "P") else im.convert("RGB"))
        return arr if arr.ndim == 2 else arr[..., 0]
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            if not page.is_tiled:
                arr = page.asarray()
                return np.ascontiguousarray(arr if arr.ndim == 2 else arr[..., 0]).astype(np.uint8)
    except Exception as exc:  # tifffile raises many types on bad input
        raise AnnotationError(f"{path}: cannot read the label mask ({type(exc).__name__}: {exc})") from None
    return str(path)
