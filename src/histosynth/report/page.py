"""``report``: one self-contained HTML page from an evaluation folder.

Pictures are base64 PNG data URIs and plots inline SVG, so the page is a single file that opens
offline and can be mailed or archived. Images are read from the dataset folders recorded in
``metrics.json``; a folder that has moved since is named on the page and its pictures skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import StageResult, atomic_write_text, read_manifest
from histosynth.report.images import img_tag, mosaic, thumbnail
from histosynth.report.tables import (
    c2st_section,
    distribution_section,
    domain_section,
    fmt,
    mask_section,
    memorization_table,
    per_class_section,
    table,
    training_section,
    tstr_section,
)

__all__ = ["ReportConfig", "find_train_stats", "read_train_stats", "run", "sample_grid"]


@dataclass(frozen=True)
class ReportConfig:
    """What the report pictures.

    Attributes
    ----------
    samples
        Rows of the sample grid per variant.
    max_listed
        Most offenders and flagged images pictured per variant.
    """

    samples: int = 6
    max_listed: int = 24


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1280px;padding:16px 28px;color:#222}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
h3{font-size:15px;margin:16px 0 6px}table{border-collapse:collapse;margin:6px 0 12px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:middle}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.ci,.ident{color:#777;font-size:12px}.ref{color:#555;font-style:italic}
.charts{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}.charts svg{background:#fff}
table.grid td{text-align:center;padding:3px}table.grid img{display:block;image-rendering:pixelated}
.empty{display:flex;align-items:center;justify-content:center;background:#f4f4f4;color:#999}
.note{color:#666}.warn{color:#a40}code{background:#f4f4f4;padding:0 3px}
"""


