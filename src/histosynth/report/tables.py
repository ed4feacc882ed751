"""The report's metric tables and plots, built from ``metrics.json`` alone (no image access)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from histosynth.report.svg import bar_chart, line_chart, scatter_chart

__all__ = [
    "c2st_section",
    "distribution_section",
    "domain_section",
    "fmt",
    "mask_section",
    "memorization_table",
    "per_class_section",
    "table",
    "training_section",
    "tstr_section",
]

HELD = "real-heldout"


def fmt(v: Any, digits: int = 3) -> str:
    """A number for a table cell (em dash for missing values)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, int):  # bool is an int
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return escape(str(v))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """An HTML table; cells are HTML already (escape text before passing it)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _columns(m: Mapping[str, Any]) -> list[str]:
    return [*m["variants"], HELD]


def _col_head(v: str) -> str:
    return f'<span class="ref">{escape(v)}</span>' if v == HELD else escape(v)


def _ci(m: Mapping[str, Any], key: str) -> str:
    lo, hi = m.get(key.replace("_", "_ci_low_", 1)), m.get(key.replace("_", "_ci_high_", 1))
    return f' <span class="ci">[{fmt(lo)}, {fmt(hi)}]</span>' if lo is not None and hi is not None else ""


def distribution_section(m: Mapping[str, Any]) -> str:
    """Per detector: a table with variants side by side; then FD bars and a precision/recall plot."""
    cols, out = _columns(m), []
    rows_spec = [("FD", "fd"), ("KID", "kid"), ("precision", "precision"), ("recall", "recall"),
                 ("density", "density"), ("coverage", "coverage")]  # fmt: skip
    for det in m["metric_detectors"]:
        ident = m["detectors"].get(det, {})
        sha = (ident.get("weights_sha256") or "")[:16] or ident.get("identity") or "no weights"
        rows = []
        for label, key in rows_spec:
            vals = [m["metrics"][v].get(f"{key}_{det}") for v in cols]
            best = _best(vals[:-1], lower=key in ("fd", "kid"))
            cells = []
            for i, v in enumerate(cols):
                mv = m["metrics"][v]
                text = fmt(mv.get(f"{key}_{det}"))
                if key == "kid" and mv.get(f"kid_std_{det}") is not None:
                    text += f' <span class="ci">± {fmt(mv[f"kid_std_{det}"])}</span>'
                elif key != "kid":
                    text += _ci(mv, f"{key}_{det}")
                cells.append(f"<b>{text}</b>" if i == best else text)
            rows.append([label, *cells])
        rows.append(["n (real / synthetic)", *[f"{fmt(m['metrics'][v].get(f'n_real_{det}'))} / "
                                               f"{fmt(m['metrics'][v].get(f'n_synthetic_{det}'))}" for v in cols]])  # fmt: skip
        out.append(f'<h3>{escape(det)} <span class="ident">{escape(str(sha))}</span></h3>')
        out.append(table(["metric", *map(_col_head, cols)], rows, "metrics"))
    charts = []
    for det in m["metric_detectors"]:
        vals = {v: m["metrics"][v].get(f"fd_{det}") for v in cols}
        errs = {
            v: (m["metrics"][v].get(f"fd_ci_low_{det}"), m["metrics"][v].get(f"fd_ci_high_{det}"))
            for v in cols
        }
        charts.append(bar_chart({det: vals}, f"FD under {det}", "Fréchet distance", {det: errs}, width=300))
    points = [(v, det, m["metrics"][v].get(f"recall_{det}"), m["metrics"][v].get(f"precision_{det}"))
              for det in m["metric_detectors"] for v in cols]  # fmt: skip
    charts.append(scatter_chart(points, "Precision / recall", "recall", "precision"))
    out.append('<div class="charts">' + "".join(charts) + "</div>")
    return "\n".join(out)


def _best(values: Sequence[Any], lower: bool) -> int | None:
    nums = [(v, i) for i, v in enumerate(values) if isinstance(v, int | float) and math.isfinite(v)]
    if len(nums) < 2:
        return None
    return (min(nums) if lower else max(nums))[1]


def per_class_section(m: Mapping[str, Any]) -> str:
    """Per-class FD (rows: classes; columns: variants) per detector, with tile counts."""
    cols, out = _columns(m), []
    names = [c["name"] for c in m["classes"]]
    from histosynth.evaluate.suite import slug

    for det in m["metric_detectors"]:
        rows = []
        for name in names:
            key = f"fd_class_{slug(name)}_{det}"
            if not any(key in m["metrics"][v] for v in cols):
                continue
            cells = [f"{fmt(m['metrics'][v].get(key))} <span class='ci'>({m['counts'].get(f'tiles_{slug(name)}_{v}', 0)})"
                     "</span>" for v in cols]  # fmt: skip
            rows.append([escape(name), *cells])
        if rows:
            out.append(f"<h3>{escape(det)}</h3>" + table(["class", *map(_col_head, cols)], rows, "metrics"))
    if not out:
        return "<p>No class had enough pure tiles for a per-class FD.</p>"
    return "<p>FD on tiles lying inside one class; tile counts in brackets.</p>" + "\n".join(out)


def c2st_section(m: Mapping[str, Any]) -> str:
    """C2ST accuracy per variant, with the real floor and how to read it."""
    cols = _columns(m)
    if not any("c2st" in m["metrics"][v] for v in cols):
        return "<p>Not computed (c2st was off, or too few images).</p>"
    rows = [["accuracy", *[fmt(m["metrics"][v].get("c2st")) for v in cols]],
            ["± over folds", *[fmt(m["metrics"][v].get("c2st_fold_std")) for v in cols]],
            ["images per class", *[fmt(m["metrics"][v].get("c2st_n")) for v in cols]],
            ["paired by map", *[("yes" if m["metrics"][v].get("c2st_paired") else "no") if v != HELD else "—"
                                for v in cols]],
            ["speckle ratio", *[fmt(m["metrics"][v].get("speckle_ratio")) for v in cols]]]  # fmt: skip
    return (
        "<p>A small CNN trained to tell each set from the held-out real patches, cross-validated "
        "(0.5: it cannot; 1.0: trivially). Synthetic images are paired with the real patches whose maps "
        "they were made from. The real-heldout column is held-out against training patches: other "
        "places of a slide are themselves partly separable, so read every value against it. The speckle "
        "ratio is the images' high-frequency energy (mean |Laplacian| of grey) over that of the held-out "
        "patches: above 1 noise, below 1 blur.</p>" + table(["", *map(_col_head, cols)], rows, "metrics")
    )


def mask_section(m: Mapping[str, Any]) -> str:
    """Mask fidelity: the real-data segmenter's IoU/Dice on each variant and on held-out real images."""
    cols = _columns(m)
    if not any("mask_miou" in m["metrics"][v] for v in cols):
        return "<p>Not computed (mask fidelity was off).</p>"
    from histosynth.evaluate.suite import slug

    rows = [["mIoU", *[fmt(m["metrics"][v].get("mask_miou")) for v in cols]],
            ["mean Dice", *[fmt(m["metrics"][v].get("mask_mdice")) for v in cols]]]  # fmt: skip
    for c in m["classes"]:
        rows.append(
            [
                f"IoU {escape(c['name'])}",
                *[fmt(m["metrics"][v].get(f"mask_iou_{slug(c['name'])}")) for v in cols],
            ]
        )
    return table(["", *map(_col_head, cols)], rows, "metrics")


