"""The cluster report: one HTML page with mosaics, pseudo-map overlays and quality numbers.

``report/index.html`` shows, per level: silhouette on a sample, stability across seeds (adjusted
Rand index against refits with other seeds), purity against annotations when given, and for
every cluster (and the background, id 0) its size, parents and a mosaic of example sub-tiles
(half nearest the centroid, half random members, each shown with its surroundings and the
sub-tile outlined). Up to ``overlay_slides`` slides are shown with each level's pseudo-map over
a thumbnail. ``report/metrics.json`` holds every number.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import atomic_write_bytes, atomic_write_json, atomic_write_text, safe_filename
from histosynth.cluster.model import ClusterModel
from histosynth.cluster.pseudo_maps import PseudoMapSource, assignments_of, pseudo_classes
from histosynth.cluster.quality import purity, silhouette, stability, truth_labels
from histosynth.data.patch_dataset import encode_png

__all__ = ["write_report"]

THUMB = 96  # px of one mosaic example


def _sample_rows(folder: Path, table: Any, k_fine: int, n: int, seed: int) -> Any:
    """Rows for silhouette and stability: the fitting sample when there is one, else tissue rows."""
    import pandas as pd

    path = folder / "fit_sample.parquet"
    refs = pd.read_parquet(path) if path.is_file() else table.loc[table[f"k{k_fine}"] > 0, ["slide", "row"]]
    if len(refs) > n:
        refs = refs.sample(n=n, random_state=seed)
    return refs.sort_values(["slide", "row"]).reset_index(drop=True)


def _table(folder: Path, store: Any, model: ClusterModel, slides: list[str], grids: dict[str, str]) -> Any:
    """Index rows and ids at every level of the report's slides."""
    import pandas as pd

    frames = [assignments_of(folder / grids[s], s, model.levels).merge(store.slide_index(s), on=["slide", "row"])
              for s in slides]  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _opener(opener: Any) -> Any:
    if opener is not None:
        return opener
    from histosynth.embed.subtiles import default_opener

    return default_opener


