"""Writers of broken inputs: each makes one fault a user could hand to histosynth."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width × height`` px (a decompression bomb's signature)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """``dst`` holds the first ``fraction`` of ``src`` (an interrupted copy)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def blank_slide(path: Path, size: tuple[int, int] = (1024, 768), mpp: float = 0.5) -> Path:
    """A pyramidal TIFF of bare glass (with mpp): a slide with no tissue."""
    from histosynth.data.pyramid_tiff import array_region_fn, write_pyramid_tiff

    glass = np.full((size[1], size[0], 3), 242, np.uint8)
    return write_pyramid_tiff(path, array_region_fn(glass), size, mpp)


def slide_without_mpp(path: Path, size: tuple[int, int] = (1024, 768)) -> Path:
    """A tiled TIFF with tissue-like pixels but no resolution metadata."""
    import tifffile

    rng = np.random.default_rng(0)
    tissue = rng.integers(120, 200, (size[1], size[0], 3), dtype=np.uint8)
    tifffile.imwrite(path, tissue, tile=(256, 256))
    return path


def feature(coords, name: str = "stroma") -> dict:
    """One QuPath-style GeoJSON polygon feature."""
    return {
        "type": "Feature",
        "properties": {"classification": {"name": name}},
        "geometry": {"type": "Polygon", "coordinates": coords},
    }


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path
