"""Crops carry the lab: the paper's claim on simulated labs, crop adherence and transfer to a new lab.

One command, every step a resumable stage folder under ``--work``:

1. the demo's data: the bundled slide tiled at 1 µm/px into 64 px patches, stain-derived maps,
   splits by region (``tile`` → ``dataset``);
2. ``histosynth domains``: K simulated labs of those patches (the same tissue in every lab).
   ``lab-B`` is the new lab: the generator never sees it; the other K−1 are the training labs;
3. crop banks: the training labs' training split; lab B's, cut to 8 crops per class;
4. per seed, the three conditioning variants trained on the training labs for equal steps;
5. per seed and variant, synthetic sets: every held-out map rendered once with the crops of
   each training lab (``crop_domain=each``; the map-only model with ``reference_crops``, its
   control), the held-out maps with lab B's crops, and (crop variants) lab A's training maps
   with lab B's crops: the synthetic lab B of the transfer;
6. per seed, ``evaluate`` against the K-lab real data: per-domain FD with bootstrap intervals and
   crop adherence under the offline detectors; seed 0 also at the other crop guidances of
   ``--guidance-sweep`` (how following the crop trades against realism);
7. once, the transfer (:mod:`histosynth.domains.transfer`): DeepLabv3+ trained on lab A
   (plain, HED-jitter, B stain-normalised at test time, + synthetic lab B of each model and
   seed, and lab B itself as the ceiling), tested on lab B's held-out patches;
8. the JSON (``--out``) that ``scripts/write_domains.py`` turns into ``docs/domains.md``, and a
   picture of one map rendered with crops of each lab.

Usage: ``python benchmarks/bench_domains.py [--quick] [--out FILE] [--work DIR] [--seeds N] [--steps N]
[--strength mild|strong] [--crop-stats on|off] [--guidance-crops W] [--guidance-sweep W ...]``
(``make results-domains`` runs the full size and writes the page; ``--quick`` checks every step
at a tiny size in minutes: its numbers are not the measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = ("map", "spatial", "tokens")
DUAL = ("spatial", "tokens")
DETECTORS = ("handcrafted", "random-init-cnn")
NEW = ".new-lab"  # suffix of the sets made with the new lab's crops


@dataclass(frozen=True)
class Plan:
    """Sizes of the run (the defaults are the full run; :data:`QUICK` the check)."""

    labs: int = 5
    lab_seed: int = 0
    strength: str = "strong"  # histosynth.domains.labs.LAB_STRENGTHS: labs that differ more than patches do
    source: str = "lab-A"
    new_lab: str = "lab-B"
    seeds: int = 3
    steps: int = 3000
    sampler: str = "dpm++-karras"  # histosynth.sample.DEFAULT_SAMPLER
    sample_steps: int = 20
    guidance_crops: float = 1.5
    guidance_sweep: tuple[float, ...] = (3.0,)  # seed 0 also sampled and evaluated at these (no transfer)
    few_crops: int = 8
    held_maps: int = 0  # maps per lab in the per-domain sets; 0: every held-out map
    transfer_images: int = 0  # synthetic lab-B images per model; 0: one per lab-A training map
    segmenter_steps: int = 300
    segmenter_seeds: int = 3
    bootstrap: int = 50
    crop_stats: bool | None = None  # model.crop_stats; None: the train preset's choice

    @property
    def ranges(self):
        """The :class:`~histosynth.domains.labs.LabRanges` of ``strength``."""
        from histosynth.domains.labs import LAB_STRENGTHS

        return LAB_STRENGTHS[self.strength]

    @property
    def tag(self) -> str:
        """Suffix of the run's model and transfer folders when crop_stats is forced."""
        return "" if self.crop_stats is None else f"-crop-stats-{'on' if self.crop_stats else 'off'}"

    @property
    def sample_tag(self) -> str:
        """Suffix of the synthetic, evaluation and transfer folders when the crops' guidance is not the default."""
        return "" if self.guidance_crops == Plan.guidance_crops else f"-g{self.guidance_crops:g}"

    def synthetic_dir(self, work: Path, seed: int) -> Path:
        """Where a seed's synthetic sets are (models in ``seed<N><tag>/train``, shared by every guidance)."""
        return work / f"seed{seed}{self.tag}" / f"synthetic{self.sample_tag}"


QUICK = Plan(seeds=2, steps=30, sample_steps=6, held_maps=8, transfer_images=16, segmenter_steps=6,
             segmenter_seeds=2, bootstrap=10)  # fmt: skip