def _context_crop(reader: Any, row: Any) -> np.ndarray:
    """The sub-tile with its surroundings (twice its side), outlined, THUMB px."""
    from PIL import Image, ImageDraw

    side0 = 2 * row.sub_size0
    x0 = row.sub_x0 + row.sub_size0 / 2 - side0 / 2
    y0 = row.sub_y0 + row.sub_size0 / 2 - side0 / 2
    img = reader.read_at_mpp(int(round(x0)), int(round(y0)), int(2 * row.subtile), float(row.mpp))
    im = Image.fromarray(img).resize((THUMB, THUMB), Image.Resampling.BILINEAR)
    ImageDraw.Draw(im).rectangle([THUMB // 4, THUMB // 4, 3 * THUMB // 4 - 1, 3 * THUMB // 4 - 1],
                                 outline=(255, 215, 0), width=1)  # fmt: skip
    return np.asarray(im)


def _mosaic(tiles: list[np.ndarray], cols: int = 4) -> np.ndarray:
    rows = max(1, -(-len(tiles) // cols))
    gap = 2
    out = np.full((rows * (THUMB + gap) - gap, cols * (THUMB + gap) - gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (THUMB + gap) : r * (THUMB + gap) + THUMB, c * (THUMB + gap) : c * (THUMB + gap) + THUMB] = t
    return out


def _examples(members: Any, feats: np.ndarray | None, centroid: np.ndarray | None, n: int,
              rng: np.random.Generator) -> Any:  # fmt: skip
    """Half nearest the centroid, half random, ordered typical → atypical."""
    if feats is None or centroid is None or len(members) <= n:
        return members.iloc[rng.permutation(len(members))[:n]]
    d = ((feats - centroid) ** 2).sum(1)
    order = np.argsort(d, kind="stable")
    near = order[: n // 2]
    rest = rng.permutation(order[n // 2 :])[: n - len(near)]
    pick = np.concatenate([near, rest])
    return members.iloc[pick[np.argsort(d[pick], kind="stable")]]


def _mosaics(folder: Path, store: Any, model: ClusterModel, table: Any, n_examples: int, opener: Any,
             seed: int, show_progress: bool) -> dict[str, str]:  # fmt: skip
    """One PNG per (level, id), id 0 (background) included; returns key → relative path."""
    from histosynth.progress import progress

    rng = np.random.default_rng(seed)
    picks: dict[str, Any] = {}
    for k in model.levels:
        for c in range(k + 1):
            members = table[table[f"k{k}"] == c]
            if members.empty:
                continue
            cand = members.iloc[rng.permutation(len(members))[: 4 * n_examples]]
            if c > 0:
                feats = model.pre(_features_in_order(store, cand))
                picks[f"k{k}_c{c}"] = _examples(cand, feats, model.level_centroids[k][c - 1], n_examples, rng)
            else:
                picks[f"k{k}_c0"] = _examples(cand, None, None, n_examples, rng)
    need = {(r.slide, r.row) for p in picks.values() for r in p.itertuples(index=False)}
    crops: dict[tuple[str, int], np.ndarray] = {}
    rows = table.set_index(["slide", "row"]).loc[sorted(need)].reset_index()
    for slide, group in progress(
        rows.groupby("slide", sort=False), desc="report mosaics", disable=not show_progress
    ):
        first = group.iloc[0]
        reader = opener(str(first.slide_path), float(first.slide_mpp))
        try:
            for r in group.itertuples(index=False):
                crops[(slide, r.row)] = _context_crop(reader, r)
        finally:
            reader.close()
    out = {}
    for key, p in picks.items():
        rel = f"report/mosaics/{key}.png"
        atomic_write_bytes(
            folder / rel, encode_png(_mosaic([crops[(r.slide, r.row)] for r in p.itertuples()]))
        )
        out[key] = rel
    return out


def _features_in_order(store: Any, rows: Any) -> np.ndarray:
    """Features of ``rows`` (slide, row) in the order given."""
    out = np.zeros((len(rows), store.dim), np.float32)
    pos = np.arange(len(rows))
    for slide, g in rows.assign(_pos=pos).groupby("slide", sort=False):
        order = np.argsort(g["row"].to_numpy())
        out[g["_pos"].to_numpy()[order]] = np.asarray(
            store.features(slide)[g["row"].to_numpy()[order]], np.float32
        )
    return out


def _overlays(folder: Path, store: Any, model: ClusterModel, slides: list[str], grids: dict[str, str],
              opener: Any) -> dict[str, dict[int, str]]:  # fmt: skip
    """Per slide and level: thumbnail | pseudo-map blended over it."""
    out: dict[str, dict[int, str]] = {}
    for slide in slides:
        idx = store.slide_index(slide).iloc[0]  # geometry is per slide
        reader = opener(str(idx.slide_path), float(idx.slide_mpp))
        try:
            thumb, ds = reader.thumbnail(640)
        finally:
            reader.close()
        th, tw = thumb.shape[:2]
        out[slide] = {}
        for k in model.levels:
            src = PseudoMapSource(str(folder / grids[slide]), f"k{k}", pseudo_classes(k), smooth=0.0)
            lab = src.render(0, 0, tw * ds, th * ds, tw, th)
            colour = src.classes.colorize(lab).astype(np.float32)
            blend = np.where((lab > 0)[..., None], 0.45 * thumb + 0.55 * colour, thumb).astype(np.uint8)
            pic = np.concatenate([thumb, np.full((th, 8, 3), 255, np.uint8), blend], axis=1)
            rel = f"report/overlays/{safe_filename(slide)}_k{k}.png"
            atomic_write_bytes(folder / rel, encode_png(pic))
            out[slide][k] = rel
    return out


def write_report(folder: Path, store: Any, model: ClusterModel, cfg: Any, done: list[str], run: dict[str, Any],
                 truth: dict[str, Any] | None = None, opener: Any = None,
                 show_progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Compute the numbers, draw the pictures, write ``report/index.html``; returns a summary.

    ``run`` carries the stage's per-level ``sizes`` (over all slides) and ``grids``. Examples,
    overlays and purity use at most ``report.max_slides`` slides (seeded choice), so the report
    stays quick for large cohorts.
    """
    rc = cfg.report
    opener = _opener(opener)
    rng = np.random.default_rng(cfg.seed)
    slides = done if len(done) <= rc.max_slides else [done[i] for i in sorted(rng.choice(len(done), rc.max_slides,
                                                                                         replace=False))]  # fmt: skip
    table = _table(folder, store, model, slides, run["grids"])
    refs = _sample_rows(folder, table, model.k, rc.sample, cfg.seed)
    x = _features_in_order(store, refs)
    z = model.pre(x)
    metrics: dict[str, Any] = {"levels": {}, "vectors": int(sum(run["sizes"][str(model.k)])), "sample": int(len(x)),
                               "report_slides": len(slides)}  # fmt: skip
    seeds = [cfg.seed + 1 + i for i in range(rc.stability_seeds)]
    stab = stability(x, model, seeds, niter=cfg.niter) if seeds and len(x) > model.k else {}
    truth_ids = None
    if truth:
        sub = table.sample(n=min(len(table), 4 * rc.sample), random_state=cfg.seed)
        truth_ids = (sub, truth_labels(sub, truth))
    for k in model.levels:
        sil, per_sil = silhouette(z, model.predict(x, k).astype(np.int64))
        entry: dict[str, Any] = {
            "silhouette": sil,
            "silhouette_per_cluster": [None if np.isnan(v) else float(v) for v in per_sil[1:]],
            "sizes": run["sizes"][str(k)],
            "stability_ari": stab.get(k, []),
        }
        if truth_ids is not None:
            entry["truth"] = purity(truth_ids[0][f"k{k}"].to_numpy().astype(np.int64), truth_ids[1])
        metrics["levels"][k] = entry
    mosaics = _mosaics(folder, store, model, table, rc.examples, opener, cfg.seed, show_progress)
    overlays = _overlays(folder, store, model, slides[: rc.overlay_slides], run["grids"], opener)
    atomic_write_json(folder / "report" / "metrics.json", metrics)
    page = _html(metrics, model, mosaics, overlays, store.encoder, cfg, truth_names=_truth_names(truth))
    atomic_write_text(folder / "report" / "index.html", page)
    return {"path": "report/index.html", "silhouette": {k: v["silhouette"] for k, v in metrics["levels"].items()},
            "stability_ari_mean": {k: float(np.mean(v["stability_ari"])) if v["stability_ari"] else None
                                   for k, v in metrics["levels"].items()}}  # fmt: skip


def _truth_names(truth: dict[str, Any] | None) -> dict[int, str]:
    if not truth:
        return {}
    classes = next(iter(truth.values())).classes
    return {c.id: c.name for c in classes.classes}


def _fmt(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def _html(metrics: dict, model: ClusterModel, mosaics: dict[str, str], overlays: dict, enc: dict, cfg: Any,
          truth_names: dict[int, str]) -> str:  # fmt: skip
    e = html.escape
    rel = lambda p: e(p.removeprefix("report/"))  # noqa: E731 - pages live in report/
    parts = [
        "<!doctype html><meta charset='utf-8'><title>histosynth cluster report</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:24px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}th{background:#f4f4f4}"
        ".sw{display:inline-block;width:14px;height:14px;border:1px solid #888;vertical-align:middle}</style>",
        "<h1>Cluster report</h1>",
        f"<p>Encoder <b>{e(enc['name'])}</b> ({e(enc['identity'])}, {enc['dim']}-d); {metrics['vectors']} "
        f"sub-tiles; levels {list(model.levels)}; background (id 0) = tissue fraction &lt; {cfg.min_tissue}; "
        f"fitted on {model.meta.get('fit_vectors', '–')} vectors (≤ {cfg.per_slide} per slide), seed "
        f"{model.meta.get('seed', '–')}; silhouette and stability on {metrics['sample']} vectors.</p>",
        "<h2>Levels</h2><table><tr><th>k</th><th>silhouette</th><th>stability ARI (mean / min)</th>"
        "<th>purity vs annotations</th><th>ARI / NMI vs annotations</th></tr>",
    ]
    for k, m in metrics["levels"].items():
        st = m["stability_ari"]
        t = m.get("truth", {})
        parts.append(
            f"<tr><td>{k}</td><td>{_fmt(m['silhouette'])}</td>"
            f"<td>{_fmt(float(np.mean(st))) if st else '–'} / {_fmt(min(st)) if st else '–'}</td>"
            f"<td>{_fmt(t.get('purity'))}</td><td>{_fmt(t.get('ari'))} / {_fmt(t.get('nmi'))}</td></tr>"
        )
    parts.append("</table>")
    if overlays:
        parts.append("<h2>Pseudo-maps</h2>")
        for slide, per in overlays.items():
            for k, path in per.items():
                parts.append(f"<p>{e(slide)}, k = {k}<br><img src='{rel(path)}' loading='lazy'></p>")
    for k in model.levels:
        classes = pseudo_classes(k)
        m = metrics["levels"][k]
        total = max(1, sum(m["sizes"]))
        coarser = [c for c in model.levels if c < k]
        parents = {c: model.parent(k, c) for c in coarser}
        head = "".join(f"<th>parent k={c}</th>" for c in coarser)
        parts.append(f"<h2>k = {k}</h2><table><tr><th>id</th><th>size</th><th>silhouette</th>{head}"
                     "<th>annotation (purity)</th><th>examples</th></tr>")  # fmt: skip
        per_truth = m.get("truth", {}).get("per_cluster", {})
        for c in range(k + 1):
            key = f"k{k}_c{c}"
            if m["sizes"][c] == 0:
                continue
            colour = "#{:02x}{:02x}{:02x}".format(*classes.classes[c].color)
            name = "0 background" if c == 0 else str(c)
            sil = m["silhouette_per_cluster"][c - 1] if c > 0 else None
            par = "".join(f"<td>{parents[p][c] if c else 0}</td>" for p in coarser)
            t = per_truth.get(c)
            tname = (
                f"{e(truth_names.get(t['majority'], str(t['majority'])))} ({t['purity']:.2f})" if t else "–"
            )
            img = f"<img src='{rel(mosaics[key])}' loading='lazy'>" if key in mosaics else ""
            parts.append(f"<tr><td><span class='sw' style='background:{colour}'></span> {name}</td>"
                         f"<td>{m['sizes'][c]} ({100 * m['sizes'][c] / total:.1f} %)</td><td>{_fmt(sil)}</td>"
                         f"{par}<td>{tname}</td><td>{img}</td></tr>")  # fmt: skip
        parts.append("</table>")
    return "\n".join(parts) + "\n"
