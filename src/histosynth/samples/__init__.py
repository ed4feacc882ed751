"""Sample data: the real CMU H&E slide (CC0) and a synthetic slide generator with ground truth.

>>> from histosynth import samples
>>> path = samples.cmu_small_region()          # a real Aperio SVS, 2220×2967 px, 0.499 µm/px
>>> slide = samples.write_synthetic_slide("syn.tif", size=(2048, 1536))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from histosynth.samples.synthetic_slide import (
    SYNTHETIC_CLASSES,
    SyntheticSlide,
    make_label_grid,
    render_region,
    write_synthetic_slide,
)

__all__ = [
    "CMU_SHA256",
    "SYNTHETIC_CLASSES",
    "SyntheticSlide",
    "cmu_small_region",
    "make_label_grid",
    "render_region",
    "write_synthetic_slide",
]

CMU_SHA256 = "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7"
_DATA = Path(__file__).parent / "data"


def cmu_small_region(verify: bool = False) -> Path:
    """Path of ``cmu_small_region.svs``, shipped with the package.

    OpenSlide's public test slide CMU-1-Small-Region (skin: epidermis and dermis; Aperio SVS,
    2220×2967 px at 20×, 0.499 µm/px, one level), released under CC0 1.0; see
    ``samples/data/ATTRIBUTION.md``.

    Parameters
    ----------
    verify
        Check the file's SHA-256 against the published checksum.
    """
    path = _DATA / "cmu_small_region.svs"
    if verify:
        from histosynth.artifacts import file_sha256

        digest = file_sha256(path)
        if digest != CMU_SHA256:
            raise RuntimeError(f"{path}: checksum {digest} differs from the published {CMU_SHA256}")
    return path
