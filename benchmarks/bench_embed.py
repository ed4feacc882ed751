"""Embedding: images/s of ``histosynth embed`` vs a bare DataLoader + model loop.

Both read the same patches of the same slide through :func:`histosynth.wsi.open_slide`, cut the
same sub-tiles, use the same encoder, batch size and DataLoader workers. The bare loop does
nothing else; ``histosynth embed`` (:func:`histosynth.embed.stage.run`, what the command runs) also computes each
sub-tile's tissue fraction, streams float16 features into the shard, writes the parquet index,
the journal and the manifest (and draws its progress bars unless ``HISTOSYNTH_PROGRESS=0``).
Runs alternate between the two and the median of ``--repeats`` runs is reported.
Goal: overhead ≤ 10 %.

    python benchmarks/bench_embed.py                     # writes results/embed.json
    python benchmarks/bench_embed.py --encoders handcrafted --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
WORK = HERE / "_work" / "embed"
RESULTS = HERE / "results"


class BarePatches:
    """The minimal dataset: read a patch, cut its sub-tiles."""

    def __init__(self, path: str, rows: np.ndarray, slide_mpp: float, subtile: int) -> None:
        self.path, self.rows, self.slide_mpp, self.subtile = path, rows, slide_mpp, subtile
        self.reader = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        if self.reader is None:
            from histosynth.wsi import open_slide

            self.reader = open_slide(self.path, mpp=self.slide_mpp)
        x0, y0, size, mpp = self.rows[i]
        patch = self.reader.read_at_mpp(int(x0), int(y0), int(size), float(mpp))
        s = self.subtile
        n = int(size) // s
        return patch.reshape(n, s, n, s, 3).transpose(0, 2, 1, 3, 4).reshape(-1, s, s, 3)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "reader": None}


def bare_loop(tiles, enc, subtile: int, batch: int, workers: int) -> tuple[int, float]:
    from torch.utils.data import DataLoader

    from histosynth.embed.base import TorchEncoder

    rows = tiles[["x0", "y0", "size", "mpp"]].to_numpy(np.float64)
    ds = BarePatches(str(tiles["slide_path"].iloc[0]), rows, float(tiles["slide_mpp"].iloc[0]), subtile)
    per = (int(rows[0, 2]) // subtile) ** 2
    start = time.perf_counter()
    loader = DataLoader(ds, batch_size=max(1, batch // per), num_workers=workers,
                        prefetch_factor=4 if workers else None)  # fmt: skip
    n = 0
    for subs in loader:
        flat = subs.reshape(-1, subtile, subtile, 3)
        if isinstance(enc, TorchEncoder):
            enc.encode_tensor(flat)
        else:
            enc.encode(flat.numpy())
        n += len(flat)
    return n, time.perf_counter() - start


def stage_run(tiles, encoder: str, subtile: int, batch: int, workers: int, out: Path) -> tuple[int, float]:
    from histosynth.embed.stage import EmbedConfig, run

    shutil.rmtree(out, ignore_errors=True)
    cfg = EmbedConfig(encoder=encoder, subtile=subtile, stride=subtile, batch_size=batch, workers=workers)
    start = time.perf_counter()
    m = run(tiles, out, cfg).manifest
    return m["counts"]["vectors"], time.perf_counter() - start


def slide_tiles(size: tuple[int, int], patch: int):
    import pandas as pd

    from histosynth.samples import write_synthetic_slide

    path = WORK / f"slide_{size[0]}x{size[1]}.tif"
    if not path.is_file():
        write_synthetic_slide(path, size=size, seed=7)
    rows = [dict(slide="bench", slide_path=str(path), x0=x, y0=y, size0=patch, size=patch, mpp=0.5,
                 slide_mpp=0.5, split="train")
            for y in range(0, size[1] - patch + 1, patch) for x in range(0, size[0] - patch + 1, patch)]  # fmt: skip
    return pd.DataFrame(rows)


def summary_rows(result: dict) -> list[dict]:
    """The rows ``benchmarks/run_all.py`` gathers into the summary table."""
    return [{"metric": f"embed overhead vs a bare loader + model loop ({name}, {result['slide']} slide)",
             "value": f"{100 * r['overhead']:.1f} %", "goal": "≤ 10 %", "met": r["overhead"] <= 0.10}
            for name, r in result["encoders"].items()]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoders", default="random-init-cnn,handcrafted")
    p.add_argument("--size", default="4096x2048", help="synthetic slide WIDTHxHEIGHT (level 0, 0.5 µm/px)")
    p.add_argument("--subtile", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS / "embed.json")
    args = p.parse_args()
    from histosynth.embed.encoders import load_encoder

    WORK.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.size.split("x"))
    tiles = slide_tiles((w, h), 256)
    results = {}
    for name in args.encoders.split(","):
        enc = load_encoder(name)
        bare_loop(tiles.iloc[:8], enc, args.subtile, args.batch, 0)  # warm-up: imports, first allocations
        bare, stage = [], []
        for r in range(args.repeats):
            n_b, t_b = bare_loop(tiles, enc, args.subtile, args.batch, args.workers)
            n_s, t_s = stage_run(tiles, name, args.subtile, args.batch, args.workers, WORK / f"out_{r}")
            assert n_b == n_s
            bare.append(n_b / t_b)
            stage.append(n_s / t_s)
            print(
                f"  {name}: bare {bare[-1]:.0f} img/s, histosynth embed {stage[-1]:.0f} img/s",
                file=sys.stderr,
            )
        b, s = statistics.median(bare), statistics.median(stage)
        results[name] = {"images": n_b, "bare_images_per_s": round(b, 1), "embed_images_per_s": round(s, 1),
                         "overhead": round(1 - s / b, 4), "runs_bare": [round(v, 1) for v in bare],
                         "runs_embed": [round(v, 1) for v in stage]}  # fmt: skip
    result = {
        "benchmark": "embed", "slide": args.size, "patch": 256, "subtile": args.subtile, "batch": args.batch,
        "workers": args.workers, "repeats": args.repeats, "encoders": results,
        "goal": "histosynth embed overhead ≤ 10 % vs a bare DataLoader + model loop",
        "progress_bars": os.environ.get("HISTOSYNTH_PROGRESS", "1") != "0",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "device": "cpu",
                    "load_average": os.getloadavg()},
    }  # fmt: skip
    result["summary"] = summary_rows(result)
    from histosynth.artifacts import atomic_write_text  # readers never see half a file

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: {"overhead": v["overhead"]} for k, v in results.items()}))


if __name__ == "__main__":
    main()
