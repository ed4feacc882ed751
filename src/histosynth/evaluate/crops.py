"""Crop copying: does a synthetic image reproduce one of its exemplar crops pixel for pixel?

Synthetic datasets record, per row, the exemplar crops the sampler was given (``crop_sources``:
JSON, per class a list of ``{"slide", "patch", "box": [x, y, w, h]}`` in the real dataset's
images). Each crop is searched at *every* position of the synthetic image, since token-style
conditioning may place tissue anywhere. The search minimises the sum of squared differences
over all placements, computed with FFT cross-correlation (Lewis 1995)::

    SSD(u, v) = Σ I(u + ·, v + ·)²  −  2 (I ⋆ T)(u, v)  +  Σ T²

and the best placement's root-mean-square error is then recomputed directly. A crop whose
RMSE (0..255 scale) is at most the tolerance is reported as copied.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["best_match", "check_crop_copies", "parse_crop_sources"]


def parse_crop_sources(text: Any) -> list[dict[str, Any]]:
    """Flatten a row's ``crop_sources`` into ``{"class", "slide", "patch", "box"}`` records."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or text == "":
        return []
    data = json.loads(text) if isinstance(text, str) else text
    out = []
    for cls, entries in dict(data).items():
        for e in entries or []:
            if not e:  # a crop without provenance (e.g. drawn by hand in the studio)
                continue
            box = [int(v) for v in e["box"]]
            if len(box) != 4:
                raise ValueError(f"crop box must be [x, y, w, h], got {e['box']!r}")
            out.append({"class": str(cls), "slide": e.get("slide"), "patch": str(e["patch"]), "box": box})
    return out


def _window_sums(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sums of every h×w window of a 2-D array (summed-area table)."""
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1), np.float64)
    s[1:, 1:] = a.cumsum(0).cumsum(1)
    return s[h:, w:] - s[:-h, w:] - s[h:, :-w] + s[:-h, :-w]


def best_match(image: np.ndarray, template: np.ndarray) -> tuple[float, int, int]:
    """(rmse, x, y) of the placement of ``template`` in ``image`` with the least squared error."""
    from scipy.signal import fftconvolve

    img = np.asarray(image, np.float64)
    tpl = np.asarray(template, np.float64)
    h, w = tpl.shape[:2]
    if h > img.shape[0] or w > img.shape[1]:
        raise ValueError(f"crop {w}×{h} is larger than the image {img.shape[1]}×{img.shape[0]}")
    corr = sum(fftconvolve(img[..., c], tpl[::-1, ::-1, c], mode="valid") for c in range(3))
    ssd = _window_sums((img**2).sum(-1), h, w) - 2.0 * corr + (tpl**2).sum()
    y, x = np.unravel_index(int(np.argmin(ssd)), ssd.shape)
    rmse = float(np.sqrt(((img[y : y + h, x : x + w] - tpl) ** 2).mean()))
    return rmse, int(x), int(y)


def check_crop_copies(synthetic, rows, real, tolerance: float) -> list[dict[str, Any]]:
    """One record per (synthetic image, exemplar crop): best-match RMSE, place, and ``copied``.

    Crops whose exemplar cannot be found in ``real`` (unknown patch id, other slide, box outside
    the image) get ``status`` saying why, and are not counted as checked.
    """
    if "crop_sources" not in synthetic.index.columns:
        return []
    from functools import lru_cache

    by_id = {str(p): i for i, p in enumerate(real.index["id"])}
    exemplar = lru_cache(maxsize=256)(real.image)  # exemplars repeat across rows; memory stays bounded
    records = []
    for row in rows:
        sid = str(synthetic.index.at[row, "id"])
        crops = parse_crop_sources(synthetic.index.at[row, "crop_sources"])
        if not crops:
            continue
        syn_img = synthetic.image(row)
        for crop in crops:
            rec = {
                "id": sid,
                **crop,
                "rmse": None,
                "x": None,
                "y": None,
                "copied": False,
                "status": "checked",
            }
            j = by_id.get(crop["patch"])
            if j is None:
                rec["status"] = "exemplar patch not in the real dataset"
            elif crop["slide"] is not None and str(real.index.at[j, "slide"]) != str(crop["slide"]):
                rec["status"] = "exemplar patch belongs to another slide"
            else:
                x, y, w, h = crop["box"]
                src = exemplar(j)
                if x < 0 or y < 0 or w < 1 or h < 1 or x + w > src.shape[1] or y + h > src.shape[0]:
                    rec["status"] = "box outside the exemplar image"
                elif w > syn_img.shape[1] or h > syn_img.shape[0]:
                    rec["status"] = "crop larger than the synthetic image"
                else:
                    rmse, bx, by = best_match(syn_img, src[y : y + h, x : x + w])
                    rec.update(rmse=rmse, x=bx, y=by, copied=rmse <= tolerance)
            records.append(rec)
    return records
