"""UNet against DiT: training step time, parameters and FLOPs of paired backbone presets; JSON out.

For each pair (a UNet preset and the DiT preset meant for the same machine), at the shapes of
its training preset (image size, ``identity-p2`` latents, batch 16, ``map+crops-tokens`` with
6 crops), both denoisers run a full training step (forward, L1 loss, backward, AdamW) on the
same batch under the autocast training uses here (``mixed_precision=auto``: bf16 on a CPU with
native bf16), alternating step by step in one process, one torch thread. Alternating keeps the
ratio fair on a CPU shared with other work; the ratio reported is the median over rounds of
(DiT step / the UNet step of the same round).

Parameters (conditioning included) and the backbone's training GFLOP per sample (forward +
backward, ``torch.utils.flop_counter`` on the meta device) are counted for every preset at its
training shapes, the paper-scale ones on KL-f4 latents (3×64×64 at 256 px). Data preparation, EMA and logging are left out: they are
the same for both families (``benchmarks/bench_train.py`` measures them).

``--blocks SYN ...`` prints instead the block ratio of patch datasets (:func:`block_ratio`),
the measure of a DiT's patch grid that ``docs/model.md`` quotes.

Usage: ``python benchmarks/bench_backbones.py [--rounds N] [--quick] [--out FILE] [--blocks SYN ...]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "bench_backbones.json"
# (UNet preset, DiT preset, image size, latent channels, codec factor, rounds timed on this CPU)
PAIRS = [("cpu-tiny", "dit-tiny", 64, 12, 2, 12), ("cpu-small", "dit-small", 128, 12, 2, 4)]
PAPER = ("paper", "dit-paper", 256, 3, 4)  # counted only: a CPU step takes minutes at batch 16
BATCH, CROPS = 16, 6


def _inputs(size: int, seed: int = 0):
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    maps = torch.zeros(BATCH, size, size, dtype=torch.long)
    maps[:, :, size // 2 :] = 2
    maps[:, size // 8 : size // 3, size // 8 : size // 3] = 1
    side = size // 3
    crops = [[(k % 3, rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for k in range(CROPS)]
             for _ in range(BATCH)]  # fmt: skip
    return maps, crops


def _build(preset: str, size: int, channels: int, f: int):
    import torch

    from histosynth.diffusion.denoiser import build_denoiser

    torch.manual_seed(0)
    return build_denoiser(preset, "map+crops-tokens", 3, size, channels, f, CROPS).train()


def paired_steps(unet: str, dit: str, size: int, channels: int, f: int, rounds: int, bf16: bool) -> dict:
    """Alternate training steps (and a float32 evaluation, as sampling runs) of the two presets;
    median s/step each and of their ratio."""
    import torch

    from histosynth.diffusion.inputs import make_crop_batch

    maps, crops = _inputs(size)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, channels, size // f, size // f, generator=g)
    target = torch.randn(x.shape, generator=g)
    t = torch.randint(0, 1000, (BATCH,), generator=g)
    runs = {}
    for name in (unet, dit):
        model = _build(name, size, channels, f)
        batch = make_crop_batch(crops, maps, model.canvas, CROPS)
        runs[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4), batch, [], [])
    for r in range(rounds + 1):  # round 0 warms up
        for model, opt, batch, times, evals in runs.values():
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x, t, maps, batch)
            loss = (out.float() - target).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t1 = time.perf_counter()
            with torch.no_grad():  # one sampler evaluation: float32, as `histosynth sample` runs
                model(x, t, maps, batch)
            if r:
                times.append(t1 - t0)
                evals.append(time.perf_counter() - t1)
    (tu, eu), (td, ed) = runs[unet][3:], runs[dit][3:]
    ratio = lambda a, b: statistics.median(y / x for x, y in zip(a, b, strict=True))  # noqa: E731
    return {
        "unet": unet, "dit": dit, "image": size, "latent": [channels, size // f, size // f], "batch": BATCH,
        "rounds": rounds,
        "s_per_step": {unet: statistics.median(tu), dit: statistics.median(td)},
        "dit_over_unet": ratio(tu, td),
        "s_per_eval": {unet: statistics.median(eu), dit: statistics.median(ed)},
        "eval_dit_over_unet": ratio(eu, ed),
        "steps": {unet: tu, dit: td},
    }  # fmt: skip


def counts(preset: str, size: int, channels: int, f: int) -> dict:
    """Parameters, and training GFLOP per sample of the backbone alone (forward + backward), on
    the meta device: the call of the seam, ``backbone(x, t, tokens, mask)``; the conditioning
    encoders are the same for both families and left out."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = _build(preset, size, channels, f)
    params = sum(p.numel() for p in model.parameters())
    n_tokens = 1 + CROPS * model.cond.crop_encoder.tokens_per_crop
    width = model.cond.null_token.shape[-1]
    x = torch.zeros(1, channels + model.cond.spatial_channels, size // f, size // f, device="meta")
    tokens = torch.zeros(1, n_tokens, width, device="meta")
    mask = torch.ones(1, n_tokens, dtype=torch.bool, device="meta")
    with FlopCounterMode(display=False) as fc:
        model.backbone(x, torch.zeros(1, dtype=torch.long, device="meta"), tokens, mask).sum().backward()
    return {"params_m": params / 1e6, "backbone_train_gflop_per_sample": fc.get_total_flops() / 1e9}


def block_ratio(folder: Path, period: int = 4) -> float:
    """Mean |grey-level step| across the boundaries of ``period``-pixel blocks over that inside
    them, averaged over a patch dataset's images: 1 for images without a block grid (the real
    patches: 1.01); a DiT's 2×2 patches of 2×2 space-to-depth latents draw 4-pixel blocks."""
    import numpy as np
    from PIL import Image

    ratios = []
    for path in sorted((Path(folder) / "images").glob("*.png")):
        a = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        dx, dy = np.abs(np.diff(a, axis=1)), np.abs(np.diff(a, axis=0))  # step j: pixels j and j + 1
        on_x, on_y = (np.arange(dx.shape[1]) + 1) % period == 0, (np.arange(dy.shape[0]) + 1) % period == 0
        across = np.concatenate([dx[:, on_x].ravel(), dy[on_y].ravel()]).mean()
        inside = np.concatenate([dx[:, ~on_x].ravel(), dy[~on_y].ravel()]).mean()
        ratios.append(across / inside)
    return float(np.mean(ratios))


def machine() -> dict:
    import torch

    from histosynth.train.loop import cpu_has_native_bf16

    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
    except OSError:
        names = []
    return {"cpu": names[0] if names else platform.processor(), "cores": len(names) or None,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "bf16": cpu_has_native_bf16()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=None, help="Timed rounds per pair (default: per pair).")
    ap.add_argument("--quick", action="store_true", help="2 rounds of the tiny pair only; no paper counts.")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--blocks", type=Path, nargs="+", help="Only print the block ratio of these patch datasets."
    )
    args = ap.parse_args(argv)
    if args.blocks:
        for folder in args.blocks:
            print(f"{folder}: block ratio {block_ratio(folder):.2f}")
        return 0
    import torch

    torch.set_num_threads(1)
    info = machine()
    pairs = PAIRS[:1] if args.quick else PAIRS
    result: dict = {"machine": info, "pairs": [], "presets": {}}
    for unet, dit, size, ch, f, rounds in pairs:
        n = 2 if args.quick else (args.rounds or rounds)
        print(f"== {unet} vs {dit}: {n} paired rounds at {size} px", flush=True)
        result["pairs"].append(paired_steps(unet, dit, size, ch, f, n, info["bf16"]))
        for name in (unet, dit):
            result["presets"][name] = {"image": size, **counts(name, size, ch, f)}
    if not args.quick:
        unet, dit, size, ch, f = PAPER
        for name in (unet, dit):
            result["presets"][name] = {"image": size, **counts(name, size, ch, f)}
    result["summary"] = [
        {"metric": f"DiT step time over UNet ({p['dit']} / {p['unet']}, paired median)",
         "value": f"{p['dit_over_unet']:.2f}×", "goal": "≤ 1.5× (the same machine's preset)",
         "met": p["dit_over_unet"] <= 1.5}
        for p in result["pairs"]
    ]  # fmt: skip
    from histosynth.artifacts import atomic_write_text  # readers never see half a file

    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    for p in result["pairs"]:
        print(
            {k: round(v, 3) for k, v in p["s_per_step"].items()},
            f"ratio {p['dit_over_unet']:.2f}",
            {k: round(v, 3) for k, v in p["s_per_eval"].items()},
            f"eval ratio {p['eval_dit_over_unet']:.2f}",
        )
    for name, c in result["presets"].items():
        print(
            f"{name}: {c['params_m']:.1f} M params, {c['backbone_train_gflop_per_sample']:.1f} GFLOP/sample"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