def read_train_stats(path: str | Path) -> list[tuple[float, float]]:
    """(step, loss) pairs of a training ``stats.jsonl`` (lines without both keys are skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row and "loss" in row:
            out.append((float(row["step"]), float(row["loss"])))
    return out


def find_train_stats(dataset_folder: str | Path) -> Path | None:
    """The ``stats.jsonl`` of the model that sampled a synthetic dataset, when its folder is known."""
    try:
        model = read_manifest(dataset_folder).get("inputs", {}).get("model")
    except Exception:  # a report is still useful without the loss curve
        return None
    if not model:
        return None
    p = Path(model)
    for cand in (p, *list(p.parents)[:3]):
        if (cand / "stats.jsonl").is_file():
            return cand / "stats.jsonl"
    return None


class _Data:
    """The evaluated datasets, opened lazily; a missing folder is remembered and reported."""

    def __init__(self, m: Mapping[str, Any]) -> None:
        self.m = m
        self.missing: list[str] = []
        self._open: dict[str, Any] = {}
        self.classes = None

    def get(self, role: str):
        if role not in self._open:
            from histosynth.data.patch_dataset import PatchDataset

            folder = self.m["real"]["folder"] if role == "real" else self.m["synthetic"][role]["folder"]
            try:
                ds = PatchDataset(folder)
                self._open[role] = (ds, {str(p): i for i, p in enumerate(ds.index["id"])})
                self.classes = self.classes or ds.classes
            except Exception as exc:  # moved or deleted since the evaluation
                self.missing.append(f"{role}: {folder} ({exc})")
                self._open[role] = None
        return self._open[role]

    def image(self, role: str, pid: str) -> np.ndarray | None:
        got = self.get(role)
        if got is None or pid not in got[1]:
            return None
        return got[0].image(got[1][pid])

    def label(self, role: str, pid: str) -> np.ndarray | None:
        got = self.get(role)
        if got is None or pid not in got[1]:
            return None
        lab = got[0].label(got[1][pid])
        return got[0].classes.colorize(lab)

    def crops(self, role: str, pid: str) -> list[np.ndarray]:
        from histosynth.evaluate.crops import parse_crop_sources

        got = self.get(role)
        if got is None or pid not in got[1] or "crop_sources" not in got[0].index.columns:
            return []
        out = []
        for c in parse_crop_sources(got[0].index.at[got[1][pid], "crop_sources"]):
            src = self.image("real", c["patch"])
            if src is not None:
                x, y, w, h = c["box"]
                out.append(src[y : y + h, x : x + w])
        return out


def _samples_section(m: Mapping[str, Any], data: _Data, n: int) -> str:
    out = []
    for v in m["variants"]:
        rows = []
        for s in m.get("samples", {}).get(v, [])[:n]:
            rows.append([img_tag(data.label(v, s["id"]), f"map {s['id']}", nearest=True),
                         img_tag(mosaic(data.crops(v, s["id"])), "exemplar crops"),
                         img_tag(data.image(v, s["id"]), f"synthetic {s['id']}"),
                         img_tag(data.image("real", s["nearest_train"]),
                                 f"nearest real {s['nearest_train']} ({s['space']}, d={s['distance']:.3g})")])  # fmt: skip
        if rows:
            out.append(
                f"<h3>{escape(v)}</h3>" + table(["map", "crops", "synthetic", "nearest real"], rows, "grid")
            )
    legend = ""
    if data.classes is not None:
        legend = " ".join(f'<span style="display:inline-block;width:11px;height:11px;background:rgb{c.color};'
                          f'border:1px solid #999"></span> {escape(c.name)}' for c in data.classes.classes)  # fmt: skip
    return f'<p class="note">Nearest real image in the space of the first detector. {legend}</p>' + "".join(
        out
    )


def _offenders_section(m: Mapping[str, Any], data: _Data, limit: int) -> str:
    out = [memorization_table(m)]
    for v in m["variants"]:
        rows = []
        for r in m.get("memorization", {}).get(v, [])[:limit]:
            rows.append([img_tag(data.image(v, r["id"]), r["id"], 96), img_tag(data.image("real", r["nearest_train"]),
                         r["nearest_train"], 96), escape(r["id"]), escape(r["nearest_train"]), escape(r["space"]),
                         fmt(r["distance"]), fmt(r["threshold"])])  # fmt: skip
        if rows:
            head = [
                "synthetic",
                "nearest training image",
                "id",
                "training id",
                "space",
                "distance",
                "threshold",
            ]
            out.append(f"<h3>Offenders: {escape(v)}</h3>" + table(head, rows, "grid"))
        copies = []
        for r in (m.get("crop_copies") or {}).get(v, [])[:limit]:
            ex = data.image("real", r["patch"])
            syn = data.image(v, r["id"])
            x, y, w, h = r["box"]
            copies.append([img_tag(None if ex is None else ex[y : y + h, x : x + w], "exemplar", 96),
                           img_tag(None if syn is None else syn[r["y"] : r["y"] + h, r["x"] : r["x"] + w], "match", 96),
                           escape(r["id"]), escape(r["patch"]), escape(str(r["class"])), fmt(r["rmse"])])  # fmt: skip
        if copies:
            head = ["exemplar crop", "synthetic region", "id", "exemplar patch", "class", "RMSE"]
            out.append(f"<h3>Copied crops: {escape(v)}</h3>" + table(head, copies, "grid"))
    return "".join(out)


def _flags_section(m: Mapping[str, Any], data: _Data, limit: int) -> str:
    flags = m.get("flags") or {}
    if not flags:
        return "<p>Not computed.</p>"
    out = []
    for v in m["variants"]:
        f = flags.get(v, {})
        imgs = f.get("images", [])
        out.append(f"<h3>{escape(v)}: {m['metrics'][v].get('hallucination_flagged', 0)} flagged "
                   f"(segmenter threshold {fmt(f.get('segmenter_threshold'))})</h3>")  # fmt: skip
        rows = [[img_tag(data.image(v, r["id"]), r["id"], 96), img_tag(data.label(v, r["id"]), "map", 96, True),
                 escape(r["id"]), fmt(r["density_ratio"]), fmt(r["segmenter_miou"]), escape("; ".join(r["reasons"]))]
                for r in imgs[:limit]]  # fmt: skip
        if rows:
            head = ["synthetic", "map", "id", "density ratio", "segmenter mIoU", "reasons"]
            out.append(table(head, rows, "grid"))
    return ('<p class="note">Flagged when every detector puts the image farther from the real training data than '
            "the held-out real images are (density ratio &gt; 1), or when the real-data segmenter disagrees with "
            "the conditioning map more than on any held-out real image.</p>" + "".join(out))  # fmt: skip


def _header(m: Mapping[str, Any]) -> str:
    det_rows = [[escape(n), escape(str(i.get("arch") or i.get("identity") or "")),
                 escape(str(i.get("weights_sha256") or "—")), str(m["preprocessing"].get(n, {}).get("size", "")),
                 escape(str(m["preprocessing"].get(n, {}).get("dtype", "")))]
                for n, i in m["detectors"].items()]  # fmt: skip
    policy = next(iter(m["preprocessing"].values()), {})
    policy_text = ", ".join(f"{k}: {v}" for k, v in policy.items() if k not in ("size", "dtype"))
    sets = [["real", escape(m["real"]["folder"]), escape(m["real"]["id"]),
             f"{m['counts']['real_train']} train, {m['counts']['real_heldout']} held out ({escape(m['real']['heldout'])})"]]  # fmt: skip
    sets += [[escape(v), escape(s["folder"]), escape(s["id"]), str(m["counts"].get(f"synthetic_{v}", ""))]
             for v, s in m["synthetic"].items()]  # fmt: skip
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in m.get("timing", {}).items())
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    return (table(["dataset", "folder", "id", "images"], sets)
            + "<h3>Detectors</h3>" + table(["detector", "architecture / identity", "weights sha256", "input px",
                                            "input type"], det_rows)
            + f'<p class="note">Preprocessing ({escape(policy_text)}): PNG decoded to RGB, resized to each '
              "detector's input size by PIL bicubic per channel in float (no quantisation), rounded to uint8 only "
              "for detectors that take uint8.</p>"
            + f'<p class="note">Timing: {escape(timing)}<br>Versions: {escape(versions)}</p>')  # fmt: skip


def run(
    evaluation: str | Path,
    out: str | Path | None = None,
    cfg: ReportConfig | None = None,
    *,
    train_stats: Mapping[str, str | Path] | None = None,
) -> StageResult:
    """Write the HTML report of an evaluation (a page is rewritten whole each time).

    >>> run("eval", "eval/report.html").folder       # doctest: +SKIP
    PosixPath('eval/report.html')

    Parameters
    ----------
    evaluation
        An evaluation folder (``metrics.json``).
    out
        The page to write (default ``<evaluation>/report.html``).
    cfg
        What to picture (default :class:`ReportConfig`).
    train_stats
        Variant → training ``stats.jsonl`` of its diffusion model; variants without one are
        looked up through their dataset's manifest (``inputs.model``).

    Returns
    -------
    StageResult
        The page (as ``folder``: the one artefact that is a file), no manifest.
    """
    from histosynth.evaluate.suite import read_metrics
    from histosynth.jobs import RunSummary

    cfg = cfg or ReportConfig()
    folder = Path(evaluation)
    m = read_metrics(folder)
    stats_files = {k: Path(v) for k, v in (train_stats or {}).items()}
    for v, s in m["synthetic"].items():
        if v not in stats_files and (found := find_train_stats(s["folder"])) is not None:
            stats_files[v] = found
    curves = {v: read_train_stats(p) for v, p in stats_files.items()}
    data = _Data(m)
    sections = [
        ("Datasets and detectors", _header(m)),
        ("Distribution metrics", distribution_section(m)),
        *([("Simulated labs", domain_section(m))] if m.get("domains") else []),
        ("Classifier two-sample test", c2st_section(m)),
        ("Samples", _samples_section(m, data, cfg.samples)),
        ("Per-class Fréchet distance", per_class_section(m)),
        ("Mask fidelity", mask_section(m)),
        ("Train on synthetic, test on real", tstr_section(m)),
        ("Training", training_section(m, curves)),
        ("Memorisation and privacy", _offenders_section(m, data, cfg.max_listed)),
        ("Hallucination flags", _flags_section(m, data, cfg.max_listed)),
    ]
    body = "".join(f'<h2 id="s{i}">{escape(t)}</h2>{html}' for i, (t, html) in enumerate(sections))
    toc = " · ".join(f'<a href="#s{i}">{escape(t)}</a>' for i, (t, _) in enumerate(sections))
    warn = "".join(
        f'<p class="warn">Dataset not readable, pictures skipped: {escape(x)}</p>' for x in data.missing
    )
    title = f"histosynth evaluation: {', '.join(m['variants'])}"
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1><p>{toc}</p>{warn}{body}</body></html>\n")  # fmt: skip
    path = Path(out) if out is not None else folder / "report.html"
    atomic_write_text(path, page)
    return StageResult(path, None, RunSummary())


def sample_grid(evaluation: str | Path, variant: str, rows: int = 6, side: int = 128) -> np.ndarray:
    """The report's sample grid of one variant as one image: map | crops | synthetic | nearest real.

    >>> sample_grid("eval", "tokens").shape             # doctest: +SKIP
    (778, 518, 3)
    """
    from histosynth.evaluate.suite import read_metrics
    from histosynth.train.grid import grid_image

    m = read_metrics(evaluation)
    if variant not in m.get("samples", {}):
        raise ValueError(
            f"{evaluation}: no samples of variant {variant!r}; it has {sorted(m.get('samples', {}))}"
        )
    data, blank = _Data(m), np.full((side, side, 3), 255, np.uint8)

    def cell(image: np.ndarray | None, nearest: bool = False) -> np.ndarray:
        if image is None:
            return blank
        t = thumbnail(image, side, nearest)[..., :3]
        out = blank.copy()
        out[: t.shape[0], : t.shape[1]] = t
        return out

    sheet = [[cell(data.label(variant, s["id"]), nearest=True), cell(mosaic(data.crops(variant, s["id"]), side)),
              cell(data.image(variant, s["id"])), cell(data.image("real", s["nearest_train"]))]
             for s in m["samples"][variant][:rows]]  # fmt: skip
    if not sheet:
        raise ValueError(f"{evaluation}: variant {variant!r} has no sample rows")
    return grid_image(sheet)
