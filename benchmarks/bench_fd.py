"""FD benchmark: histosynth's feature extraction + Fréchet distance against clean-fid.

Both tools read the same PNG files, run the *same* encoder (the identical weights, wrapped for
clean-fid as its ``custom_feat_extractor``) and resize with clean-fid's own "clean" resizer
(PIL bicubic per channel in float, which is histosynth's policy too), so their FD values must
agree; the benchmark checks they do within 0.1 % and compares wall time. Each tool runs in a
fresh process; the time covers feature extraction of both sets and the FD, not model loading.

Configurations (``--configs``):

``random-init-cnn``
    10,000 images (5,000 per set) of 64 px through the embedding stage's seeded random CNN
    (64 px input): decoding, resizing, statistics and FD dominate.
``inception-v3``
    Inception-v3 pool3 (2048-d, 299 px input; random weights saved to a safetensors file, since
    no weights can be downloaded here) on ``--inception-n`` images per set. At ~10 images/s on
    two CPU cores 10,000 Inception images take half an hour per tool, so the default is 2 × 2,100
    (more than 2,048 per set, so both covariances have full rank and both tools take their
    statistics route); use ``--inception-n 5000`` on a larger machine.

clean-fid is installed by this script into ``benchmarks/_work/fd/venv-cleanfid`` (``--no-deps``
plus Pillow < 12, whose ``Image.fromarray(mode=...)`` clean-fid still calls); torch and the rest
come from the project's venv through a ``.pth`` file.

Usage::

    python benchmarks/bench_fd.py                               # both configurations
    python benchmarks/bench_fd.py --configs random-init-cnn --n 2000

Results go to ``benchmarks/results/fd.json``; ``docs/evaluation.md`` summarises them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work" / "fd"
CLEANFID = "clean-fid==0.1.35"


# ------------------------------------------------------------------------------ inputs
def make_sets(n: int, size: int) -> tuple[Path, Path]:
    """Two patch datasets of ``n`` PNG images: toy tissue, the second from another layout and tinted."""
    from histosynth.artifacts import is_complete
    from histosynth.evaluate.toy import shift_colour, toy_patches, write_patch_dataset

    out = []
    for name, seed, tint in (("a", 1, (0, 0, 0)), ("b", 2, (8, -6, 4))):
        folder = WORK / f"images-{name}-{n}-{size}"
        if not is_complete(folder):
            imgs, labs, _ = toy_patches(n, size, seed=seed)
            write_patch_dataset(folder, shift_colour(imgs, tint), labs, slide=f"bench-{name}")
        out.append(folder)
    return out[0], out[1]


def inception_weights() -> Path:
    """Seeded random-init torchvision Inception-v3 weights in safetensors (the FID architecture)."""
    path = WORK / "inception-v3-random-seed0.safetensors"
    if not path.is_file():
        import torch
        from safetensors.torch import save_file
        from torchvision.models import inception_v3

        torch.manual_seed(0)
        model = inception_v3(weights=None, aux_logits=True, init_weights=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def cleanfid_python() -> Path:
    """The clean-fid venv's python, created on first use."""
    venv = WORK / "venv-cleanfid"
    py = venv / "bin" / "python"
    if not py.is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--no-deps", CLEANFID, "pillow<12"], check=True
        )
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    # The project's venv (torch, numpy, scipy, requests) and its source, after the venv's own packages.
    Path(site, "_histosynth_main.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n{ROOT / 'src'}\n")
    return py


# ------------------------------------------------------------------------------ children
def child_ours(spec: dict) -> dict:
    from histosynth.data.patch_dataset import PatchDataset
    from histosynth.evaluate.detectors import build_detector
    from histosynth.evaluate.distribution import fd_between
    from histosynth.evaluate.features import extract, image_set

    det = build_detector(spec["detector"], weights=spec.get("weights"))
    a, b = PatchDataset(spec["a"]), PatchDataset(spec["b"])
    start = time.perf_counter()
    fa = extract(image_set(a), det, None, spec["workers"])
    fb = extract(image_set(b), det, None, spec["workers"])
    t_feat = time.perf_counter() - start
    fd = fd_between(fa, fb)
    seconds = time.perf_counter() - start
    return {"fd": fd, "seconds": seconds, "seconds_features": t_feat, "seconds_fd": seconds - t_feat,
            "route": "statistics" if fa.streamed is not None else "features"}  # fmt: skip