def train_config(plan: Plan, variant: str, seed: int):
    """The ``cpu-tiny`` training config of one variant (``crop_stats`` left to the preset unless forced)."""
    from histosynth.config import build_config
    from histosynth.diffusion.conditioning import SHORT_NAMES
    from histosynth.train.config import TrainConfig

    model: dict[str, Any] = {"conditioning": SHORT_NAMES[variant]}
    if plan.crop_stats is not None:  # a None value would override the preset's choice with "off"
        model["crop_stats"] = plan.crop_stats
    return build_config(TrainConfig, preset="cpu-tiny",
                        values={"model": model, "run": {"steps": plan.steps, "seed": seed}})  # fmt: skip


def _stage(name: str, *args: Any, **kwargs: Any):
    from histosynth.stages import STAGES

    t0 = time.monotonic()
    result = STAGES.get(name)(*args, **kwargs)
    if not result.ok:
        raise SystemExit(f"bench_domains: {name} failed: {result.summary.describe()}")
    print(f"   {name}: {result.folder} ({time.monotonic() - t0:.0f} s)", flush=True)
    return result


def prepare(work: Path, plan: Plan) -> dict[str, Path]:
    """The real patches, their labs, and the two crop banks."""
    from histosynth.config import build_config
    from histosynth.data.build import DatasetConfig
    from histosynth.data.derived_labels import stain_labels
    from histosynth.demo import DemoPlan
    from histosynth.domains.stage import DomainsConfig
    from histosynth.sample.crop_bank import CropBankConfig
    from histosynth.samples import cmu_small_region
    from histosynth.wsi.tiling import TileConfig

    d = DemoPlan()  # the demo's data, so the numbers sit beside docs/results.md
    tiling = {"mpp": d.patch_mpp, "size": d.size, "min_tissue": 0.3, "seed": 0, "overlap": d.overlap,
              "split": {"by": "region", "region_um": d.region_um}}  # fmt: skip
    _stage("tile", [cmu_small_region(verify=True)], work / "tiles", build_config(TileConfig, values=tiling))
    sampling = {"sampling": {"max_per_slide": 0, "homogeneous_share": 0.25}, "seed": 0}
    _stage("dataset", work / "tiles", work / "dataset", build_config(DatasetConfig, values=sampling),
           labels=stain_labels(work / "tiles"))  # fmt: skip
    labs = DomainsConfig(labs=plan.labs, seed=plan.lab_seed, ranges=plan.ranges)
    names = [lab.name for lab in labs.draw()]
    _stage("domains", work / "dataset", work / "labs", labs)
    train_labs = tuple(n for n in names if n != plan.new_lab)
    _stage("domains", work / "dataset", work / "labs-train", replace(labs, only=train_labs))
    _stage("crop-bank", work / "labs-train", work / "bank-train", CropBankConfig())
    _stage("crop-bank", work / "labs", work / "bank-new",
           CropBankConfig(domain=plan.new_lab, max_per_class=plan.few_crops))  # fmt: skip
    return {"real": work / "dataset", "labs": work / "labs", "labs_train": work / "labs-train",
            "bank_train": work / "bank-train", "bank_new": work / "bank-new"}  # fmt: skip


def _counts(real: Path) -> dict[str, int]:
    from histosynth.data.patch_dataset import PatchDataset

    split = PatchDataset(real).index["split"].value_counts()
    return {"train": int(split.get("train", 0)), "test": int(split.get("test", 0))}


