"""``histosynth train-codec``: train a KL autoencoder (the latent codec) on a patch dataset.

Loss (Rombach et al. 2022, without the LPIPS term, whose network weights we cannot assume)::

    mean |x − x̂|  +  kl_weight · KL(q(z|x) ‖ N(0, I)) / (3·H·W)  [+ adv_weight · hinge GAN term]

The optional adversarial term uses a PatchGAN discriminator trained from scratch alongside
(no downloaded weights), switched on after ``loss.adv_start`` steps with a fixed weight.
At the end the latent scale and shift are measured on the training patches and stored in the
codec's config. The output folder::

    <out>/codec/        KLCodec (config.json + safetensors): pass <out> as --codec to train
    <out>/recon.png     real | reconstruction, a few patches
    <out>/stats.jsonl, <out>/loss.png, <out>/checkpoints/step-*/, manifest.json (kind "codec")

Claiming the folder, resuming, the stats, stopping (first Ctrl-C, ``run.max_minutes``, the
callback) and checkpoints are the trainer skeleton's (:mod:`histosynth.train.skeleton`), as in
``histosynth train``: a run resumes exactly on re-running the same command, and a finished run
goes on when asked for more ``run.steps``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from histosynth.artifacts import Kind, StageResult, write_manifest
from histosynth.config import config_to_dict, register_presets
from histosynth.data.patch_dataset import PatchDataset, encode_png
from histosynth.diffusion.codec import CODEC_PRESETS, KLCodec, build_codec, measure_scale
from histosynth.seeding import item_seed
from histosynth.train.checkpoint import load_trained, write_checkpoint
from histosynth.train.config import DataConfig, identity_config
from histosynth.train.data import BatchPlan, TrainData, make_loader
from histosynth.train.grid import grid_image
from histosynth.train.skeleton import Every, Resume, StatsLog, TrainSummary, claim_run, run_steps

__all__ = ["CodecTrainConfig", "PatchDiscriminator", "run"]


@dataclass(frozen=True)
class CodecLossConfig:
    kl_weight: float = 1e-6  # LDM's KL-f4/f8 setting
    adv_weight: float = 0.0  # 0: no adversarial term
    adv_start: int = 2000  # step from which the discriminator trains and the term applies
    disc_channels: int = 64
    disc_layers: int = 3


@dataclass(frozen=True)
class CodecRunConfig:
    steps: int = 50_000
    seed: int = 0
    batch_size: int = 16
    lr: float = 1e-4
    grad_clip: float = 1.0
    log_every: int = 50
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2
    max_minutes: float | None = None
    threads: int | None = None


@dataclass(frozen=True)
class CodecTrainConfig:
    codec: str = "kl-f4"  # a kl-* name in histosynth.diffusion.codec.CODEC_PRESETS
    data: DataConfig = field(default_factory=lambda: DataConfig(max_crops=0))
    loss: CodecLossConfig = field(default_factory=CodecLossConfig)
    run: CodecRunConfig = field(default_factory=CodecRunConfig)


RUN_LENGTH = ("run.steps", "run.log_every", "run.checkpoint_every", "run.keep_checkpoints", "run.max_minutes",
              "run.threads", "data.workers", "data.preload")  # fmt: skip

register_presets(
    CodecTrainConfig,
    {
        "cpu-tiny": {
            "codec": "kl-f4-tiny",
            "data": {"image_size": 64},
            "run": {"steps": 3000, "lr": 4e-4, "log_every": 10, "checkpoint_every": 250},
        },  # fmt: skip
        "cpu-small": {
            "codec": "kl-f4-tiny",
            "data": {"image_size": 128},
            "run": {"steps": 10000, "lr": 2e-4},
        },
        "paper": {
            "codec": "kl-f4",
            "data": {"image_size": 256},
            "loss": {"adv_weight": 0.5, "adv_start": 50000},
        },
        "large": {
            "codec": "kl-f8",
            "data": {"image_size": 256},
            "loss": {"adv_weight": 0.5, "adv_start": 50000},
            "run": {"batch_size": 32},
        },  # fmt: skip
    },
)


class PatchDiscriminator(nn.Module):
    """A PatchGAN discriminator (Isola et al. 2017) with GroupNorm: logits per image patch."""

    def __init__(self, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = channels
        for i in range(1, layers + 1):
            c_out = channels * min(2**i, 8)
            mods += [
                nn.Conv2d(c, c_out, 4, 2 if i < layers else 1, 1),
                nn.GroupNorm(8, c_out),
                nn.LeakyReLU(0.2),
            ]
            c = c_out
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def run(
    dataset: str | Path,
    out: str | Path,
    cfg: CodecTrainConfig | None = None,
    *,
    overwrite: bool = False,
    callback: Callable[[int], bool | None] | None = None,
    show_progress: bool = True,
) -> StageResult:
    """Train (or resume, or extend) a KL codec on a patch dataset; pass ``out`` to ``train --codec``.

    Parameters
    ----------
    dataset
        A patch dataset folder.
    out
        The codec's folder (created; resumed when it holds the same run).
    cfg
        The resolved config (default :class:`CodecTrainConfig`).
    overwrite
        Start afresh when ``out`` holds another run.
    callback
        ``callback(step_done)`` after each step; a true return stops the run with a checkpoint
        (as Ctrl-C does); an exception aborts it without one.
    show_progress
        Show a progress bar (also off with ``HISTOSYNTH_PROGRESS=0``).

    Returns
    -------
    StageResult
        The codec folder, its manifest (``None`` when the run stopped early) and a
        :class:`~histosynth.train.skeleton.TrainSummary`.
    """
    cfg = cfg or CodecTrainConfig()
    if CODEC_PRESETS.get(cfg.codec, {}).get("kind") != "kl":
        raise ValueError(f"codec {cfg.codec!r} is not a trainable KL preset; choose from "
                         f"{[k for k, v in CODEC_PRESETS.items() if v['kind'] == 'kl']}")  # fmt: skip
    r = cfg.run
    if r.threads:
        torch.set_num_threads(r.threads)
    ds = PatchDataset(dataset, split=cfg.data.split)
    folder, ident, inputs = Path(out), identity_config(cfg, RUN_LENGTH), {"dataset": ds.id}
    finished = claim_run(folder, Kind.CODEC, ident, inputs, r.steps, overwrite=overwrite)
    if finished is not None:
        return StageResult(folder, finished, TrainSummary(finished["counts"]["steps"], True, None))
    data = TrainData(ds, cfg.data, r.seed, with_crops=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resume = Resume.latest(folder)
    torch.manual_seed(item_seed(r.seed, "init"))
    codec = (
        load_trained(KLCodec, resume.checkpoint / "codec") if resume.checkpoint else build_codec(cfg.codec)
    )
    disc = PatchDiscriminator(cfg.loss.disc_channels, cfg.loss.disc_layers)
    codec.to(device).train()
    disc.to(device).train()
    opts = {
        "codec_opt": torch.optim.AdamW(codec.parameters(), lr=r.lr, betas=(0.5, 0.9), weight_decay=0.0),
        "disc_opt": torch.optim.AdamW(disc.parameters(), lr=r.lr, betas=(0.5, 0.9), weight_decay=0.0),
    }
    if resume.checkpoint:
        disc.load_state_dict(resume.optimizer["disc"])
        for k, o in opts.items():
            o.load_state_dict(resume.optimizer[k])
    start = resume.step
    loader = iter(
        make_loader(data, BatchPlan(len(data), r.batch_size, seed=r.seed), start, r.steps, cfg.data.workers)
    )
    resume.restore_rng()  # after the loader, whose creation draws from the global RNG as it did at step 0
    stats = StatsLog(folder / "stats.jsonl")
    stats.truncate(start)
    win: dict[str, float] = {"rec": 0.0, "kl": 0.0, "adv": 0.0, "n": 0, "t": 0.0}

    def train_step(step: int) -> None:
        t0 = time.perf_counter()
        x = next(loader).images.to(device)
        gen = torch.Generator(device).manual_seed(item_seed(r.seed, "codec-noise", step))
        post = codec.encode(x).latent_dist
        rec = codec.decode(post.sample(gen)).sample
        l_rec = (x - rec).abs().mean()
        l_kl = post.kl().mean() / (3 * x.shape[-1] * x.shape[-2])
        loss = l_rec + cfg.loss.kl_weight * l_kl
        adv_on = cfg.loss.adv_weight > 0 and step >= cfg.loss.adv_start
        l_adv = torch.zeros((), device=device)
        if adv_on:
            l_adv = -disc(rec).mean()
            loss = loss + cfg.loss.adv_weight * l_adv
        opts["codec_opt"].zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(codec.parameters(), r.grad_clip)
        opts["codec_opt"].step()
        if adv_on:  # hinge loss for the discriminator
            d_loss = torch.relu(1 - disc(x)).mean() + torch.relu(1 + disc(rec.detach())).mean()
            opts["disc_opt"].zero_grad(set_to_none=True)
            d_loss.backward()
            opts["disc_opt"].step()
        for k, v in (("rec", l_rec), ("kl", l_kl), ("adv", l_adv)):
            win[k] += float(v.detach())
        win["n"] += 1
        win["t"] += time.perf_counter() - t0

    def log(done: int) -> dict[str, str]:
        n = max(win["n"], 1)
        row = {"step": done, "loss": win["rec"] / n, "kl": win["kl"] / n, "adv": win["adv"] / n,
               "step_time": win["t"] / n}  # fmt: skip
        stats.append(row)
        win.update({"rec": 0.0, "kl": 0.0, "adv": 0.0, "n": 0, "t": 0.0})
        return {"l1": f"{row['loss']:.4f}"}

    def write(ckpt: Path) -> None:
        codec.save_pretrained(ckpt / "codec")
        state = {"disc": disc.state_dict(), **{k: o.state_dict() for k, o in opts.items()}}
        torch.save(state, ckpt / "training_state" / "optimizer.pt")

    done = run_steps(
        start, r.steps, train_step, every=Every(r.log_every, r.checkpoint_every), log=log,
        checkpoint=lambda step: write_checkpoint(folder / "checkpoints", step, write, keep=r.keep_checkpoints),
        callback=callback, max_minutes=r.max_minutes, desc="train-codec", show_progress=show_progress,
    )  # fmt: skip
    rows = stats.rows()
    final_l1 = rows[-1]["loss"] if rows else None
    if done < r.steps:
        return StageResult(folder, None, TrainSummary(done, False, final_l1))
    codec.eval()
    scale, shift = _finish(folder, codec, data, device)
    stats.plot(folder / "loss.png", "codec L1")
    manifest = write_manifest(folder, Kind.CODEC, ident, inputs, {"steps": r.steps}, run=config_to_dict(r),
                              scaling_factor=scale, shift_factor=shift, final_l1=final_l1)  # fmt: skip
    return StageResult(folder, manifest, TrainSummary(done, True, final_l1))


def _finish(folder: Path, codec: KLCodec, data: TrainData, device: torch.device) -> tuple[float, float]:
    """Measure the latent scale and shift, draw ``recon.png`` and save the codec; ``(scale, shift)``."""
    rows = np.linspace(0, len(data) - 1, min(len(data), 512)).round().astype(int)
    imgs = [torch.from_numpy(data.load(int(i))[0]).permute(2, 0, 1).float() / 127.5 - 1 for i in rows]
    scale, shift = measure_scale(codec, [torch.stack(imgs[i : i + 32]) for i in range(0, len(imgs), 32)])
    with torch.no_grad():
        x = torch.stack(imgs[:: max(1, len(imgs) // 6)][:6]).to(device)
        rec = codec.decode_latents(codec.encode_latents(x)).clamp(-1, 1)
    to_u8 = lambda t: ((t.permute(1, 2, 0).cpu().numpy() + 1) * 127.5).round().astype(np.uint8)  # noqa: E731
    (folder / "recon.png").write_bytes(
        encode_png(grid_image([[to_u8(a), to_u8(b)] for a, b in zip(x, rec, strict=True)]))
    )
    shutil.rmtree(folder / "codec", ignore_errors=True)
    codec.save_pretrained(folder / "codec")
    return scale, shift
