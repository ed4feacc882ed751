"""Training step time: ``histosynth train`` against a bare diffusers loop, per preset; JSON out.

For each preset, in fresh processes (so each peak RSS is its own):

- ``train``: the real :func:`histosynth.train.train` on a patch dataset (data preparation in
  the training process, ``data.workers=0``: the strict case, and the faster one on a small
  shared CPU), one stats line per step; its peak RSS is the preset's memory figure;
- ``paired``: the same run, with one step of a *bare diffusers loop* after every training
  step (through the training callback, outside the timed step): the same UNet
  (``UNet2DConditionModel``), the same batch and the same conditioning tensors (computed once,
  then fixed), ``DDPMScheduler.add_noise``, L1 loss and AdamW, nothing else.

Overhead = median over steps of (train step / the bare step right after it) − 1. With a KL
codec (``paper``, ``large``) ``train`` encodes each (patch, symmetry) once and reuses its latent
moments (``histosynth.train.latent_cache``): each child first runs the same steps once to fill
the cache, then the timed run shows a long run's steady state; the first run's step time (every
batch encoded, as in a patch's first visits) is recorded beside it. A second
figure compares with a bare loop that also encodes the batch with the codec every step, as
diffusers' own training examples do (it differs only for the KL codecs). Pairing
steps keeps the comparison fair on a CPU shared with other work. The overhead holds all that
``train`` adds: data preparation (crops), codec encoding, the conditioning encoders (map
embedding, crop CNN) forward and backward, dropout draws, gradient clipping, EMA and logging.

GPU figures are estimates on paper, not measurements: training FLOPs per sample counted with
``torch.utils.flop_counter`` on the meta device, divided by an H100/H200 bf16 dense peak
(989 TFLOP/s) at an assumed 30–45 % model-FLOP utilisation; memory as 20 bytes per parameter
(fp32 weights, grads, AdamW moments, EMA) plus the autograd-saved activations counted on the
meta device, halved for bf16 autocast.

Usage: ``python benchmarks/bench_train.py [--data DIR] [--presets cpu-tiny,cpu-small,paper,large]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "bench_train.json"
# Per preset on this CPU: (batch, timed steps, warm-up steps, compare with bare).
CPU_PLAN = {"cpu-tiny": (16, 30, 5, True), "cpu-small": (16, 10, 2, True), "paper": (1, 2, 1, True),
            "large": (1, 2, 1, False)}  # fmt: skip
GPU_PEAK_BF16 = 989e12  # H100/H200 SXM dense bf16 FLOP/s
MFU = (0.30, 0.45)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _config(preset: str, batch: int, steps: int, threads: int, codec_dir: Path):
    from histosynth.config import build_config
    from histosynth.train.config import TrainConfig

    over = [f"optim.batch_size={batch}", f"run.steps={steps}", "run.log_every=1", "run.sample_every=0",
            "run.sample_steps=1", "run.grid_rows=1", f"run.checkpoint_every={10**9}",
            f"run.threads={threads}", "run.mixed_precision=no", "data.workers=0"]  # fmt: skip
    if preset in ("paper", "large"):  # an untrained KL codec of the preset's shape times the same
        over += [f"model.codec={codec_dir}", "model.measure_scale=false"]
    return build_config(TrainConfig, preset=preset, overrides=over)


def _codec_dir(preset: str, root: Path) -> Path:
    from histosynth.diffusion.codec import build_codec

    folder = root / f"codec-{preset}"
    if not (folder / "config.json").is_file():
        build_codec("kl-f8" if preset == "large" else "kl-f4").save_pretrained(folder)
    return folder


def bare_loop(preset: str, data: str, threads: int, work: Path):
    """A step function of the bare diffusers loop (same UNet, batch, conditioning tensors)."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    from histosynth.data.patch_dataset import PatchDataset
    from histosynth.diffusion.codec import load_codec
    from histosynth.diffusion.conditioning import CONDITIONINGS
    from histosynth.diffusion.denoiser import build_denoiser
    from histosynth.train.data import BatchPlan, StepBatches, TrainData
    from histosynth.train.loop import schedule_of

    batch = CPU_PLAN[preset][0]
    cfg = _config(preset, batch, 1, threads, _codec_dir(preset, work))
    torch.set_num_threads(threads)
    place = CONDITIONINGS.get(cfg.model.conditioning).reads_positions
    td = TrainData(PatchDataset(data, split="train"), cfg.data, 0, place=place)
    b = StepBatches(td, BatchPlan(len(td), batch, seed=0))[0]
    codec = load_codec(cfg.model.codec)
    model = build_denoiser(cfg.model.backbone, cfg.model.conditioning, len(td.dataset.classes), cfg.data.image_size,
                           codec.latent_channels, codec.downsample, cfg.data.max_crops)  # fmt: skip
    with torch.no_grad():
        x0 = codec.encode_latents(b.images)
        c = model.conditions(b.maps, b.crops)
    spatial, tokens, mask = c.spatial.detach(), c.tokens.detach(), c.mask
    unet = model.unet.train()
    sched = DDPMScheduler(**schedule_of(cfg).scheduler_config())
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.optim.lr)

    kl = hasattr(codec, "encoder")

    def encode() -> float:  # what a loop that encodes each step (as diffusers' examples do) adds
        t0 = time.perf_counter()
        with torch.no_grad():
            codec.encode_latents(b.images, generator=torch.Generator().manual_seed(0) if kl else None)
        return time.perf_counter() - t0

    def step() -> float:
        t0 = time.perf_counter()
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,))
        noise = torch.randn_like(x0)
        xt = sched.add_noise(x0, noise, t)
        pred = unet(
            torch.cat([xt, spatial], 1), t, encoder_hidden_states=tokens, encoder_attention_mask=mask
        ).sample
        F.l1_loss(pred, noise).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step, encode