def run_seed(
    work: Path, paths: dict[str, Path], plan: Plan, seed: int, train_labs: list[str], lab_b: bool = True
) -> dict[str, Any]:
    """Train the variants, sample their sets, evaluate; returns the seed's metrics.

    ``lab_b``: also sample the synthetic lab B of the transfer (off for the guidance sweep).
    """
    from histosynth.config import build_config
    from histosynth.evaluate.config import EvaluateConfig
    from histosynth.evaluate.suite import read_metrics
    from histosynth.sample.stage import SampleConfig

    root, counts = work / f"seed{seed}{plan.tag}", _counts(paths["real"])
    made_root = plan.synthetic_dir(work, seed)
    held = plan.held_maps or counts["test"]
    base = SampleConfig(maps="dataset", maps_dir=str(paths["real"]), split="test", sampler=plan.sampler,
                        steps=plan.sample_steps, guidance_crops=plan.guidance_crops, seed=seed, batch_size=16)  # fmt: skip
    synthetic, transfer = {}, {}
    for v in VARIANTS:
        model = root / "train" / v
        cfg = train_config(plan, v, seed)
        print(f"== seed {seed}: train {v}, {plan.steps} steps", flush=True)
        _stage("train", paths["labs_train"], model, cfg)
        ref = v == "map"  # the map-only model records the crops it would have been given
        each = replace(base, n=held * len(train_labs), crop_domain="each", reference_crops=ref)
        synthetic[v] = _stage("sample", model, made_root / v, each, crop_bank=paths["bank_train"]).folder
        new = replace(base, n=held, crop_domain=plan.new_lab, reference_crops=ref)
        synthetic[v + NEW] = _stage(
            "sample", model, made_root / (v + NEW), new, crop_bank=paths["bank_new"]
        ).folder
        if v in DUAL and lab_b:
            made = replace(
                base, n=plan.transfer_images or counts["train"], split="train", crop_domain=plan.new_lab
            )
            transfer[f"{v}.seed{seed}"] = _stage("sample", model, made_root / f"{v}.transfer", made,
                                                 crop_bank=paths["bank_new"]).folder  # fmt: skip
    ev = build_config(EvaluateConfig, preset="cpu", values={
        "detectors": list(DETECTORS), "bootstrap": plan.bootstrap, "seed": seed, "tstr": {"enabled": False},
        "mask_fidelity": False, "c2st": False, "per_class": False, "hallucination": {"enabled": False}})  # fmt: skip
    print(f"== seed {seed}: evaluate", flush=True)
    folder = _stage(
        "evaluate", synthetic, root / f"evaluation{plan.sample_tag}", ev, real=paths["labs"]
    ).folder
    m = read_metrics(folder)
    steps = {v: _train_facts(root / "train" / v) for v in VARIANTS}
    return {"seed": seed, "metrics": m["metrics"], "domains": m.get("domains", []), "counts": m["counts"],
            "train": steps, "transfer_sets": {k: str(p) for k, p in transfer.items()}, "evaluation": str(folder)}  # fmt: skip


def guidance_sweep(
    work: Path, paths: dict[str, Path], plan: Plan, train_labs: list[str]
) -> list[dict[str, Any]]:
    """Seed 0 sampled and evaluated at each of ``plan.guidance_sweep`` (the models are seed 0's)."""
    out = []
    for w in plan.guidance_sweep:
        if w == plan.guidance_crops:
            continue
        print(f"== guidance on the crops {w:g} (seed 0)", flush=True)
        r = run_seed(work, paths, replace(plan, guidance_crops=w), 0, train_labs, lab_b=False)
        out.append({"guidance_crops": w, "metrics": {v: r["metrics"][v] for v in VARIANTS}})
    return out


def _train_facts(run: Path) -> dict[str, Any]:
    rows = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if "loss" in r]
    times = [r["step_time"] for r in rows if "step_time" in r]
    return {
        "steps": int(rows[-1]["step"]) if rows else 0,
        "s_per_step": statistics.median(times) if times else None,
    }


def transfer(work: Path, paths: dict[str, Path], plan: Plan, sets: dict[str, str]) -> dict[str, Any]:
    from histosynth.domains.transfer import TransferConfig, run_transfer
    from histosynth.evaluate.config import SegmenterConfig

    seg = SegmenterConfig(steps=plan.segmenter_steps, crop=64, decoder_channels=32)
    # A fair baseline: HED jitter as wide as the labs' own concentration ranges, so it could
    # produce lab B's intensities (it has no turned vectors, blur or JPEG, as published).
    ranges = plan.ranges
    cfg = TransferConfig(source=plan.source, target=plan.new_lab, seeds=plan.segmenter_seeds, segmenter=seg,
                         jitter_scale=round(ranges.scale[1] - 1.0, 6), jitter_bias=ranges.bias[1])  # fmt: skip
    print("== transfer: DeepLabv3+ trained in lab A, tested in lab B", flush=True)
    return {
        **run_transfer(paths["labs"], sets, work / f"transfer{plan.tag}{plan.sample_tag}", cfg),
        "config": asdict(cfg),
    }


