"""FD benchmark: histosynth's feature extraction + Fréchet distance against clean-fid.

Both tools read the same plain folders of PNG files (``<set>/images``: histosynth through
``histosynth.evaluate.folders``, as ``histosynth evaluate`` and ``compare_folders`` read a
folder), run the *same* encoder (the identical weights, wrapped for
clean-fid as its ``custom_feat_extractor``) and resize with clean-fid's own "clean" resizer
(PIL bicubic per channel in float, which is histosynth's policy too), so their FD values must
agree; the benchmark checks they do within 0.1 % and compares wall and CPU time (medians of
runs in ABBA order, since the machine is shared). Each tool runs in a fresh process; the time
covers feature extraction of both sets and the FD, not model loading.

Configurations (``--configs``):

``random-init-cnn``
    10,000 images (5,000 per set) of 96 px, resized to the 64 px input of the embedding stage's
    seeded random CNN; the network is small, so decoding, resizing, statistics and FD weigh in.
``inception-v3``
    Inception-v3 pool3 (2048-d, 299 px input; random weights with re-estimated BatchNorm
    statistics saved to a safetensors file, since no weights can be downloaded here) on
    ``--inception-n`` images per set, ``--inception-repeats`` runs per tool (default one). At
    2–10 images/s on two shared CPU cores 10,000 Inception images take one to two hours per
    tool, so the default is 2 × 2,100 (more than 2,048 per set, so both covariances have full
    rank and both tools take their statistics route); use ``--inception-n 5000`` on a larger
    machine.

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
import statistics
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
    """Seeded random-init torchvision Inception-v3 weights in safetensors (the FID architecture).

    Random weights with BatchNorm's default running statistics (mean 0, variance 1) blow
    activations up through the 94 layers (FD ~1e21); the running statistics are therefore
    re-estimated on 32 toy patches (cumulative average, train mode, no gradients), which gives
    features of order one, as a trained network has.
    """
    path = WORK / "inception-v3-random-bncal-seed0.safetensors"
    if not path.is_file():
        import numpy as np
        import torch
        from safetensors.torch import save_file
        from torchvision.models import inception_v3

        from histosynth.evaluate.features import clean_resize
        from histosynth.evaluate.toy import toy_patches

        torch.manual_seed(0)
        model = inception_v3(weights=None, aux_logits=True, init_weights=True)
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.reset_running_stats()
                mod.momentum = None  # cumulative average over the calibration batches
        imgs = np.stack([clean_resize(im, 299) for im in toy_patches(32, 64, seed=99)[0]])
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2) / 127.5 - 1.0
        model.train()
        with torch.no_grad():
            for chunk in x.split(16):
                model(chunk)
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
    """histosynth on the plain image folders clean-fid reads: the timed path of ``evaluate``
    (extraction + FD), then the one-call API ``compare_folders`` on the same features."""
    import shutil
    import tempfile

    from histosynth.evaluate.detectors import build_detector
    from histosynth.evaluate.distribution import fd_between
    from histosynth.evaluate.features import FeatureCache, cache_key, extract, image_set
    from histosynth.evaluate.folders import compare_folders, open_images

    det = build_detector(spec["detector"], weights=spec.get("weights"))
    folders = [Path(spec[k]) / "images" for k in ("a", "b")]
    sets = [image_set(open_images(f)) for f in folders]
    cpu = _cpu_seconds()
    start = time.perf_counter()
    fa = extract(sets[0], det, None, spec["workers"])
    fb = extract(sets[1], det, None, spec["workers"])
    t_feat = time.perf_counter() - start
    fd = fd_between(fa, fb)
    seconds = time.perf_counter() - start
    cpu_seconds = _cpu_seconds() - cpu
    # compare_folders then reads these features from a cache filled outside the timed window
    cache_dir = tempfile.mkdtemp(dir=WORK)
    for images, f in zip(sets, (fa, fb), strict=True):
        FeatureCache(cache_dir).put(cache_key(images, det), f.features, f.streamed)
    one_call = compare_folders(*folders, spec["detector"], weights=spec.get("weights"), workers=spec["workers"],
                               cache_dir=cache_dir)  # fmt: skip
    shutil.rmtree(cache_dir)
    return {"fd": fd, "fd_compare_folders": one_call["fd"], "seconds": seconds, "cpu_seconds": cpu_seconds,
            "seconds_features": t_feat, "seconds_fd": seconds - t_feat,
            "route": "statistics" if fa.streamed is not None else "features"}  # fmt: skip


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (clean-fid's loader workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


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
    cpu = _cpu_seconds()
    start = time.perf_counter()
    score = fid.compute_fid(str(Path(spec["a"]) / "images"), str(Path(spec["b"]) / "images"), mode="clean",
                            custom_feat_extractor=Extractor(), custom_fn_resize=make_resizer("PIL", False, "bicubic",
                            (size, size)), num_workers=spec["workers"], batch_size=det.batch_size,
                            device=torch.device("cpu"), verbose=False)  # fmt: skip
    from importlib.metadata import version

    seconds = time.perf_counter() - start
    return {
        "fd": float(score),
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu,
        "version": version("clean-fid"),
    }


def run_child(python: Path, kind: str, spec: dict) -> dict:
    out = WORK / f"child-{kind}.json"
    out.unlink(missing_ok=True)
    # Passive OpenMP waits for both tools: spinning threads would bill contention as work.
    env = {
        **os.environ,
        "HISTOSYNTH_PROGRESS": "0",
        "PYTHONPATH": str(ROOT / "src"),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    subprocess.run([str(python), __file__, "--child", kind, json.dumps(spec), str(out)], check=True, env=env)
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------ main
def run_config(name: str, n: int, size: int, workers: int, cf_python: Path, repeats: int) -> dict:
    a, b = make_sets(n, size)
    spec = {"detector": name, "a": str(a), "b": str(b), "workers": workers}
    if name == "inception-v3":
        spec["weights"] = str(inception_weights())
    print(f"== {name}: 2 × {n} images of {size} px", flush=True)
    runs: dict[str, list[dict]] = {"ours": [], "cleanfid": []}
    # ABBA order: on a shared machine, slow and fast phases fall on both tools alike.
    order = [("ours", "cleanfid") if r % 2 == 0 else ("cleanfid", "ours") for r in range(repeats)]
    for kind in (k for pair in order for k in pair):
        res = run_child(Path(sys.executable) if kind == "ours" else cf_python, kind, spec)
        runs[kind].append(res)
        print(
            f"   {kind:<9} FD {res['fd']:.7g}: {res['seconds']:.1f} s, cpu {res['cpu_seconds']:.1f} s",
            flush=True,
        )
    ours, ref = runs["ours"], runs["cleanfid"]
    rel = abs(ours[0]["fd"] - ref[0]["fd"]) / max(abs(ref[0]["fd"]), 1e-12)
    rel_one_call = abs(ours[0]["fd_compare_folders"] - ref[0]["fd"]) / max(abs(ref[0]["fd"]), 1e-12)
    best = {k: statistics.median(r[k] for r in ours) for k in ("seconds", "cpu_seconds")}
    best_ref = {k: statistics.median(r[k] for r in ref) for k in ("seconds", "cpu_seconds")}
    return {"detector": name, "images": 2 * n, "images_per_set": n, "image_px": size, "workers": workers,
            "repeats": repeats, "histosynth": ours, "clean_fid": ref, "relative_difference": rel,
            "relative_difference_compare_folders": rel_one_call,
            "median_seconds": best, "median_seconds_clean_fid": best_ref,
            "speedup_wall": best_ref["seconds"] / best["seconds"],
            "speedup_cpu": best_ref["cpu_seconds"] / best["cpu_seconds"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["random-init-cnn", "inception-v3"])
    p.add_argument("--n", type=int, default=5000, help="images per set for random-init-cnn")
    p.add_argument("--inception-n", type=int, default=2100, help="images per set for inception-v3")
    p.add_argument("--size", type=int, default=96, help="image side in px (resized to each detector's input)")
    p.add_argument(
        "--repeats", type=int, default=4, help="runs per tool, ABBA order (random-init-cnn); medians compared"
    )
    p.add_argument(
        "--inception-repeats", type=int, default=1, help="runs per tool, ABBA order (inception-v3)"
    )
    p.add_argument("--workers", type=int, default=2, help="loader threads (ours) / processes (clean-fid)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "fd.json", help="JSON to write")
    p.add_argument("--child", nargs=3, metavar=("KIND", "SPEC", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, spec, out = args.child
        res = {"ours": child_ours, "cleanfid": child_cleanfid}[kind](json.loads(spec))
        Path(out).write_text(json.dumps(res))
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    cf_python = cleanfid_python()
    runs = []
    for c in args.configs:
        inc = c == "inception-v3"
        runs.append(run_config(c, args.inception_n if inc else args.n, args.size, args.workers, cf_python,
                               args.inception_repeats if inc else args.repeats))  # fmt: skip
    import torch

    path = args.out
    if path.is_file():  # keep the runs of configurations not measured this time
        done = {r["detector"] for r in runs}
        runs = [r for r in json.loads(path.read_text()).get("runs", []) if r["detector"] not in done] + runs
    result = {
        "benchmark": "feature extraction + FD: histosynth vs clean-fid, same encoder and images",
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average_at_end": os.getloadavg()},  # fmt: skip
        "runs": runs,
        "summary": [row for r in runs for row in (
            {"metric": f"FD relative difference vs clean-fid ({r['detector']}, {r['images']} images)",
             "value": f"{r['relative_difference']:.2e}", "goal": "≤ 1e-3", "met": r["relative_difference"] <= 1e-3},
            *([{"metric": f"FD relative difference vs clean-fid, compare_folders ({r['detector']}, {r['images']} images)",
                "value": f"{r['relative_difference_compare_folders']:.2e}", "goal": "≤ 1e-3",
                "met": r["relative_difference_compare_folders"] <= 1e-3}]
              if "relative_difference_compare_folders" in r else []),
            {"metric": f"wall-time ratio clean-fid / histosynth ({r['detector']}, {r['images']} images)",
             "value": f"{r['speedup_wall']:.2f}", "goal": "≥ 1", "met": r["speedup_wall"] >= 1.0},
            {"metric": f"CPU-time ratio clean-fid / histosynth ({r['detector']}, {r['images']} images)",
             "value": f"{r['speedup_cpu']:.2f}", "goal": "≥ 1", "met": r["speedup_cpu"] >= 1.0},
        )],
    }  # fmt: skip
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