def tstr_section(m: Mapping[str, Any]) -> str:
    """The paper's segmentation table: rows = training data, columns = per-class IoU and mIoU."""
    t = m.get("tstr")
    if not t:
        return "<p>Not computed (TSTR was off).</p>"
    names = t["classes"]
    rows = []
    for r in t["table"]:
        cells = [
            f"{fmt(r['iou_mean'][c])} <span class='ci'>± {fmt(r['iou_std'][c], 2)}</span>" for c in names
        ]
        rows.append([escape(r["condition"]), f"{r['n_real']} / {r['n_synthetic']}", *cells,
                     f"<b>{fmt(r['miou_mean'])}</b> <span class='ci'>± {fmt(r['miou_std'], 2)}</span>"])  # fmt: skip
    seeds = max((r["seeds"] for r in t["table"]), default=0)
    head = ["training data", "n real / synthetic", *[f"IoU {escape(c)}" for c in names], "mIoU"]
    vals = {r["condition"]: {**r["iou_mean"], "mIoU": r["miou_mean"]} for r in t["table"]}
    errs = {r["condition"]: {"mIoU": _pm(r["miou_mean"], r["miou_std"])} for r in t["table"]}
    long = max((len(k) for k in vals), default=0)
    chart = bar_chart(vals, "TSTR: IoU on held-out real images", "IoU", errs,
                      width=max(480, 40 + (len(names) + 1) * 14 * len(vals) + 120), height=240 + int(3.4 * long))  # fmt: skip
    note = (f"<p>DeepLabv3+ trained on each set, tested on {t['test_images']} held-out real images; "
            f"mean ± standard deviation over {seeds} seed(s).</p>")  # fmt: skip
    return note + table(head, rows, "metrics") + f'<div class="charts">{chart}</div>'


