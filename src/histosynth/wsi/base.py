"""The slide-reader protocol, and an in-memory reader for tests.

Units: ``x0, y0`` and sizes passed to :meth:`SlideReader.read_region` are level-0 pixels for
the origin and *level* pixels for the size, as in OpenSlide. Resolution is ``mpp`` (µm per
level-0 pixel). Returned arrays are ``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from histosynth.registry import Registry

__all__ = ["READERS", "ArrayReader", "SlideError", "SlideReader"]

READERS: Registry[type[SlideReader]] = Registry("slide reader")


class SlideError(RuntimeError):
    """A slide that cannot be opened or read; the message names the file."""


class SlideReader(ABC):
    """Base class of all readers: subclasses provide geometry and :meth:`_read`.

    Parameters
    ----------
    path
        The slide's path (or a name for in-memory slides).
    mpp
        Level-0 resolution in µm/px; overrides the file's metadata.
    """

    path: str
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]
    mpp: float | None
    #: Relative slack when matching a level's downsample to a wanted one. Pyramids store
    #: downsamples such as 4.0005 (odd level sizes); 0.2 % of a 256 px patch is half a pixel,
    #: so such a level still serves a 4× request without reading the 2× level.
    level_tolerance: float = 2e-3

    @abstractmethod
    def _read(self, x0: int, y0: int, level: int, width: int, height: int) -> np.ndarray:
        """Read an in-bounds or partly out-of-bounds region as (H, W, 3) uint8 RGB."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles."""

    def set_cache_bytes(self, nbytes: int) -> None:  # noqa: B027 - optional hook
        """Cap the reader's cache of decoded tiles (readers without one ignore it).

        A single pass that reads every tile once (a thumbnail) gains nothing from a cache, yet
        fills it: OpenSlide's default of 32 MiB is most of a large slide's thumbnail read.
        """

    # ----------------------------------------------------------------------------------
    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    def require_mpp(self) -> float:
        """Level-0 mpp, or a :class:`SlideError` naming the file when it is unknown."""
        if self.mpp is None or not math.isfinite(self.mpp) or self.mpp <= 0:
            raise SlideError(f"{self.path}: no resolution (mpp) in the file's metadata; pass --mpp")
        return float(self.mpp)

    def read_region(self, x0: int, y0: int, level: int, width: int, height: int) -> np.ndarray:
        """Read ``width × height`` level pixels whose top-left is level-0 ``(x0, y0)``."""
        if not 0 <= level < self.level_count:
            raise SlideError(f"{self.path}: level {level} does not exist (0..{self.level_count - 1})")
        if width <= 0 or height <= 0:
            raise SlideError(f"{self.path}: region size must be positive, got {width}×{height}")
        out = self._read(int(x0), int(y0), level, int(width), int(height))
        return np.ascontiguousarray(out[..., :3], dtype=np.uint8)

    def best_level(self, downsample: float) -> int:
        """The coarsest level whose downsample is ≤ ``downsample`` (never finer than needed)."""
        best = 0
        for i, d in enumerate(self.level_downsamples):
            if d <= downsample * (1 + self.level_tolerance):
                best = i
        return best

    def read_at_mpp(self, x0: int, y0: int, size: int, target_mpp: float) -> np.ndarray:
        """A ``size × size`` patch at ``target_mpp`` whose top-left is level-0 ``(x0, y0)``.

        Reads the best level for the target resolution and resizes (area averaging when
        shrinking), so level 0 is never read when a lower level serves.
        """
        from PIL import Image

        ds = target_mpp / self.require_mpp()
        level = self.best_level(ds)
        ext0 = size * ds  # level-0 extent of the patch
        lvl_ds = self.level_downsamples[level]
        w = max(1, round(ext0 / lvl_ds))
        region = self.read_region(x0, y0, level, w, w)
        if w == size:
            return region
        resample = Image.Resampling.BOX if w > size else Image.Resampling.BILINEAR
        return np.asarray(Image.fromarray(region).resize((size, size), resample))

    def thumbnail(self, max_side: int = 1024) -> tuple[np.ndarray, float]:
        """A thumbnail no larger than ``max_side`` and its downsample from level 0."""
        from PIL import Image

        w0, h0 = self.dimensions
        ds = max(w0, h0) / max_side if max(w0, h0) > max_side else 1.0
        level = self.best_level(ds)
        lw, lh = self.level_dimensions[level]
        img = self.read_region(0, 0, level, lw, lh)
        tw, th = max(1, round(w0 / ds)), max(1, round(h0 / ds))
        if (lw, lh) != (tw, th):
            img = np.asarray(Image.fromarray(img).resize((tw, th), Image.Resampling.BOX))
        return img, w0 / tw

    def __enter__(self) -> SlideReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, {self.dimensions}, mpp={self.mpp})"


@READERS.register("array", help="in-memory RGB array (tests, generated slides)")
class ArrayReader(SlideReader):
    """A slide held in memory as an (H, W, 3) array; levels are built by 2× box downsampling.

    Out-of-bounds pixels read as white, like background glass.
    """

    def __init__(self, image: np.ndarray, mpp: float | None = 0.5, levels: int = 1, name: str = "<array>"):
        if image.ndim != 3 or image.shape[2] < 3:
            raise SlideError(f"{name}: expected an (H, W, 3) array, got shape {image.shape}")
        self.path = name
        self.mpp = mpp
        self._levels = [np.ascontiguousarray(image[..., :3], dtype=np.uint8)]
        for _ in range(1, levels):
            prev = self._levels[-1]
            h, w = prev.shape[0] // 2, prev.shape[1] // 2
            if h < 1 or w < 1:
                break
            down = prev[: 2 * h, : 2 * w].reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
            self._levels.append(np.round(down).astype(np.uint8))
        self.level_dimensions = [(a.shape[1], a.shape[0]) for a in self._levels]
        self.level_downsamples = [image.shape[1] / a.shape[1] for a in self._levels]

    def _read(self, x0: int, y0: int, level: int, width: int, height: int) -> np.ndarray:
        arr = self._levels[level]
        ds = self.level_downsamples[level]
        lx, ly = int(x0 // ds), int(y0 // ds)
        out = np.full((height, width, 3), 255, np.uint8)
        sx0, sy0 = max(lx, 0), max(ly, 0)
        sx1, sy1 = min(lx + width, arr.shape[1]), min(ly + height, arr.shape[0])
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - ly : sy1 - ly, sx0 - lx : sx1 - lx] = arr[sy0:sy1, sx0:sx1]
        return out
