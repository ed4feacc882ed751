"""Whole-slide images: readers, tiling geometry, tissue masks, annotations and label sources.

``open_slide(path, mpp=None, reader="auto")`` is the entry point every stage uses; it returns a
:class:`~histosynth.wsi.base.SlideReader` (level-0 coordinates, resolution in mpp).
"""

from histosynth.wsi.base import READERS, ArrayReader, SlideError, SlideReader
from histosynth.wsi.readers import ImageReader, OpenSlideReader, TiffSlideReader, open_slide

__all__ = [
    "READERS",
    "ArrayReader",
    "ImageReader",
    "OpenSlideReader",
    "SlideError",
    "SlideReader",
    "TiffSlideReader",
    "open_slide",
]