def _pm(mean: float | None, std: float | None) -> tuple[float, float] | None:
    if mean is None or std is None:
        return None
    return mean - std, mean + std


def memorization_table(m: Mapping[str, Any]) -> str:
    """Nearest-training-image statistics per variant and space; crop copying counts."""
    spaces = sorted({k.removeprefix("memo_share_") for v in m["variants"] for k in m["metrics"][v]
                     if k.startswith("memo_share_")})  # fmt: skip
    rows = []
    for v in m["variants"]:
        mv = m["metrics"][v]
        for s in spaces:
            rows.append([escape(v), escape(s), fmt(mv.get(f"memo_share_{s}")), fmt(mv.get(f"memo_offenders_{s}")),
                         fmt(mv.get(f"memo_threshold_{s}")), fmt(mv.get(f"memo_nn_median_{s}")),
                         fmt(mv.get(f"memo_ref_median_{s}")), fmt(mv.get(f"memo_nn_ratio_{s}"))])  # fmt: skip
    head = ["variant", "space", "share < 1st pct", "offenders", "threshold", "median NN (synthetic)",
            "median NN (held-out real)", "ratio"]  # fmt: skip
    crops = [[escape(v), fmt(m["metrics"][v].get("crops_checked")), fmt(m["metrics"][v].get("crop_copies")),
              fmt(m["metrics"][v].get("crop_rmse_median")), fmt(m["metrics"][v].get("crops_unresolved"))]
             for v in m["variants"] if "crops_checked" in m["metrics"][v]]  # fmt: skip
    out = table(head, rows, "metrics")
    if crops:
        out += "<h3>Crop copying</h3>" + table(
            ["variant", "crops checked", "copied", "median best-match RMSE", "unresolved"], crops, "metrics"
        )
    return out


def training_section(m: Mapping[str, Any], train_stats: Mapping[str, Sequence[tuple[float, float]]]) -> str:
    """Loss curves: the diffusion model of each variant (when its stats.jsonl is known) and the segmenter."""
    charts = []
    if train_stats:
        charts.append(line_chart(train_stats, "Diffusion training loss", "step", "loss", log_y=True))
    losses = m.get("segmenter_losses") or []
    if losses:
        charts.append(line_chart({"segmenter (real)": list(enumerate(losses))}, "Segmenter training loss",
                                 "step", "cross-entropy"))  # fmt: skip
    if not charts:
        return "<p>No training statistics were found.</p>"
    return '<div class="charts">' + "".join(charts) + "</div>"


def domain_section(m: Mapping[str, Any]) -> str:
    """Per-domain FD (mean over labs, then per lab) and crop adherence, variants side by side."""
    from histosynth.evaluate.keys import slug

    cols = _columns(m)
    rows = []
    for det in m["metric_detectors"]:
        key = f"domainfd_{det}"
        best = _best([m["metrics"][v].get(key) for v in cols[:-1]], lower=True)
        rows.append([f"per-domain FD, {escape(det)}",
                     *[(f"<b>{c}</b>" if i == best else c) for i, c in enumerate(
                         fmt(m["metrics"][v].get(key)) + _ci(m["metrics"][v], key) for v in cols)]])  # fmt: skip
        for lab in m["domains"]:
            k = f"domainfd_{slug(lab)}_{det}"
            rows.append(
                [f'<span class="ci">{escape(lab)}</span>', *[fmt(m["metrics"][v].get(k)) for v in cols]]
            )
    for space in ("stain", *m["metric_detectors"]):
        key = f"adherence_{space}"
        if any(key in m["metrics"][v] for v in cols):
            rows.append([f"crop adherence, {escape(space)}",
                         *[fmt(m["metrics"][v].get(key)) + _ci(m["metrics"][v], key) for v in cols]])  # fmt: skip
    rows.append(["regions scored", *[fmt(m["metrics"][v].get("adherence_regions")) for v in cols]])
    return (
        f"<p>The real data holds {len(m['domains'])} labs ({escape(', '.join(m['domains']))}). Per-domain FD: "
        "images made with one lab's crops against that lab's held-out real patches, averaged over labs (the "
        "real-heldout column: each lab's held-out patches against its training patches). Crop adherence: "
        "a region's distance to its own crop over its mean distance to same-class crops of the other labs; "
        "below 1 the images follow their crops, about 1 they ignore them (the real-heldout column: each "
        "lab's held-out patches against a crop of another patch of their lab, what a generator that "
        "reproduced every lab exactly would score).</p>" + table(["", *map(_col_head, cols)], rows, "metrics")
    )
