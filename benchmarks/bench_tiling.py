"""Tiling benchmark: ``histosynth tile`` + ``dataset`` against the raw read limit and histolab.

For each generated slide (pyramidal JPEG TIFF, sides 5k/10k/20k px by default) this measures,
each in a fresh process so peak memory is its own:

``pipeline``
    ``histosynth tile`` then ``histosynth dataset`` (PANDA-style label mask, rule ``any`` so
    every tissue tile becomes a patch), through the real CLI, with ``--workers`` (default 1,
    the commands' default: one process whose threads use every core), once per PNG
    mode (``--png compat``, the default and the bytes of earlier releases; ``fast``;
    ``stored``: the same pixels, see ``histosynth.data.png``).
``raw``
    The same reader reading the same patch regions (``read_at_mpp``) with no other work, two
    ways: one process per core (``--raw-workers``), and one process whose threads (one more
    than cores, as the ``dataset`` stage runs them) share one reader per chunk of 128 patches,
    as the pipeline does. The raw read limit is the faster of the two. A third read, one
    process per core through OpenSlide alone (``HISTOSYNTH_DIRECT_TILES=0``: no direct tile
    decoding), is what an OpenSlide-based tiler pays; the pipeline's ratio to it is reported
    beside the limit's.
``encode``
    PNG encoding of one image + map pair in each PNG mode, and reading one patch, in one
    process (the dataset format's fixed cost against the read).
``histolab``
    histolab's ``GridTiler`` (installed by this script in ``benchmarks/_work/venv-histolab``)
    on the same slide, patch size, level and tissue threshold, one process (histolab has no
    workers); compared with the pipeline run with one worker process. It writes one PNG per
    tile (no label maps).
``hs2p``
    hs2p's ``tile_slides`` (installed by this script in ``benchmarks/_work/venv-hs2p``, or the
    interpreter given with ``--hs2p-python``) on the same slide, patch size, mpp and tissue
    share, with one worker per core (``--raw-workers``), run twice so that each side is
    compared with the same kind of output: *coordinates* (``save_tiles=False``: HSV tissue
    segmentation, the grid, a ``.npz`` of coordinates) against ``histosynth tile`` (tissue
    mask, grid, ``tiles.parquet``, QC pictures); *pixels on disk* (``save_tiles=True``: the
    same, then every tile read and written as a JPEG, quality 90, into one tar per slide)
    against ``tile`` + ``dataset`` in each PNG mode (every patch written as a lossless PNG
    file plus a PNG label map file, each synced to disk before the chunk is recorded done).

Every timed section also reports its CPU seconds (all threads and worker processes): on a
shared machine wall time moves with the neighbours' load, CPU time per patch much less.

Usage::

    python benchmarks/bench_tiling.py                       # 5k, 10k, 20k; writes results JSON
    python benchmarks/bench_tiling.py --sides 5000 --no-histolab --no-hs2p

Results go to ``benchmarks/results/tiling.json``; ``docs/tiling.md`` summarises them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
SIZE, MPP, MIN_TISSUE = 256, 0.5, 0.5
# Every timed run writes into a folder of its own under RUNS, and RUNS goes only after the last
# timing. Deleting a run's ~7,000 files just before the next run writes its own made ext4 skip
# the freed inodes one by one (``recently_deleted``: 20 % of the pipeline's CPU in a perf
# profile) and doubled its kernel time: a cost of the benchmark's clean-up, not of the tiler.
RUNS = WORK / "runs"
PNG_MODES = ("compat", "fast", "stored")


# ------------------------------------------------------------------------------ slides
ATLAS = 1024  # side of the per-class texture tile, level-0 px


def _write_pyramid(
    path: Path, grid, cell: int, side: int, levels: int, mpp: float = 0.5, tile: int = 256
) -> None:
    """A pyramidal JPEG TIFF whose pixels follow ``grid`` (one class per ``cell``² block).

    Texture comes from one pre-rendered ``ATLAS``² tile per class (the synthetic slide's
    textures, repeated), so a 20k px slide is written in about a minute; each lower level uses
    the atlas box-averaged by 2^level, so every level shows the same tissue.
    """
    import numpy as np
    import tifffile

    from histosynth.samples import render_region

    classes = int(grid.max()) + 1
    base = [render_region(np.full((1, 1), c, np.uint8), ATLAS, 0, 0, ATLAS, ATLAS) for c in range(classes)]
    tmp = path.with_name(f".{path.name}.tmp")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        for level in range(levels):
            ds = 2**level
            a = ATLAS // ds
            atlas = np.stack(
                [b.reshape(a, ds, a, ds, 3).mean(axis=(1, 3)).round().astype(np.uint8) for b in base]
            )
            lw = side // ds

            def tiles(lw=lw, ds=ds, a=a, atlas=atlas):
                for ty in range(0, lw, tile):
                    for tx in range(0, lw, tile):
                        ys, xs = ty + np.arange(tile), tx + np.arange(tile)
                        rows = np.clip(ys * ds // cell, 0, grid.shape[0] - 1)
                        cols = np.clip(xs * ds // cell, 0, grid.shape[1] - 1)
                        lab = grid[np.ix_(rows, cols)]
                        yield atlas[lab, (ys % a)[:, None], (xs % a)[None, :]]

            px_per_cm = 1e4 / mpp / ds
            tw.write(tiles(), shape=(lw, lw, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                     compression="jpeg", compressionargs={"level": 90}, resolution=(px_per_cm, px_per_cm),
                     resolutionunit="CENTIMETER", subfiletype=1 if level else 0, metadata=None)  # fmt: skip
    tmp.replace(path)


def make_slide(side: int) -> dict[str, str]:
    """A ``side × side`` synthetic pyramidal JPEG TIFF and its label mask (cached in _work)."""
    import numpy as np
    from PIL import Image

    from histosynth.samples import SYNTHETIC_CLASSES, make_label_grid

    folder = WORK / f"slide{side}"
    path, ann = folder / f"s{side}.tif", folder / "ann"
    mask, classes = ann / f"s{side}_mask.png", folder / "classes.json"
    if not (path.is_file() and mask.is_file() and classes.is_file()):
        levels = 1 + max(1, int(np.log2(side / 1250)))  # top level about 1.25k px, like a scanner's
        t = time.perf_counter()
        cell = 32
        grid = make_label_grid(-(-side // cell), -(-side // cell), 4, "blobs", seed=side)
        ann.mkdir(parents=True, exist_ok=True)
        _write_pyramid(path, grid, cell, side, levels)
        # The label grid itself is an aligned mask: one pixel per 32 × 32 level-0 cell.
        Image.fromarray(grid).save(mask)
        type(SYNTHETIC_CLASSES)(SYNTHETIC_CLASSES.classes[:4], "synthetic").save(classes)
        print(f"generated {path.name} ({levels} levels) in {time.perf_counter() - t:.0f} s", flush=True)
    return {"slide": str(path), "annotations": str(ann), "classes": str(classes)}


# ------------------------------------------------------------------------ child runs
# What the two commands import: loaded before the clock starts, as the peers' scripts import
# their library first, so every tiler is timed on its work and not on Python's imports (about
# 0.8 s, a constant that would otherwise dominate the small slides).
STAGE_MODULES = ("histosynth.cli.tile", "histosynth.cli.dataset", "histosynth.wsi.tile_stage",
                 "histosynth.data.build", "histosynth.wsi.label_sources", "histosynth.wsi.qc",
                 "histosynth.data.png", "histosynth.errors", "scipy.ndimage", "skimage.morphology",
                 "skimage.filters", "skimage.transform", "packaging.version", "pandas", "pyarrow.parquet",
                 "pyarrow.dataset", "pyarrow.pandas_compat", "openslide", "imagecodecs", "tifffile",
                 "PIL.ImageDraw", "PIL.PngImagePlugin", "PIL.JpegImagePlugin")  # fmt: skip


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its children that have ended."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child_pipeline(spec: dict) -> dict:
    import importlib

    from histosynth.cli.main import main

    for name in STAGE_MODULES:
        importlib.import_module(name)
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    os.environ["HISTOSYNTH_PROGRESS"] = "0"
    times, cpu0 = {}, cpu_seconds()
    for stage, argv in [
        (
            "tile",
            [
                "tile",
                spec["slide"],
                "-o",
                str(out / "tiles"),
                "--size",
                str(SIZE),
                "--patch-mpp",
                str(MPP),
                "--min-tissue",
                str(MIN_TISSUE),
                "--workers",
                str(spec["workers"]),
            ],
        ),
        (
            "dataset",
            [
                "dataset",
                str(out / "tiles"),
                "-o",
                str(out / "ds"),
                "--annotations",
                spec["annotations"],
                "--classes",
                spec["classes"],
                "--preset",
                "all",
                "--max-per-slide",
                "0",
                "--workers",
                str(spec["workers"]),
                "--png",
                spec.get("png", "compat"),
            ],
        ),
    ]:
        t = time.perf_counter()
        try:
            main(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise RuntimeError(f"histosynth {stage} exited with {exc.code}") from None
        times[stage] = time.perf_counter() - t
    import pandas as pd

    n = len(pd.read_parquet(out / "ds" / "index.parquet"))
    total, cpu = times["tile"] + times["dataset"], cpu_seconds() - cpu0
    return {
        "tile_s": round(times["tile"], 3),
        "dataset_s": round(times["dataset"], 3),
        "patches": n,
        "patches_per_s": round(n / total, 2),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_patch": round(cpu / n * 1e3, 3),
    }


def _read_chunk(path: str, rows: list[tuple[int, int]], threads: int = 1) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from histosynth.wsi import open_slide

    with open_slide(path) as s:
        if threads <= 1:
            for x0, y0 in rows:
                s.read_at_mpp(x0, y0, SIZE, MPP)
        else:
            with ThreadPoolExecutor(threads) as pool:
                for _ in pool.map(lambda xy: s.read_at_mpp(xy[0], xy[1], SIZE, MPP), rows):
                    pass
    return len(rows)


def child_raw(spec: dict) -> dict:
    """Read the dataset's patches with processes, then with threads; the faster is the limit.
    Then once more with processes and OpenSlide alone (no direct tile decoding, see
    ``histosynth.wsi.tiff_tiles``): the read every OpenSlide-based tiler pays, for reference."""
    from concurrent.futures import ProcessPoolExecutor

    import pandas as pd

    from histosynth.distributed.executors import item_cores

    index = pd.read_parquet(Path(spec["out"]) / "ds" / "index.parquet")
    rows = list(zip(index["x0"].tolist(), index["y0"].tolist(), strict=True))
    chunk = 128  # the dataset stage's chunk size: same locality
    parts = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    out = {}
    for how in ("processes", "threads", "openslide"):
        if how == "openslide":
            os.environ["HISTOSYNTH_DIRECT_TILES"] = "0"  # inherited by the worker processes
        t, cpu0 = time.perf_counter(), cpu_seconds()
        if how == "threads":
            n = sum(_read_chunk(spec["slide"], p, item_cores() + 1) for p in parts)
        elif spec["workers"] <= 1:
            n = sum(_read_chunk(spec["slide"], p) for p in parts)
        else:
            with ProcessPoolExecutor(spec["workers"]) as pool:
                n = sum(pool.map(_read_chunk, [spec["slide"]] * len(parts), parts))
        dt, cpu = time.perf_counter() - t, cpu_seconds() - cpu0
        out[how] = {"seconds": round(dt, 3), "patches": n, "patches_per_s": round(n / dt, 2),
                    "cpu_s": round(cpu, 3), "cpu_ms_per_patch": round(cpu / n * 1e3, 3)}  # fmt: skip
    best = max(("processes", "threads"), key=lambda k: out[k]["patches_per_s"])
    return {**out[best], "limit": best, **out}


def child_encode(spec: dict) -> dict:
    import numpy as np
    import pandas as pd

    from histosynth.data.patch_dataset import encode_png
    from histosynth.wsi import open_slide

    index = pd.read_parquet(Path(spec["out"]) / "ds" / "index.parquet").head(200)
    xy = list(zip(index["x0"], index["y0"], strict=True))
    label = np.zeros((SIZE, SIZE), np.uint8)
    label[:, SIZE // 3 :] = 2
    with open_slide(spec["slide"]) as s:
        patches = [s.read_at_mpp(x, y, SIZE, MPP) for x, y in xy]
        t = time.perf_counter()
        for x, y in xy:
            s.read_at_mpp(x, y, SIZE, MPP)
        read_ms = (time.perf_counter() - t) / len(xy) * 1e3
    out = {"read_ms_per_patch": round(read_ms, 3), "n": len(patches)}
    for mode in PNG_MODES:
        t = time.perf_counter()
        size = sum(len(encode_png(p, mode)) + len(encode_png(label, mode)) for p in patches)
        ms = (time.perf_counter() - t) / len(patches) * 1e3
        out[mode] = {"ms_per_patch": round(ms, 3), "per_read": round(ms / read_ms, 2),
                     "kb_per_patch": round(size / len(patches) / 1024, 1)}  # fmt: skip
    return out


HISTOLAB_SCRIPT = r"""
import json, sys, time, shutil
from pathlib import Path
from histolab.slide import Slide
from histolab.tiler import GridTiler
from histolab.masks import TissueMask
spec = json.loads(sys.argv[1])
out = Path(spec["out"]); shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
t = time.perf_counter()
slide = Slide(spec["slide"], processed_path=str(out))
tiler = GridTiler(tile_size=(spec["size"], spec["size"]), level=0, check_tissue=True,
                  tissue_percent=spec["tissue_percent"], pixel_overlap=0, prefix="", suffix=".png")