def run_train(preset: str, data: str, threads: int, work: Path, paired: bool = False) -> dict:
    """``histosynth train`` for warm-up + timed steps; with ``paired``, one bare step after each."""
    from histosynth.train.loop import run

    batch, n, warm, _ = CPU_PLAN[preset]
    cfg = _config(preset, batch, warm + n, threads, _codec_dir(preset, work))
    bare_times: list[float] = []
    enc_times: list[float] = []
    bare_step, encode = bare_loop(preset, data, threads, work) if paired else (None, None)

    def pair(step: int) -> None:
        bare_times.append(bare_step())
        enc_times.append(encode())

    base = _rss_mb()
    cold = None
    if cfg.model.codec and cfg.data.latent_cache_gb > 0:
        # A KL codec's latents are encoded once per (patch, symmetry) and then reused (see
        # histosynth.train.latent_cache): a first run of the same steps fills the cache, so the
        # timed run shows the steady state of a long run; the first run's steps, each encoding
        # its batch, are the cost of the first visits.
        first = work / f"run-{preset}-{'paired' if paired else 'train'}-cache-fill"
        shutil.rmtree(first, ignore_errors=True)
        run(data, first, cfg, show_progress=False)
        cold = [json.loads(ln)["step_time"] for ln in (first / "stats.jsonl").read_text().splitlines()][warm:]
        shutil.rmtree(first)  # its checkpoint and model take gigabytes
    folder = work / f"run-{preset}-{'paired' if paired else 'train'}"
    shutil.rmtree(folder, ignore_errors=True)  # a fresh run each time
    run(data, folder, cfg, show_progress=False, callback=pair if paired else None)
    rows = [json.loads(ln) for ln in (folder / "stats.jsonl").read_text().splitlines()]
    shutil.rmtree(folder)  # only its stats are needed; a paper-size run folder takes gigabytes
    steps = [r["step_time"] for r in rows[warm:]]
    out = {
        "step_s_median": statistics.median(steps),
        "step_s_all": steps,
        "data_s_median": statistics.median(r["data_time"] for r in rows[warm:]),
        "samples_per_s": batch / statistics.median(steps),
        "peak_rss_mb": rows[-1]["peak_mem_mb"],
        "rss_after_imports_mb": base,
        "loss_last": rows[-1]["loss"],
    }
    if cold is not None:
        out["first_visit_step_s_median"] = statistics.median(cold)
    if paired:
        bare = bare_times[warm:]
        out["bare_step_s_all"] = bare
        out["bare_step_s_median"] = statistics.median(bare)
        out["paired_ratio_median"] = statistics.median(t / b for t, b in zip(steps, bare, strict=True))
        enc = enc_times[warm:]
        out["encode_s_all"] = enc
        out["paired_ratio_vs_encoding_loop"] = statistics.median(
            t / (b + e) for t, b, e in zip(steps, bare, enc, strict=True)
        )
    return out