def picture(work: Path, paths: dict[str, Path], train_labs: list[str], out: Path, plan: Plan) -> str:
    """One held-out map: the real patch in each lab, then each model's image with each lab's crops."""
    import numpy as np

    from histosynth.data.patch_dataset import PatchDataset, encode_png
    from histosynth.evaluate.crops import parse_crop_sources
    from histosynth.report.images import mosaic, thumbnail
    from histosynth.train.grid import grid_image

    side, k = 128, len(train_labs)
    syn = {v: PatchDataset(plan.synthetic_dir(work, 0) / v) for v in VARIANTS}
    labs = PatchDataset(paths["labs"])
    by_id = {str(p): i for i, p in enumerate(labs.index["id"])}
    first = next(j for j in range(len(syn["tokens"]) // k)
                 if len(set(np.unique(syn["tokens"].label(j * k))) - {0}) >= 2)  # fmt: skip
    rows = syn["tokens"].index
    patch = str(rows.at[first * k, "map_source"]).rsplit(":", 1)[-1]

    def cell(image, nearest=False):
        return thumbnail(image, side, nearest)[..., :3]

    def crops(r):
        found = [(c, by_id.get(c["patch"])) for c in parse_crop_sources(rows.at[r, "crop_sources"])]
        pics = [labs.image(j)[c["box"][1] : c["box"][1] + c["box"][3], c["box"][0] : c["box"][0] + c["box"][2]]
                for c, j in found if j is not None]  # fmt: skip
        return mosaic(pics, side)

    grid = [[cell(labs.classes.colorize(syn["tokens"].label(first * k)), True),
             *(cell(labs.image(by_id[f"{patch}_{lab}"])) for lab in train_labs)],
            [np.full((side, side, 3), 255, np.uint8), *(crops(first * k + i) for i in range(k))]]  # fmt: skip
    grid += [[np.full((side, side, 3), 255, np.uint8), *(cell(syn[v].image(first * k + i)) for i in range(k))]
             for v in VARIANTS]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(encode_png(grid_image(grid)))
    return str(out)


def command_line(args: argparse.Namespace) -> str:
    """The command that made the result, with the options that change its sizes."""
    opts = [
        " --quick" if args.quick else "",
        *(
            f" --{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}".rstrip()
            for k in ("seeds", "steps", "strength", "crop_stats", "guidance_crops", "guidance_sweep")
            if (v := getattr(args, k)) is not None
        ),
    ]
    return "python benchmarks/bench_domains.py" + "".join(opts)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks every step, measures nothing")
    ap.add_argument("--out", type=Path, default=None, help="the JSON to write")
    ap.add_argument("--work", type=Path, default=None, help="the run's folders (resumed when present)")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    from histosynth.domains.labs import LAB_STRENGTHS

    ap.add_argument("--strength", choices=list(LAB_STRENGTHS), default=None,
                    help="how different the simulated labs are (histosynth.domains.labs.LAB_STRENGTHS) [strong]")  # fmt: skip
    ap.add_argument("--guidance-crops", type=float, default=None,
                    help=f"classifier-free guidance on the crops when sampling [{Plan.guidance_crops}]; "
                    "other values sample and evaluate in their own folders")  # fmt: skip
    ap.add_argument("--guidance-sweep", type=float, nargs="*", default=None, metavar="W",
                    help=f"seed 0 also at these crop guidances, no transfer [{' '.join(map(str, Plan.guidance_sweep))}]")  # fmt: skip
    ap.add_argument("--crop-stats", choices=("on", "off"), default=None,
                    help="force model.crop_stats (default: the preset's); runs in its own folders")  # fmt: skip
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    given = (("seeds", args.seeds), ("steps", args.steps), ("strength", args.strength),
             ("guidance_crops", args.guidance_crops))  # fmt: skip
    plan = replace(plan, **{k: v for k, v in given if v is not None})
    if args.crop_stats is not None:
        plan = replace(plan, crop_stats=args.crop_stats == "on")
    if args.guidance_sweep is not None:
        plan = replace(plan, guidance_sweep=tuple(args.guidance_sweep))
    sub = "quick" if args.quick else ""
    out = args.out or HERE / "results" / sub / "bench_domains.json"
    work = args.work or HERE.parent / "runs" / ("domains-quick" if args.quick else f"domains-{plan.strength}")
    work.mkdir(parents=True, exist_ok=True)
    t0, load0 = time.monotonic(), os.getloadavg()[0]
    from histosynth.domains.stage import read_labs

    paths = prepare(work, plan)
    labs = read_labs(paths["labs"])
    train_labs = [lab.name for lab in labs if lab.name != plan.new_lab]
    seeds = [run_seed(work, paths, plan, s, train_labs) for s in range(plan.seeds)]
    sets = {k: p for s in seeds for k, p in s["transfer_sets"].items()}
    sweep = guidance_sweep(work, paths, plan, train_labs)
    result = {
        "plan": asdict(plan), "ranges": asdict(plan.ranges), "quick": args.quick, "machine": machine(), "labs": [lab.to_json() for lab in labs],
        "train_labs": train_labs, "counts": _counts(paths["real"]), "seeds": seeds, "guidance_sweep": sweep,
        "transfer": transfer(work, paths, plan, sets),
        "picture": picture(work, paths, train_labs, out.parent / "bench_domains_labs.png", plan),
        "minutes": (time.monotonic() - t0) / 60, "load": [load0, os.getloadavg()[0]],
        "command": command_line(args), "work": str(work),
    }  # fmt: skip
    from domain_goals import goals  # beside this script: the rows of the "Done when"

    result["summary"] = goals(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out} ({result['minutes']:.1f} min)")
    for row in result["summary"]:
        print(f"  {row['metric']}: {row['value']} (goal {row['goal']}): {'met' if row['met'] else 'not met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