def child_cleanfid(spec: dict) -> dict:
    import numpy as np
    import torch
    from cleanfid import fid
    from cleanfid.resize import make_resizer

    from histosynth.evaluate.detectors import build_detector

    det = build_detector(spec["detector"], weights=spec.get("weights"))

    class Extractor(torch.nn.Module):
        """clean-fid hands float (N, 3, S, S) batches in 0..255; the detector takes (N, S, S, 3)."""

        def forward(self, x):
            return torch.from_numpy(det.features(np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())))

    size = det.input_size
    start = time.perf_counter()
    score = fid.compute_fid(str(Path(spec["a"]) / "images"), str(Path(spec["b"]) / "images"), mode="clean",
                            custom_feat_extractor=Extractor(), custom_fn_resize=make_resizer("PIL", False, "bicubic",
                            (size, size)), num_workers=spec["workers"], batch_size=det.batch_size,
                            device=torch.device("cpu"), verbose=False)  # fmt: skip
    from importlib.metadata import version

    return {"fd": float(score), "seconds": time.perf_counter() - start, "version": version("clean-fid")}


def run_child(python: Path, kind: str, spec: dict) -> dict:
    out = WORK / f"child-{kind}.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "HISTOSYNTH_PROGRESS": "0", "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([str(python), __file__, "--child", kind, json.dumps(spec), str(out)], check=True, env=env)
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------ main
def run_config(name: str, n: int, size: int, workers: int, cf_python: Path) -> dict:
    a, b = make_sets(n, size)
    spec = {"detector": name, "a": str(a), "b": str(b), "workers": workers}
    if name == "inception-v3":
        spec["weights"] = str(inception_weights())
    print(f"== {name}: 2 × {n} images of {size} px", flush=True)
    ours = run_child(Path(sys.executable), "ours", spec)
    print(f"   histosynth FD {ours['fd']:.6g} in {ours['seconds']:.1f} s", flush=True)
    ref = run_child(cf_python, "cleanfid", spec)
    print(f"   clean-fid  FD {ref['fd']:.6g} in {ref['seconds']:.1f} s", flush=True)
    rel = abs(ours["fd"] - ref["fd"]) / max(abs(ref["fd"]), 1e-12)
    return {"detector": name, "images": 2 * n, "images_per_set": n, "image_px": size, "workers": workers,
            "histosynth": ours, "clean_fid": ref, "relative_difference": rel,
            "speedup": ref["seconds"] / ours["seconds"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["random-init-cnn", "inception-v3"])
    p.add_argument("--n", type=int, default=5000, help="images per set for random-init-cnn")
    p.add_argument("--inception-n", type=int, default=2100, help="images per set for inception-v3")
    p.add_argument("--size", type=int, default=64, help="image side in px")
    p.add_argument("--workers", type=int, default=2, help="loader threads (ours) / processes (clean-fid)")
    p.add_argument("--child", nargs=3, metavar=("KIND", "SPEC", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, spec, out = args.child
        res = {"ours": child_ours, "cleanfid": child_cleanfid}[kind](json.loads(spec))
        Path(out).write_text(json.dumps(res))
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    cf_python = cleanfid_python()
    runs = [run_config(c, args.inception_n if c == "inception-v3" else args.n, args.size, args.workers, cf_python)
            for c in args.configs]  # fmt: skip
    import torch

    result = {
        "benchmark": "feature extraction + FD: histosynth vs clean-fid, same encoder and images",
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average_at_end": os.getloadavg()},  # fmt: skip
        "runs": runs,
        "summary": [row for r in runs for row in (
            {"metric": f"FD relative difference vs clean-fid ({r['detector']}, {r['images']} images)",
             "value": f"{r['relative_difference']:.2e}", "goal": "≤ 1e-3", "met": r["relative_difference"] <= 1e-3},
            {"metric": f"time ratio clean-fid / histosynth ({r['detector']}, {r['images']} images)",
             "value": f"{r['speedup']:.2f}", "goal": "≥ 1", "met": r["speedup"] >= 1.0},
        )],
    }  # fmt: skip
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "fd.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
