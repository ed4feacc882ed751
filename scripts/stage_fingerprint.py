"""Run every stage on the bundled slide with tiny settings and hash what each one wrote.

A refactor that should not change any output proves it with two runs, one before and one after::

    python scripts/stage_fingerprint.py --json before.json                    # on the old commit
    python scripts/stage_fingerprint.py --json after.json --compare before.json

Both runs write into the same folder (default ``runs/fingerprint``, emptied first) from the same
checkout: the tables record the slides' absolute paths.

The stages run through the command line (``tile``, ``dataset`` with stain-derived maps and with
pseudo-maps, ``embed``, ``cluster``, ``train-codec``, ``train`` for each conditioning variant with
the ``test`` backbone, ``sample`` of patches and of one large image, ``evaluate``, ``report``),
then the demo (``histosynth demo``'s :func:`~histosynth.demo.run_demo`) with a fixed number of
training steps. Each file's SHA-256 is taken over its bytes, except that text files (JSON,
JSON lines, HTML) have the output folder's path replaced by ``$OUT`` and the values that say
when, how fast or with which package versions a run went (``created``, ``versions``,
``seconds``, ``timing``, ..., the report's timing and versions lines) removed first. The stages run in one thread so the floating-point
sums do not depend on the machine's core count. ``--compare`` prints the files that differ and
exits 1 when any does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

# Keys whose values say when, how fast, or with which versions a run went: not what it made.
VOLATILE = frozenset({
    "created", "versions", "seconds", "timing", "elapsed", "step_time", "data_time", "samples_per_s",
    "peak_mem_mb",
})  # fmt: skip
TEXT_SUFFIXES = (".json", ".jsonl", ".html", ".geojson", ".csv", ".txt", ".md")


def _drop_volatile(obj):
    if isinstance(obj, dict):
        return {k: _drop_volatile(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_drop_volatile(v) for v in obj]
    return obj


def _canonical_text(path: Path, text: str) -> str:
    if path.suffix == ".json":
        return json.dumps(_drop_volatile(json.loads(text)), sort_keys=True)
    if path.suffix == ".jsonl":
        return "\n".join(
            json.dumps(_drop_volatile(json.loads(line)), sort_keys=True) for line in text.splitlines() if line
        )
    if path.suffix == ".html":  # the report's footer lines of timing and package versions
        return re.sub(r"(Timing|Versions): [^<]*", r"\1: -", text)
    return text


def fingerprint(out: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file under ``out`` (text files normalised, see above)."""
    out = out.resolve()
    hashes = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix in TEXT_SUFFIXES:
            text = data.decode("utf-8").replace(str(out), "$OUT")
            data = _canonical_text(path, text).encode("utf-8")
        hashes[path.relative_to(out).as_posix()] = hashlib.sha256(data).hexdigest()
    return hashes


def _cli(*argv: str) -> None:
    from histosynth.cli.main import main

    print("$ histosynth " + " ".join(argv), flush=True)
    try:
        main(list(argv))
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"histosynth {' '.join(argv)} exited with {exc.code}") from None


