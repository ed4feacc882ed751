"""A whole slide at real size: tile → dataset → embed on a ≥ 40k × 30k px slide against a 5k one.

Both slides come from the synthetic-slide generator (``histosynth synth-slide``: pyramidal JPEG
TIFF, 0.5 µm/px, the blobs layout), written in a child process whose time and peak memory are
the generator's. Their labels are the generator's label grid saved as a PANDA-style mask (one
pixel per 32 px cell). Each stage then runs through the CLI in its own child process, with the
commands' defaults (one process for ``tile`` and ``dataset``, whose threads use every core; two
DataLoader workers for ``embed``):

``tile``
    ``--size 256 --patch-mpp 0.5 --min-tissue 0.5``; throughput in tiles kept per second.
``dataset``
    ``--annotations --classes --preset all --max-per-slide 0``: every tissue tile becomes a
    patch and its map; patches per second.
``embed``
    ``--encoder handcrafted`` (64 px sub-tiles); sub-tiles per second.

Peak memory is the whole process tree's resident memory, sampled every 20 ms
(``proc_tree.run_measured``). Goal: the large slide's peak within 1.25× of the 5k slide's, for
the pipeline (its largest stage) and, stricter, per stage and for the generator.

Usage: ``python benchmarks/bench_wholeslide.py [--large 40000x30000] [--small 5000x3750]``;
``--quick`` runs 6000x4500 against 2000x1500. Results: ``benchmarks/results/wholeslide.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "wholeslide"
STAGES = ("tile", "dataset", "embed")


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def child_slide(spec: dict) -> dict:
    """Write one synthetic slide and its mask (in this fresh process)."""
    from PIL import Image

    from histosynth.samples import write_synthetic_slide

    folder = Path(spec["folder"])
    (folder / "ann").mkdir(parents=True, exist_ok=True)
    levels = 1 + max(1, (max(spec["size"]) // 1250).bit_length() - 1)  # top level ~1.25k px, like a scanner's
    t = time.perf_counter()
    slide = write_synthetic_slide(folder / f"{spec['name']}.tif", tuple(spec["size"]), levels=levels, seed=1)
    seconds = time.perf_counter() - t
    Image.fromarray(slide.label_grid).save(folder / "ann" / f"{spec['name']}_mask.png")
    slide.classes.save(folder / "classes.json")
    return {
        "seconds": round(seconds, 1),
        "levels": levels,
        "bytes": (folder / f"{spec['name']}.tif").stat().st_size,
    }


def _stage_args(stage: str, folder: Path, name: str) -> list[str]:
    if stage == "tile":
        return ["tile", str(folder / f"{name}.tif"), "-o", str(folder / "tiles"), "--size", "256",
                "--patch-mpp", "0.5", "--min-tissue", "0.5"]  # fmt: skip
    if stage == "dataset":
        return ["dataset", str(folder / "tiles"), "-o", str(folder / "ds"), "--annotations", str(folder / "ann"),
                "--classes", str(folder / "classes.json"), "--preset", "all", "--max-per-slide", "0"]  # fmt: skip
    return ["embed", str(folder / "tiles"), "-o", str(folder / "emb"), "--encoder", "handcrafted"]


def _items(stage: str, folder: Path) -> int:
    """What a stage made: tiles kept, patches written, sub-tiles embedded (from its manifest)."""
    out = {"tile": "tiles", "dataset": "ds", "embed": "emb"}[stage]
    counts = json.loads((folder / out / "manifest.json").read_text())["counts"]
    return int(counts[{"tile": "tiles", "dataset": "patches", "embed": "vectors"}[stage]])


def measure(name: str, size: tuple[int, int]) -> dict:
    sys.path.insert(0, str(HERE))  # proc_tree.py, also when imported
    from proc_tree import run_measured

    folder = WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    env = {**os.environ, "HISTOSYNTH_PROGRESS": "0"}
    spec = json.dumps({"folder": str(folder), "name": name, "size": list(size)})
    out, wall, peak = run_measured([sys.executable, __file__, "--child-slide", spec], env)
    row: dict = {"size": list(size), "generator": {**json.loads(out.strip().splitlines()[-1]),
                                                   "peak_rss_mb": round(peak, 1)}}  # fmt: skip
    print(
        f"{name}: generated {size[0]}x{size[1]} in {row['generator']['seconds']} s, {peak:.0f} MB", flush=True
    )
    for stage in STAGES:
        _, wall, peak = run_measured(
            [sys.executable, "-m", "histosynth", *_stage_args(stage, folder, name)], env
        )
        n = _items(stage, folder)
        row[stage] = {"items": n, "seconds": round(wall, 2), "items_per_s": round(n / wall, 2),
                      "peak_rss_mb": round(peak, 1)}  # fmt: skip
        print(f"{name}: {stage} {row[stage]}", flush=True)
    shutil.rmtree(folder)  # gigabytes of slide and patches
    return row


def summary_rows(result: dict) -> list[dict]:
    """The rows ``benchmarks/run_all.py`` gathers into the summary table."""
    big, small = result["large"], result["small"]
    side = f"{big['size'][0]}x{big['size'][1]} vs {small['size'][0]}x{small['size'][1]} px"
    peak = max(big[s]["peak_rss_mb"] for s in STAGES) / max(small[s]["peak_rss_mb"] for s in STAGES)
    rows = [{"metric": f"whole-slide pipeline peak RSS (tile → dataset → embed), large / small ({side})",
             "value": f"{peak:.2f}", "goal": "≤ 1.25", "met": peak <= 1.25}]  # fmt: skip
    for stage in ("generator", *STAGES):
        ratio = big[stage]["peak_rss_mb"] / small[stage]["peak_rss_mb"]
        rows.append({"metric": f"whole-slide peak RSS, large / small ({stage}, {side})", "value": f"{ratio:.2f}",
                     "goal": "≤ 1.25", "met": ratio <= 1.25})  # fmt: skip
    for stage in STAGES:
        ratio = big[stage]["items_per_s"] / small[stage]["items_per_s"]
        rows.append({"metric": f"whole-slide throughput, large / small ({stage}, {side})", "value": f"{ratio:.2f}",
                     "goal": "measured", "met": True})  # fmt: skip
    return rows


def doc_tables(result: dict) -> dict[str, str]:
    """The docs' table (``docs/scaling.md``), from a results JSON: block name → Markdown."""
    from doc_tables import table

    big, small = result["large"], result["small"]
    m = result["machine"]
    rows = []
    for stage in ("generator", *STAGES):
        b, s = big[stage], small[stage]
        if stage == "generator":
            speed = [f"{s['seconds']:.1f} s", f"{b['seconds']:.1f} s", "", ""]
        else:
            speed = [f"{s['items']:,} in {s['seconds']:.1f} s", f"{b['items']:,} in {b['seconds']:.1f} s",
                     f"{s['items_per_s']:.0f} / {b['items_per_s']:.0f}", f"{b['items_per_s'] / s['items_per_s']:.2f}"]  # fmt: skip
        ratio = b["peak_rss_mb"] / s["peak_rss_mb"]
        rows.append([f"`{stage}`" if stage != "generator" else "generator (`synth-slide`)", *speed,
                     f"{s['peak_rss_mb']:.0f}", f"{b['peak_rss_mb']:.0f}", f"**{ratio:.2f}**"])  # fmt: skip
    sizes = [f"{r['size'][0]:,} × {r['size'][1]:,}" for r in (small, big)]
    head = ["stage", f"{sizes[0]} px: items, time", f"{sizes[1]} px: items, time", "items/s, small / large",
            "throughput large / small", "peak MB small", "peak MB large", "peak large / small (goal ≤ 1.25)"]  # fmt: skip
    load = " → ".join(
        ", ".join(f"{v:.1f}" for v in m[k]) for k in ("load_avg_at_start", "load_avg_end") if k in m
    )
    note = f"Measured {result['created'][:10]} on {m['cpu']} ({m['cores']} cores; load average {load})."
    return {"bench_wholeslide:table": note + "\n\n" + table(head, rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", type=_size, default=(40000, 30000))
    ap.add_argument("--small", type=_size, default=(5000, 3750))
    ap.add_argument("--quick", action="store_true", help="6000x4500 against 2000x1500")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "wholeslide.json")
    ap.add_argument("--summary-only", action="store_true", help="recompute the summary rows of --out")
    ap.add_argument(
        "--doc", type=Path, default=None, help="Write the table of --out's JSON into this page; no run"
    )
    ap.add_argument("--child-slide", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.doc:
        sys.path.insert(0, str(HERE))  # doc_tables.py, also when imported
        from doc_tables import replace_block

        for name, text in doc_tables(json.loads(args.out.read_text())).items():
            replace_block(args.doc, name, text)
        return
    if args.summary_only:
        result = json.loads(args.out.read_text())
        result["summary"] = summary_rows(result)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return
    if args.child_slide:
        print(json.dumps(child_slide(json.loads(args.child_slide))))
        return
    if args.quick:
        args.large, args.small = (6000, 4500), (2000, 1500)
    sys.path.insert(0, str(HERE))
    from machine import machine

    result = {"benchmark": "wholeslide", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine(), "small": measure("small", args.small), "large": measure("large", args.large)}  # fmt: skip
    result["machine"]["load_avg_end"] = list(os.getloadavg())
    result["summary"] = summary_rows(result)
    from histosynth.artifacts import atomic_write_text  # readers never see half a file

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