def gpu_estimate(preset: str) -> dict:
    """Training FLOPs and memory per sample on the meta device (no computation), at the preset's batch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from histosynth.config import build_config
    from histosynth.diffusion.codec import CODEC_PRESETS
    from histosynth.diffusion.denoiser import build_denoiser
    from histosynth.train.config import TrainConfig

    cfg = build_config(TrainConfig, preset=preset)
    codec = CODEC_PRESETS["kl-f8" if preset == "large" else "kl-f4" if preset == "paper" else "identity-p4"]
    f = 2 ** (len(codec["block_out_channels"]) - 1) if "block_out_channels" in codec else codec["patch_size"]
    ch = codec.get("latent_channels", 3 * f * f)
    size, lat = cfg.data.image_size, cfg.data.image_size // f
    with torch.device("meta"):
        model = build_denoiser(
            cfg.model.backbone, cfg.model.conditioning, 10, size, ch, f, cfg.data.max_crops
        )
    unet = model.unet
    n_tokens = 1 + cfg.data.max_crops * model.cond.crop_encoder.tokens_per_crop
    x = torch.randn(1, unet.config.in_channels, lat, lat, device="meta")
    eh = torch.randn(1, n_tokens, unet.config.cross_attention_dim, device="meta")
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with FlopCounterMode(display=False) as fc, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        unet(x, torch.zeros(1, device="meta"), encoder_hidden_states=eh).sample.sum().backward()
    flops = fc.get_total_flops()
    params = sum(p.numel() for p in model.parameters())
    B = cfg.optim.batch_size
    mem = 20 * params + 0.5 * saved[0] * B
    return {
        "batch": B, "image_size": size, "latent": [ch, lat, lat], "params_m": params / 1e6,
        "train_gflop_per_sample": flops / 1e9,
        "h100_step_s_range": [flops * B / (GPU_PEAK_BF16 * m) for m in reversed(MFU)],
        "h100_samples_per_s_range": [GPU_PEAK_BF16 * m / flops for m in MFU],
        "memory_gb_estimate": mem / 1e9,
        "note": "estimate from FLOP count and assumed 30-45% MFU, bf16 autocast; not measured (no GPU here)",
    }  # fmt: skip


def _child(mode: str, preset: str, data: str, threads: int, work: str) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--presets", preset, "--data", data,
           "--threads", str(threads), "--work", work]  # fmt: skip
    env = {**os.environ, "HISTOSYNTH_PROGRESS": "0", "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def summary_rows(report: dict) -> list[dict]:
    """The rows ``benchmarks/run_all.py`` gathers into the summary table."""
    rows = [{"metric": f"`train` overhead vs a bare diffusers loop ({preset})",
             "value": f"{e['overhead_pct']:+.1f} %", "goal": "≤ 10 %", "met": e["overhead_pct"] <= 10}
            for preset, e in report["presets"].items() if "overhead_pct" in e]  # fmt: skip
    rows += [{"metric": f"`train` overhead vs a bare diffusers loop, steps that encode ({preset}: a patch's first visits)",
              "value": f"{e['first_visit_overhead_pct']:+.1f} %", "goal": "measured", "met": True}
             for preset, e in report["presets"].items() if "first_visit_overhead_pct" in e]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="Patch dataset (default: build the CMU one).")
    ap.add_argument("--presets", default="cpu-tiny,cpu-small,paper,large")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded 2-core box)"
    )
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--work", default=None)
    ap.add_argument("--merge", action="store_true", help="Update these presets in an existing --out file.")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_train_"))
    sys.path.insert(0, str(HERE))
    if args.child:
        paired = args.child == "paired"
        print(json.dumps(run_train(args.presets, args.data, args.threads, work, paired=paired)))
        return
    data = args.data
    if data is None:
        from cmu_patches import main as make_cmu

        data = str(work / "cmu64")
        make_cmu([data])
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # machine.py, also when imported
    from machine import machine

    report = {"machine": {**machine(), "threads": args.threads}, "dataset": data, "presets": {}}
    import torch

    report["machine"]["torch"] = torch.__version__
    for preset in args.presets.split(","):
        batch, n, warm, compare = CPU_PLAN[preset]
        entry: dict = {"cpu_batch": batch, "timed_steps": n, "warmup_steps": warm}
        entry["train"] = _child("train", preset, data, args.threads, str(work))
        if compare:
            pair = _child("paired", preset, data, args.threads, str(work))
            entry["paired"] = {k: v for k, v in pair.items() if "step" in k or "ratio" in k or "encode" in k}
            if "first_visit_step_s_median" in pair:  # steps that still encode (a patch's first visits)
                entry["first_visit_overhead_pct"] = 100 * (
                    pair["first_visit_step_s_median"] / pair["bare_step_s_median"] - 1
                )
            entry["overhead_pct"] = 100 * (pair["paired_ratio_median"] - 1)
            entry["overhead_vs_encoding_loop_pct"] = 100 * (pair["paired_ratio_vs_encoding_loop"] - 1)
            entry["data_share_pct"] = 100 * pair["data_s_median"] / pair["step_s_median"]
        if preset in ("paper", "large"):  # the CPU presets are launch-bound on a GPU: no FLOP model
            entry["gpu_estimate"] = gpu_estimate(preset)
        report["presets"][preset] = entry
        print(preset, json.dumps({k: v for k, v in entry.items() if k in ("overhead_pct", "data_share_pct")}),
              f"train {entry['train']['step_s_median']:.3f} s/step", flush=True)  # fmt: skip
    report["machine"]["load_avg_end"] = os.getloadavg()
    if args.merge and Path(args.out).is_file():
        old = json.loads(Path(args.out).read_text())
        old["presets"].update(report["presets"])
        old.setdefault("reruns", []).append({"presets": args.presets, "machine": report["machine"]})
        report = old
    report["summary"] = summary_rows(report)
    from histosynth.artifacts import atomic_write_text  # readers never see half a file

    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
