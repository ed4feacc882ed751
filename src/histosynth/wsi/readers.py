"""File-backed slide readers (OpenSlide, tiffslide, plain images) and :func:`open_slide`.

All readers share the :class:`~histosynth.wsi.base.SlideReader` protocol: level-0 origins,
level-pixel sizes, ``mpp`` in µm per level-0 pixel, RGB uint8 out, background (out of bounds
or transparent) as white glass. ``mpp`` comes from the file's metadata unless given; plain
images carry no trustworthy resolution, so their ``mpp`` must be given by the user.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from histosynth.wsi.base import READERS, ArrayReader, SlideError, SlideReader
from histosynth.wsi.integrity import check_not_truncated

if TYPE_CHECKING:
    from histosynth.wsi.tiff_tiles import TiffTiles

__all__ = ["IMAGE_SUFFIXES", "ImageReader", "OpenSlideReader", "TiffSlideReader", "open_slide"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
# Plain images are decoded whole; refuse sizes that would not fit in memory (a bomb guard).
MAX_IMAGE_PIXELS = 40_000 * 40_000


def _valid_mpp(value: object) -> float | None:
    try:
        mpp = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return mpp if math.isfinite(mpp) and mpp > 0 else None


def _pad_white(
    region: np.ndarray, x0: int, y0: int, ds: float, width: int, height: int, level_size: tuple[int, int]
) -> np.ndarray:
    """Whiten the part of a read region that lies outside the level (readers pad with black)."""
    lx, ly = math.floor(x0 / ds), math.floor(y0 / ds)
    lw, lh = level_size
    if lx >= 0 and ly >= 0 and lx + width <= lw and ly + height <= lh:
        return region
    out = np.full((height, width, 3), 255, np.uint8)
    sx0, sy0 = max(lx, 0), max(ly, 0)
    sx1, sy1 = min(lx + width, lw), min(ly + height, lh)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - ly : sy1 - ly, sx0 - lx : sx1 - lx] = region[sy0 - ly : sy1 - ly, sx0 - lx : sx1 - lx, :3]
    return out


@READERS.register("openslide", help="OpenSlide (openslide-bin): SVS, NDPI, MRXS, SCN, generic tiled TIFF")
class OpenSlideReader(SlideReader):
    """A slide read through OpenSlide.

    Parameters
    ----------
    path
        Slide file.
    mpp
        Level-0 µm/px; overrides ``openslide.mpp-x`` from the file.
    """

    def __init__(self, path: str | Path, mpp: float | None = None) -> None:
        try:
            import openslide
        except (ImportError, OSError) as exc:  # the shared library may be missing
            raise SlideError(
                f"{path}: OpenSlide is not available ({exc}); pip install openslide-bin"
            ) from None
        self.path = str(path)
        try:
            self._slide = openslide.OpenSlide(self.path)
        except (openslide.OpenSlideError, OSError) as exc:
            raise SlideError(f"{path}: OpenSlide cannot open it ({exc})") from None
        self.level_dimensions = [tuple(map(int, d)) for d in self._slide.level_dimensions]  # type: ignore[misc]
        self.level_downsamples = [float(d) for d in self._slide.level_downsamples]
        self.mpp = _valid_mpp(mpp) or _valid_mpp(self._slide.properties.get(openslide.PROPERTY_NAME_MPP_X))
        self._tiles = _direct_tiles(self.path, self._slide, self.level_dimensions, self.level_downsamples)

    def _read(self, x0: int, y0: int, level: int, width: int, height: int) -> np.ndarray:
        if self._tiles is not None:
            try:
                direct = self._tiles.read(x0, y0, level, width, height)
            except Exception:  # a tile that does not decode: OpenSlide's read names the fault
                direct = None
            if direct is not None:
                return direct
        try:
            rgba = np.asarray(self._slide.read_region((x0, y0), level, (width, height)))
        except Exception as exc:  # openslide raises OpenSlideError on corrupt tiles
            raise SlideError(
                f"{self.path}: cannot read region at ({x0}, {y0}) level {level}; "
                f"the file is truncated or corrupt ({exc})"
            ) from None
        rgb = np.ascontiguousarray(rgba[..., :3])  # the one copy a read needs
        # OpenSlide returns transparent pixels outside the scanned area: show them as glass.
        clear = rgba[..., 3] == 0
        if clear.any():
            rgb[clear] = 255
        return rgb

    def set_cache_bytes(self, nbytes: int) -> None:
        import openslide

        if hasattr(openslide, "OpenSlideCache"):  # OpenSlide 4 and openslide-python 1.3 on
            self._slide.set_cache(openslide.OpenSlideCache(max(0, int(nbytes))))
        if self._tiles is not None:
            self._tiles.set_cache_bytes(nbytes)

    def close(self) -> None:
        if self._tiles is not None:
            self._tiles.close()
        self._slide.close()


def _direct_tiles(
    path: str, slide: Any, level_dimensions: list[tuple[int, int]], level_downsamples: list[float]
) -> TiffTiles | None:
    """A :class:`~histosynth.wsi.tiff_tiles.TiffTiles` for the levels of ``slide`` whose tiles
    decode to OpenSlide's pixels (aperio and generic TIFF files), else ``None``.

    ``HISTOSYNTH_DIRECT_TILES=0`` turns it off (every read through OpenSlide).
    """
    from histosynth.wsi.tiff_tiles import DIRECT_VENDORS, TiffTiles

    if os.environ.get("HISTOSYNTH_DIRECT_TILES", "1") == "0":
        return None
    if slide.properties.get("openslide.vendor") not in DIRECT_VENDORS:
        return None
    try:
        tiles = TiffTiles(path, level_dimensions, level_downsamples)
    except Exception:  # tifffile cannot parse what OpenSlide can: OpenSlide reads it all
        return None
    if not tiles.serves_any:
        tiles.close()
        return None
    return tiles


@READERS.register("tiffslide", help="tiffslide: pure-Python TIFF/SVS reader (tifffile + zarr)")
class TiffSlideReader(SlideReader):
    """A slide read through tiffslide.

    Parameters
    ----------
    path
        Slide file.
    mpp
        Level-0 µm/px; overrides ``tiffslide.mpp-x`` from the file.
    """

    def __init__(self, path: str | Path, mpp: float | None = None) -> None:
        import tiffslide

        self.path = str(path)
        try:
            self._slide = tiffslide.TiffSlide(self.path)
        except Exception as exc:  # tifffile/zarr raise many types on non-TIFF input
            raise SlideError(f"{path}: tiffslide cannot open it ({type(exc).__name__}: {exc})") from None
        self.level_dimensions = [tuple(map(int, d)) for d in self._slide.level_dimensions]  # type: ignore[misc]
        self.level_downsamples = [float(d) for d in self._slide.level_downsamples]
        self.mpp = _valid_mpp(mpp) or _valid_mpp(self._slide.properties.get(tiffslide.PROPERTY_NAME_MPP_X))

    def _read(self, x0: int, y0: int, level: int, width: int, height: int) -> np.ndarray:
        try:
            arr = self._slide.read_region((x0, y0), level, (width, height), as_array=True)
        except Exception as exc:  # corrupt tiles surface as codec errors
            raise SlideError(
                f"{self.path}: cannot read region at ({x0}, {y0}) level {level}; "
                f"the file is truncated or corrupt ({exc})"
            ) from None
        arr = np.asarray(arr)
        if arr.ndim == 2:  # greyscale TIFF
            arr = np.repeat(arr[..., None], 3, axis=2)
        arr = arr[..., :3].astype(np.uint8, copy=False)
        ds = self.level_downsamples[level]
        return _pad_white(arr, x0, y0, ds, width, height, self.level_dimensions[level])

    def close(self) -> None:
        self._slide.close()


@READERS.register("image", help="plain PNG/JPEG/TIFF image held in memory (give --mpp)")
class ImageReader(ArrayReader):
    """A plain image decoded into memory, with 2× levels down to about 512 px.

    Parameters
    ----------
    path
        A PNG, JPEG or (untiled) TIFF file.
    mpp
        Level-0 µm/px. Plain images carry no reliable resolution, so this is required before
        reading at a target mpp (:meth:`require_mpp` says so, naming the file).
    """

    def __init__(self, path: str | Path, mpp: float | None = None) -> None:
        image = _decode_image(Path(path))
        levels = 1 + max(0, int(math.log2(max(image.shape[:2]) / 512))) if max(image.shape[:2]) > 512 else 1
        super().__init__(image, mpp=_valid_mpp(mpp), levels=levels, name=str(path))

    def require_mpp(self) -> float:
        if self.mpp is None:
            raise SlideError(f"{self.path}: a plain image has no resolution (mpp) metadata; pass --mpp")
        return float(self.mpp)


def _decode_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tf:
                page = tf.pages[0]
                if math.prod(page.shape[:2]) > MAX_IMAGE_PIXELS:
                    raise SlideError(
                        f"{path}: image of {page.shape[1]}×{page.shape[0]} px is too large to decode"
                    )
                arr = page.asarray()
        else:
            with warnings.catch_warnings():
                # Our own pixel limit below replaces Pillow's bomb warning.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    if im.width * im.height > MAX_IMAGE_PIXELS:
                        raise SlideError(f"{path}: image of {im.width}×{im.height} px is too large to decode")
                    arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise SlideError(f"{path}: file not found") from None
    except SlideError:
        raise
    except Image.DecompressionBombError:  # Pillow refuses twice its own limit before our check runs
        raise SlideError(
            f"{path}: image is too large to decode safely (over {2 * Image.MAX_IMAGE_PIXELS} px)"
        ) from None
    except Exception as exc:  # Pillow/tifffile raise many types on bad input
        raise SlideError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc})") from None
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise SlideError(f"{path}: expected an RGB image, got array of shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise SlideError(f"{path}: expected 8-bit pixels, got {arr.dtype}")
    return arr[..., :3]


def _auto_reader(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    try:
        import openslide

        if openslide.OpenSlide.detect_format(str(path)) is not None:
            return "openslide"
    except (ImportError, OSError):
        pass  # no OpenSlide library: tiffslide reads TIFF-based formats
    if suffix in TIFF_SUFFIXES + (".svs",):
        try:
            import tifffile

            with tifffile.TiffFile(path) as tf:
                tiled = tf.pages[0].is_tiled
        except Exception as exc:  # not a TIFF at all
            raise SlideError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None
        return "tiffslide" if tiled else "image"
    raise SlideError(
        f"{path}: unsupported slide format {suffix or '(no suffix)'}; "
        f"readers: OpenSlide formats, TIFF, {', '.join(IMAGE_SUFFIXES)}"
    )


def open_slide(path: str | Path, mpp: float | None = None, reader: str = "auto") -> SlideReader:
    """Open a slide with the right reader.

    Parameters
    ----------
    path
        Slide file (any OpenSlide format, TIFF, PNG or JPEG).
    mpp
        Level-0 µm/px; overrides the file's metadata (required for plain images).
    reader
        ``"auto"`` (by format: OpenSlide when it recognises the file, tiffslide for other tiled
        TIFFs, the in-memory image reader for PNG/JPEG/untiled TIFF) or a name in ``READERS``.

    Raises
    ------
    SlideError
        When the file is missing, not a slide, or the reader cannot open it.
    """
    path = Path(path)
    if not path.is_file():
        raise SlideError(f"{path}: slide file not found")
    if path.suffix.lower() in TIFF_SUFFIXES + (".svs",):
        check_not_truncated(path)  # one sentence for a cut file, whichever reader would meet it
    name = _auto_reader(path) if reader == "auto" else reader
    if name == "array":
        raise SlideError(f"{path}: the 'array' reader holds in-memory arrays; use ArrayReader directly")
    return READERS.get(name)(path, mpp=mpp)  # type: ignore[call-arg]