def run_stages(out: Path) -> None:
    """Every stage command on the bundled slide, small enough for a minute on one core.

    ``out`` is relative to the working directory, so the tables, which hold slide paths, do not
    depend on where the fingerprint is taken.
    """
    from histosynth.samples import cmu_small_region

    slides = out / "slides"
    slides.mkdir(parents=True, exist_ok=True)
    shutil.copy(cmu_small_region(verify=True), slides / "cmu.svs")
    o = str
    tiling = ["--patch-mpp", "1", "--size", "64", "--min-tissue", "0.3", "--seed", "0"]
    _cli("tile", o(slides), "-o", o(out / "tiles"), *tiling, "--overlap", "32",
         "--set", "split.by=region", "--set", "split.region_um=250")  # fmt: skip
    _cli("dataset", o(out / "tiles"), "-o", o(out / "dataset"), "--derived", "stain", "--max-per-slide", "0",
         "--homogeneous-share", "0.25", "--seed", "0")  # fmt: skip
    _cli("tile", o(slides), "-o", o(out / "tiles-embed"), *tiling)
    _cli("embed", o(out / "tiles-embed"), "-o", o(out / "embeddings"), "--encoder", "handcrafted",
         "--subtile", "16", "--stride", "16", "--workers", "0")  # fmt: skip
    _cli("cluster", o(out / "embeddings"), "-o", o(out / "clusters"), "--k", "4", "--per-slide", "20000",
         "--seed", "0", "--set", "report.stability_seeds=1")  # fmt: skip
    _cli("dataset", o(out / "tiles-embed"), "-o", o(out / "dataset-pseudo"), "--pseudo-maps", o(out / "clusters"),
         "--max-per-slide", "0", "--seed", "0")  # fmt: skip
    _cli("train-codec", o(out / "dataset"), o(out / "codec"), "--steps", "2", "--batch-size", "4",
         "--set", "run.log_every=1")  # fmt: skip
    variants = {"map": "map", "spatial": "map+crops-spatial", "tokens": "map+crops-tokens"}
    for name, conditioning in variants.items():
        _cli("train", o(out / "dataset"), o(out / "train" / name), "--preset", "cpu-tiny", "--backbone", "test",
             "--conditioning", conditioning, "--steps", "3", "--batch-size", "4", "--seed", "0",
             "--set", "run.log_every=1", "--set", "run.sample_steps=2", "--set", "run.grid_rows=2")  # fmt: skip
        _cli("sample", o(out / "train" / name), o(out / "synthetic" / name), "--crop-bank", o(out / "crop-bank"),
             "--bank-from", o(out / "dataset"), "--maps-from", o(out / "dataset"), "-n", "6", "--steps", "2",
             "--guidance-map", "1.5", "--guidance-crops", "2", "--seed", "0", "--batch-size", "4")  # fmt: skip
    _cli("sample", o(out / "train" / "tokens"), o(out / "large"), "--crop-bank", o(out / "crop-bank"),
         "--procedural", "noise", "--size", "128x96", "--steps", "2", "--seed", "0")  # fmt: skip
    evaluate = ["evaluate", "--real", o(out / "dataset"), "--out", o(out / "evaluation"), "--preset", "cpu",
                "--detector", "handcrafted", "--detector", "random-init-cnn", "--set", "tstr.seeds=1",
                "--set", "tstr.mixes=[1.0]",
                "--set", "tstr.segmenter.steps=2", "--set", "tstr.segmenter.crop=64",
                "--set", "tstr.segmenter.decoder_channels=16"]  # fmt: skip
    for name in variants:
        evaluate += ["--synthetic", f"{name}={out / 'synthetic' / name}"]
    _cli(*evaluate)
    _cli("report", o(out / "evaluation"), "--out", o(out / "report.html"))


def run_demo_tiny(out: Path) -> None:
    """The demo with a step budget instead of a time budget, so its outputs are reproducible."""
    from histosynth.config import build_config
    from histosynth.demo import DemoPlan, run_demo

    plan = build_config(DemoPlan, values={
        "overlap": 32, "n_samples": 4, "sample_steps": 2, "clusters": 4,
        "segmenter_steps": 2, "train_steps": 2, "variants": ("map", "tokens"),
    })  # fmt: skip
    run_demo(out, plan, echo=lambda line: print(line, flush=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, nargs="?", default=Path("runs/fingerprint"),
                    help="The folder for the stage outputs, emptied first [runs/fingerprint].")  # fmt: skip
    ap.add_argument("--json", type=Path, help="Write the fingerprint here (default OUT.json).")
    ap.add_argument("--compare", type=Path, help="A fingerprint to compare with; exit 1 on a difference.")
    ap.add_argument("--only", choices=("stages", "demo"), help="Run one part only.")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HISTOSYNTH_PROGRESS", "0")
    import torch

    torch.set_num_threads(1)
    target = (args.json or args.out.with_suffix(".json")).resolve()
    compare = args.compare.resolve() if args.compare else None
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    os.chdir(args.out)
    start = time.monotonic()
    if args.only in (None, "stages"):
        run_stages(Path("stages"))
    if args.only in (None, "demo"):
        run_demo_tiny(Path("demo"))
    hashes = fingerprint(Path.cwd())
    target.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(hashes)} files hashed in {time.monotonic() - start:.0f} s: {target}")
    if compare is None:
        return 0
    other = json.loads(compare.read_text(encoding="utf-8"))
    differ = sorted(k for k in hashes.keys() & other.keys() if hashes[k] != other[k])
    only_here, only_there = sorted(hashes.keys() - other.keys()), sorted(other.keys() - hashes.keys())
    for label, names in (("differs", differ), ("only here", only_here), ("only there", only_there)):
        for name in names:
            print(f"{label}: {name}")
    same = not (differ or only_here or only_there)
    print("byte-identical" if same else f"{len(differ) + len(only_here) + len(only_there)} files differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