tiler.extract(slide, extraction_mask=TissueMask())
dt = time.perf_counter() - t
n = len(list(out.rglob("*.png")))
print(json.dumps({"seconds": round(dt, 3), "patches": n, "patches_per_s": round(n / dt, 2)}))
"""


# histolab 0.7.0 pins scikit-image<0.19.4 and openslide-python 1.3.1, which have no wheels for
# Python 3.11 (source builds, and a system OpenSlide). Its code runs on the newest wheels that
# keep NumPy 1.x, so the venv gets those and histolab itself without its pins.
HISTOLAB_DEPS = [
    "numpy<2",
    "scikit-image<0.25",
    "scipy<1.14",
    "pillow<11",
    "openslide-python>=1.4",
    "openslide-bin",
    "certifi",
]


def peer_venv(name: str, check: str, *installs: list[str]) -> Path:
    """The python of ``_work/venv-<name>`` (a peer's own venv), made on first use: each list of
    ``installs`` is one ``pip install`` (PyPI wheels only); ``check`` is what it must import."""
    venv = WORK / f"venv-{name}"
    py = venv / "bin" / "python"
    if not py.is_file() or subprocess.run([py, "-c", f"import {check}"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        for args in installs:
            subprocess.run([py, "-m", "pip", "install", "-q", *args], check=True)
    return py


def histolab_python() -> Path:
    """The histolab venv's python (its pins have no 3.11 wheels: see HISTOLAB_DEPS)."""
    return peer_venv("histolab", "histolab, openslide", ["--only-binary=:all:", *HISTOLAB_DEPS],
                     ["--no-deps", "histolab==0.7.0"])  # fmt: skip


def peer_version(py: Path, package: str) -> str:
    out = subprocess.run(
        [py, "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


HS2P_SCRIPT = r"""
import json, sys, time, shutil, tarfile
from pathlib import Path
from hs2p import (FilterConfig, MaskSamplingConfig, PreviewConfig, SegmentationConfig, SlideSpec,
                  TilingConfig, tile_slides)
spec = json.loads(sys.argv[1])
out = Path(spec["out"]); shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
import resource
def cpu():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
t, c = time.perf_counter(), cpu()
tile_slides(
    [SlideSpec(sample_id="s", image_path=Path(spec["slide"]), spacing_at_level_0=spec["mpp"])],
    tiling=TilingConfig(requested_spacing_um=spec["mpp"], requested_tile_size_px=spec["size"],
                        tolerance=0.05, overlap=0.0, backend="openslide", mask_backend="openslide"),
    segmentation=SegmentationConfig(method="hsv"), filtering=FilterConfig(),
    preview=PreviewConfig(save_mask_preview=False, save_tiling_preview=False),
    output_dir=out, num_workers=spec["workers"], save_tiles=spec["save_tiles"],
    masks=MaskSamplingConfig(pixel_mapping={"background": 0, "tissue": 1},
                             min_coverage={"tissue": spec["min_tissue"]}),
)
dt, cpu_s = time.perf_counter() - t, cpu() - c
if spec["save_tiles"]:
    n = sum(sum(m.isfile() and m.name.endswith(".jpg") for m in tarfile.open(p)) for p in out.rglob("*.tar"))
else:
    import numpy as np
    n = sum(len(np.load(p)["x"]) for p in out.rglob("*.coordinates.npz"))
print(json.dumps({"seconds": round(dt, 3), "patches": n, "patches_per_s": round(n / dt, 2),
                  "cpu_s": round(cpu_s, 3), "cpu_ms_per_patch": round(cpu_s / max(n, 1) * 1e3, 3)}))
"""


def hs2p_python(given: Path | None) -> Path:
    """An interpreter with hs2p and OpenSlide: ``given``, or its own venv made on first use."""
    if given is not None:
        return given
    return peer_venv(
        "hs2p", "hs2p, openslide", ["--only-binary=:all:", "hs2p", "openslide-python", "openslide-bin"]
    )


def hs2p_comparison(result: dict, side: int, args: argparse.Namespace, runs: Path) -> dict:
    """hs2p against the pipeline on the largest slide, like with like: coordinates only, then
    pixels on disk (see the module's docstring); each hs2p run right after ours, so a load
    change on a shared machine moves both of a pair."""
    files = make_slide(side)
    py = hs2p_python(args.hs2p_python)
    peer = {
        "slide": files["slide"],
        "size": SIZE,
        "mpp": MPP,
        "min_tissue": MIN_TISSUE,
        "workers": args.raw_workers,
    }
    coords = run_child(
        "hs2p", {**peer, "out": str(runs / f"hs2p{side}-coords"), "save_tiles": False}, python=py
    )
    ours = next(r["pipeline"] for r in result["runs"] if r["side"] == side)  # the same slide's runs
    tile = {m: {"tiles": o["patches"], "tile_s": o["tile_s"], "tiles_per_s": round(o["patches"] / o["tile_s"], 2)}
            for m, o in ours.items()}  # fmt: skip
    best_tile = max(t["tiles_per_s"] for t in tile.values())  # the tile stage is the same in every mode
    pixels = run_child("hs2p", {**peer, "out": str(runs / f"hs2p{side}"), "save_tiles": True}, python=py)
    return {
        "version": peer_version(py, "hs2p"),
        "side": side,
        "workers": {"hs2p": args.raw_workers, "histosynth": args.workers},
        "coordinates": {
            "hs2p": {**coords, "output": "HSV tissue mask, grid, coordinates .npz"},
            "histosynth_tile": tile,
            "speedup": round(best_tile / coords["patches_per_s"], 2),
        },
        "pixels": {
            "hs2p": {
                **pixels,
                "output": "coordinates + every tile as JPEG (quality 90) in one tar; no label maps",
            },
            "histosynth": ours,
            "histosynth_output": "tiles table + every patch as a PNG file and its label map as a PNG file, "
            "synced before each chunk is recorded done",
            "speedup": {m: round(o["patches_per_s"] / pixels["patches_per_s"], 2) for m, o in ours.items()},
        },
    }


def run_child(kind: str, spec: dict, python: Path | None = None) -> dict:
    """Run one measurement in a fresh process; adds the peak memory of its whole process tree
    (``proc_tree.run_measured``)."""
    if kind == "histolab":
        cmd = [str(histolab_python()), "-c", HISTOLAB_SCRIPT, json.dumps(spec)]
    elif kind == "hs2p":
        cmd = [str(python), "-c", HS2P_SCRIPT, json.dumps(spec)]
    else:
        cmd = [sys.executable, __file__, "--child", kind, json.dumps(spec)]
    env = {**os.environ, "HISTOSYNTH_PROGRESS": "0", "WANDB_MODE": "disabled"}
    sys.path.insert(0, str(HERE))  # proc_tree.py, also when imported
    from proc_tree import run_measured

    out, _, peak_mb = run_measured(cmd, env)
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mb": round(peak_mb, 1)}


# -------------------------------------------------------------------------------- main
def summary_rows(result: dict) -> list[dict]:
    """The rows ``benchmarks/run_all.py`` gathers into the summary table."""
    rows = []
    for r in result["runs"]:
        for mode, ratio in r["ratio_to_raw"].items():
            rows.append({"metric": f"tile + dataset throughput / raw read limit ({r['side']} px slide, --png {mode})",
                         "value": f"{ratio:.2f}", "goal": "≥ 0.8", "met": ratio >= 0.8})  # fmt: skip
            vs_openslide = r.get("ratio_to_openslide", {}).get(mode)
            if vs_openslide is not None:
                rows.append({"metric": f"tile + dataset throughput / OpenSlide's raw read ({r['side']} px slide, "
                                       f"--png {mode})", "value": f"{vs_openslide:.2f}", "goal": "measured", "met": True})  # fmt: skip
            cpu = r.get("cpu_ratio_to_raw", {}).get(mode)
            if cpu is not None:
                rows.append({"metric": f"raw read / (tile + dataset), CPU time per patch ({r['side']} px slide, "
                                       f"--png {mode})", "value": f"{cpu:.2f}", "goal": "measured", "met": True})  # fmt: skip
    if "histolab" in result:
        h = result["histolab"]
        rows.append({"metric": f"speed-up vs histolab {h['version']} ({h['side']} px, 1 worker)",
                     "value": f"{h['speedup']:.2f}x", "goal": "≥ 1", "met": h["speedup"] >= 1})  # fmt: skip
    if "hs2p" in result:
        h = result["hs2p"]
        c = h["coordinates"]["speedup"]
        rows.append({"metric": f"speed-up vs hs2p {h['version']}, coordinates (tile vs save_tiles=False, {h['side']} px)",
                     "value": f"{c:.2f}x", "goal": "≥ 1", "met": c >= 1})  # fmt: skip
        for mode, speedup in h["pixels"]["speedup"].items():
            rows.append({"metric": f"speed-up vs hs2p {h['version']}, pixels on disk (tile + dataset --png {mode} "
                                   f"vs save_tiles=True, {h['side']} px)",
                         "value": f"{speedup:.2f}x", "goal": "≥ 1", "met": speedup >= 1})  # fmt: skip
    return rows


def _cpu_pair(peer: dict, ours: dict | None) -> str:
    """``peer / ours`` CPU milliseconds per patch where measured (histolab's run has none)."""

    def ms(run: dict | None) -> str:
        return f"{run['cpu_ms_per_patch']:.2f}" if run and "cpu_ms_per_patch" in run else "–"

    return f"{ms(peer)} / {ms(ours)}"


def _openslide_read(raw: dict, ratio: float | None) -> str:
    """OpenSlide's own raw read and the pipeline's ratio to it (runs before direct tiles: –)."""
    if "openslide" not in raw or ratio is None:
        return "–"
    return f"{raw['openslide']['patches_per_s']:.0f} ({ratio:.2f})"


def doc_tables(result: dict) -> dict[str, str]:
    """The docs' tables (``docs/tiling.md``), from a results JSON: block name → Markdown."""
    from doc_tables import table

    m = result["machine"]
    load = ", ".join(f"{v:.1f}" for v in m.get("load_avg_at_start", []))
    machine = f"Measured {result['created'][:10]} on {m['cpu']} ({m['cores']} cores; load average {load} at the start)."
    rows = []
    for r in result["runs"]:
        for i, (mode, p) in enumerate(r["pipeline"].items()):
            raw = r["raw"][mode]
            rows.append([f"{r['side']:,} px" if i == 0 else "", f"{p['patches']:,}" if i == 0 else "", mode,
                         f"{p['tile_s']:.2f}", f"{p['dataset_s']:.2f}", f"{p['patches_per_s']:.0f}",
                         f"{raw['patches_per_s']:.0f} ({raw.get('limit', 'processes')})",
                         f"**{r['ratio_to_raw'][mode]:.2f}**",
                         _openslide_read(raw, r.get("ratio_to_openslide", {}).get(mode)),
                         f"{p.get('cpu_ms_per_patch', float('nan')):.2f} / {raw.get('cpu_ms_per_patch', float('nan')):.2f}",
                         f"{r.get('cpu_ratio_to_raw', {}).get(mode, float('nan')):.2f}",
                         f"{p['peak_rss_mb']:.0f}"])  # fmt: skip
    runs = table(["slide side", "patches", "`--png`", "`tile` (s)", "`dataset` (s)", "tile + dataset patches/s",
                  "raw read limit patches/s (how)", "ratio", "OpenSlide's raw read patches/s (ratio)",
                  "CPU ms/patch, pipeline / raw", "CPU ratio",
                  "peak MB"], rows)  # fmt: skip
    peers = []
    if "hs2p" in result:
        h = result["hs2p"]
        c = h["coordinates"]
        tile = max(c["histosynth_tile"].values(), key=lambda t: t["tiles_per_s"])
        peers.append([f"hs2p {h['version']}", "coordinates only", f"{h['side']:,} px",
                      f"`tile_slides(save_tiles=False)`: {c['hs2p']['patches']:,} tiles, {c['hs2p']['seconds']:.2f} s, "
                      f"{c['hs2p']['patches_per_s']:.0f}/s", f"`tile`: {tile['tiles']:,} tiles, {tile['tile_s']:.2f} s, "
                      f"{tile['tiles_per_s']:.0f}/s", f"**{c['speedup']:.2f}×**", _cpu_pair(c["hs2p"], None)])  # fmt: skip
        px = h["pixels"]
        for mode, o in px["histosynth"].items():
            peers.append([f"hs2p {h['version']}", f"pixels on disk (`--png {mode}`)", f"{h['side']:,} px",
                          f"`save_tiles=True` (JPEG in a tar): {px['hs2p']['patches']:,} tiles, "
                          f"{px['hs2p']['seconds']:.2f} s, {px['hs2p']['patches_per_s']:.0f}/s",
                          f"`tile` + `dataset` (PNG + map files): {o['patches']:,} patches, "
                          f"{o['tile_s'] + o['dataset_s']:.2f} s, {o['patches_per_s']:.0f}/s",
                          f"**{px['speedup'][mode]:.2f}×**", _cpu_pair(px["hs2p"], o)])  # fmt: skip
    if "histolab" in result:
        h, o = result["histolab"], result["histolab"]["histosynth_1_worker"]
        peers.append([f"histolab {h['version']}", "pixels on disk (`--png compat`)", f"{h['side']:,} px",
                      f"`GridTiler` (PNG files): {h['histolab']['patches']:,} tiles, {h['histolab']['seconds']:.1f} s, "
                      f"{h['histolab']['patches_per_s']:.0f}/s",
                      f"`tile` + `dataset`, one process: {o['patches']:,} patches, {o['tile_s'] + o['dataset_s']:.2f} s, "
                      f"{o['patches_per_s']:.0f}/s", f"**{h['speedup']:.2f}×**", _cpu_pair(h["histolab"], o)])  # fmt: skip
    out = {"bench_tiling:runs": machine + "\n\n" + runs}
    if peers:
        out["bench_tiling:peers"] = table(
            ["peer", "compared", "slide", "peer", "histosynth", "histosynth speed-up (wall)",
             "CPU ms a patch, peer / histosynth"], peers,
        )  # fmt: skip
    if "encode" in result["runs"][0]:
        e = result["runs"][0]["encode"]
        enc = [[mode, f"{e[mode]['ms_per_patch']:.2f}", f"{e[mode]['per_read']:.2f}", f"{e[mode]['kb_per_patch']:.0f}"]
               for mode in PNG_MODES if mode in e]  # fmt: skip
        out["bench_tiling:encode"] = (f"Reading one patch: {e['read_ms_per_patch']:.2f} ms ({result['runs'][0]['side']:,} px slide).\n\n"
                                      + table(["`--png`", "encode image + map (ms)", "× the read", "KB a patch"], enc))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", type=int, nargs="+", default=[5000, 10000, 20000])
    ap.add_argument("--workers", type=int, default=1, help="the pipeline's --workers [1]")
    ap.add_argument("--raw-workers", type=int, default=os.cpu_count() or 1, help="reader processes [cores]")
    ap.add_argument("--png", nargs="+", choices=PNG_MODES, default=list(PNG_MODES), help="PNG modes to run")
    ap.add_argument("--no-histolab", action="store_true")
    ap.add_argument(
        "--histolab-side", type=int, default=None, help="Slide side for histolab (default: largest)"
    )
    ap.add_argument("--no-hs2p", action="store_true")
    ap.add_argument("--hs2p-python", type=Path, default=None, help="An interpreter with hs2p installed")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "tiling.json")
    ap.add_argument(
        "--doc", type=Path, default=None, help="Write the tables of --out's JSON into this page; no run"
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("spec", nargs="?", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = {"pipeline": child_pipeline, "raw": child_raw, "encode": child_encode}[args.child]
        print(json.dumps(fn(json.loads(args.spec))))
        return
    if args.doc:
        sys.path.insert(0, str(HERE))  # doc_tables.py, also when imported
        from doc_tables import replace_block

        for name, text in doc_tables(json.loads(args.out.read_text())).items():
            replace_block(args.doc, name, text)
        return

    import histosynth

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # machine.py, also when imported
    from machine import machine

    result: dict = {
        "benchmark": "tiling",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "histosynth": histosynth.__version__,
        "settings": {
            "patch_size": SIZE,
            "mpp": MPP,
            "min_tissue": MIN_TISSUE,
            "workers": args.workers,
            "raw_workers": args.raw_workers,
            "png": args.png,
            "labels": "label mask (PANDA style), rule 'any', no per-slide cap",
            "reader": "auto (OpenSlide; its JPEG tiles decoded directly, histosynth.wsi.tiff_tiles)",
        },
        "runs": [],
    }
    runs = RUNS / time.strftime("%Y%m%d-%H%M%S")  # fresh folders for this invocation's outputs
    for side in args.sides:
        files = make_slide(side)
        spec = {**files, "workers": args.workers}
        # Each mode's pipeline, then the raw read of the patches it wrote: a load change on a
        # shared machine moves both of a pair.
        run: dict = {"side": side, "pipeline": {}, "raw": {}, "ratio_to_raw": {}}
        for mode in args.png:
            out = str(runs / f"run{side}-{mode}")
            run["pipeline"][mode] = run_child("pipeline", {**spec, "out": out, "png": mode})
            run["raw"][mode] = run_child("raw", {**spec, "out": out, "workers": args.raw_workers})
            run["ratio_to_raw"][mode] = round(
                run["pipeline"][mode]["patches_per_s"] / run["raw"][mode]["patches_per_s"], 3
            )
            run.setdefault("ratio_to_openslide", {})[mode] = round(
                run["pipeline"][mode]["patches_per_s"] / run["raw"][mode]["openslide"]["patches_per_s"], 3
            )
            # The same ratio in CPU time per patch: what the wall ratio would be on idle cores.
            run.setdefault("cpu_ratio_to_raw", {})[mode] = round(
                run["raw"][mode]["cpu_ms_per_patch"] / run["pipeline"][mode]["cpu_ms_per_patch"], 3
            )
        if side == min(args.sides):
            run["encode"] = run_child("encode", {**spec, "out": out})  # the last mode's patches
            # A process per core instead of threads.
            procs = {**spec, "out": str(runs / f"run{side}-{args.raw_workers}w"), "workers": args.raw_workers}
            run[f"pipeline_{args.raw_workers}_workers"] = run_child("pipeline", procs)
        print(json.dumps(run), flush=True)
        result["runs"].append(run)
    if not args.no_hs2p:
        result["hs2p"] = hs2p_comparison(result, max(args.sides), args, runs)
        print(json.dumps(result["hs2p"]), flush=True)
    if not args.no_histolab:
        side = args.histolab_side or max(args.sides)
        files = make_slide(side)
        py = histolab_python()
        hl = run_child(
            "histolab",
            {
                "slide": files["slide"],
                "out": str(runs / f"histolab{side}"),
                "size": SIZE,
                "tissue_percent": MIN_TISSUE * 100,
            },
        )
        ours = run_child("pipeline", {**files, "out": str(runs / f"run{side}-1w"), "workers": 1})
        result["histolab"] = {
            "version": peer_version(py, "histolab"),
            "side": side,
            "histolab": hl,
            "histosynth_1_worker": ours,
            "speedup": round(ours["patches_per_s"] / hl["patches_per_s"], 2),
        }
        print(json.dumps(result["histolab"]), flush=True)
    result["summary"] = summary_rows(result)
    from histosynth.artifacts import atomic_write_text  # readers never see half a file

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    shutil.rmtree(RUNS, ignore_errors=True)  # after every timing (see RUNS), earlier runs' too


if __name__ == "__main__":
    main()
