"""``histosynth train``: the training loop (accelerate, EMA, AdamW, checkpoints, exact resume).

The output folder (artefact kind ``model``)::

    <out>/
      stats.jsonl           one line per log interval: step, loss, lr, grad norm, times, memory
      samples/step-*.png    sample grids (map | crops | sample | real), EMA weights
      loss.png              the loss curve
      checkpoints/step-*/   pipeline folder + training state (see histosynth.train.checkpoint)
      model/                the final pipeline: HistoSynthPipeline.from_pretrained(<out>/model)
      manifest.json         written last

Re-running the same command resumes from the newest checkpoint and gives the same weights as
an uninterrupted run: data order and per-step noise are functions of (seed, step), and the
optimiser, EMA and RNG states are restored. A first Ctrl-C (or ``run.max_minutes``) stops at
the end of the current step with a checkpoint. A finished run can be extended by re-running
with more ``run.steps`` (the learning rate is constant after warm-up). Claiming, resuming,
stats, stopping and the checkpoint cadence are the trainer skeleton's
(:mod:`histosynth.train.skeleton`, shared with ``train-codec``); this module is the step.
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histosynth.artifacts import Kind, StageResult, read_manifest, write_manifest
from histosynth.config import ConfigError, config_to_dict
from histosynth.data.patch_dataset import PatchDataset
from histosynth.diffusion.codec import load_codec, measure_scale
from histosynth.diffusion.conditioning import CONDITIONINGS
from histosynth.diffusion.denoiser import build_denoiser
from histosynth.diffusion.loss import DiffusionLoss
from histosynth.diffusion.pipeline import HistoSynthPipeline, make_scheduler
from histosynth.diffusion.schedule import NoiseSchedule
from histosynth.model_card import write_model_card
from histosynth.seeding import item_seed, torch_generator
from histosynth.train.checkpoint import load_denoiser, save_checkpoint
from histosynth.train.config import TrainConfig, identity_config
from histosynth.train.data import IDENTITY_LUT, BatchPlan, Curriculum, TrainData, make_loader
from histosynth.train.draws import draw, sample_generators
from histosynth.train.ema import EMA
from histosynth.train.grid import save_grid
from histosynth.train.latent_cache import latent_cache
from histosynth.train.skeleton import (
    Every,
    Resume,
    StatsLog,
    TrainSummary,
    claim_run,
    finished_run,
    run_steps,
)

__all__ = ["TrainSummary", "run", "schedule_of"]


def schedule_of(cfg: TrainConfig) -> NoiseSchedule:
    d = cfg.diffusion
    return NoiseSchedule(d.schedule, d.timesteps, d.beta_start, d.beta_end, d.prediction)


def _mixed_precision(name: str) -> str:
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def cpu_has_native_bf16() -> bool:
    """True on a CPU with bf16 arithmetic in hardware (AVX512-BF16 or AMX), where autocast pays."""
    try:
        caps = torch.cpu.get_capabilities()
    except Exception:  # an older torch, or a platform that does not report
        return False
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _adamw(params: Any, o: Any) -> torch.optim.Optimizer:
    """AdamW, fused where this torch has a fused kernel for the device (2× faster on a CPU)."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)


def _build(cfg: TrainConfig, data: TrainData, num_classes: int, ckpt: Path | None) -> tuple[Any, Any, Any]:
    """``(codec, model, ema_weights_model)`` fresh or from the checkpoint."""
    if ckpt is not None:
        codec = load_codec(ckpt / "codec")
        model = load_denoiser(ckpt / "training_state" / "denoiser")
        ema = load_denoiser(ckpt / "denoiser")
        return codec, model, ema
    if not cfg.model.codec:
        raise ConfigError(
            "model.codec: this preset needs a codec; train one with `histosynth train-codec DATA OUT` "
            "and pass --codec OUT, or use an identity codec (identity, identity-p2, identity-p4)"
        )
    codec = load_codec(cfg.model.codec)
    if cfg.model.measure_scale:
        rows = np.linspace(0, len(data) - 1, min(len(data), 256)).round().astype(int)
        images = [torch.from_numpy(data.load(int(i))[0]).permute(2, 0, 1).float() / 127.5 - 1 for i in rows]
        measure_scale(codec, [torch.stack(images[i : i + 32]) for i in range(0, len(images), 32)])
    torch.manual_seed(item_seed(cfg.run.seed, "init"))
    try:
        model = build_denoiser(
            cfg.model.backbone, cfg.model.conditioning, num_classes, cfg.data.image_size,
            codec.latent_channels, codec.downsample, cfg.data.max_crops, cfg.model.crop_stats,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"model.backbone / model.codec: {exc}") from None
    return codec, model, None


def _grid_examples(data: TrainData, n: int, lut: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, list]]:
    rows = np.linspace(0, len(data) - 1, min(n, len(data))).round().astype(int)
    return [data.item(-1, int(i), lut) for i in rows]  # epoch -1: the grid's own draws


def _write_grid(
    path: Path, pipe: HistoSynthPipeline, examples: list, data: TrainData, cfg: TrainConfig
) -> None:
    maps = np.stack([m for _, m, _ in examples])
    crops = [c for _, _, c in examples] if pipe.denoiser.cond.uses_crops else None
    gens = [torch_generator(cfg.run.seed, "grid", i, device=str(pipe.device)) for i in range(len(examples))]
    pipe.set_progress_bar_config(disable=True)
    images = pipe(maps, crops, num_inference_steps=cfg.run.sample_steps, generator=gens).images
    classes = data.dataset.classes
    save_grid(path, maps, crops or [[] for _ in examples], images, [im for im, _, _ in examples], classes)


def run(
    dataset: str | Path,
    out: str | Path,
    cfg: TrainConfig | None = None,
    *,
    overwrite: bool = False,
    callback: Callable[[int], bool | None] | None = None,
    show_progress: bool = True,
) -> StageResult:
    """Train (or resume, or extend) a model on a patch dataset.

    Parameters
    ----------
    dataset
        A patch dataset folder.
    out
        The run folder (created; resumed when it holds the same run).
    cfg
        The resolved config (default :class:`~histosynth.train.config.TrainConfig`).
    overwrite
        Start afresh when ``out`` holds another run.
    callback
        ``callback(step_done)`` after each optimiser step; a true return stops the run with a
        checkpoint (as Ctrl-C does); an exception aborts it without one.
    show_progress
        Show a progress bar (also off with ``HISTOSYNTH_PROGRESS=0``).

    Returns
    -------
    StageResult
        The run folder, its manifest (``None`` when the run stopped before ``run.steps``) and a
        :class:`TrainSummary`.
    """
    from accelerate import Accelerator

    cfg = cfg or TrainConfig()
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    ds = PatchDataset(dataset, split=cfg.data.split)
    num_fine = ds.classes.num_classes
    curriculum = Curriculum(ds.folder, num_fine, cfg.data.curriculum) if cfg.data.curriculum else None
    num_classes = max(cfg.model.num_classes or 0, curriculum.num_classes if curriculum else num_fine)
    folder, ident, inputs = Path(out), identity_config(cfg), {"dataset": ds.id}
    steps, accum, seed = cfg.run.steps, cfg.optim.grad_accum, cfg.run.seed

    acc = Accelerator(mixed_precision=_mixed_precision(cfg.run.mixed_precision))
    finished = None
    if acc.is_main_process:
        finished = claim_run(folder, Kind.MODEL, ident, inputs, steps, overwrite=overwrite)
        ds.classes.save(folder / "classes.json")  # the sampler and studio name classes from it
    acc.wait_for_everyone()
    finished = finished or finished_run(folder, Kind.MODEL, steps)
    if finished is not None:
        return StageResult(folder, finished, TrainSummary(finished["counts"]["steps"], True, None))

    device = acc.device
    variant = CONDITIONINGS.get(cfg.model.conditioning)
    data = TrainData(
        ds, cfg.data, seed, curriculum, with_crops=variant.uses_crops, place=variant.reads_positions
    )
    resume = Resume.latest(folder)
    codec, model, ema_weights = _build(cfg, data, num_classes, resume.checkpoint)
    start = resume.step
    model.to(device).train()
    codec.to(device).eval().requires_grad_(False)
    o = cfg.optim
    optimizer = _adamw(model.parameters(), o)
    ema = EMA(model, o.ema_decay, o.ema_warmup)
    if resume.checkpoint is not None:
        optimizer.load_state_dict(resume.optimizer)
        ema.model.load_state_dict(ema_weights.state_dict())
    model, optimizer = acc.prepare(model, optimizer)
    if acc.scaler is not None and "scaler" in resume.trainer:
        acc.scaler.load_state_dict(resume.trainer["scaler"])
    raw = acc.unwrap_model(model)
    params = list(model.parameters())  # walking the module tree every step costs milliseconds

    schedule = schedule_of(cfg)
    d = cfg.diffusion
    loss_fn = DiffusionLoss(schedule, d.loss, d.min_snr_gamma, d.input_perturbation)
    scheduler = make_scheduler(schedule, cfg.run.sampler)
    plan = BatchPlan(len(data), o.batch_size, accum, acc.num_processes, acc.process_index, seed)
    plan.micro_batch  # noqa: B018 - validates the batch split before any work
    loader = iter(make_loader(data, plan, start * accum, steps * accum, cfg.data.workers))
    resume.restore_rng()  # after the loader, whose creation draws from the global RNG as it did at step 0
    final_lut = curriculum.luts[-1] if curriculum else IDENTITY_LUT
    examples = _grid_examples(data, cfg.run.grid_rows, final_lut) if acc.is_main_process else []
    stats = StatsLog(folder / "stats.jsonl")
    if acc.is_main_process:
        stats.truncate(start)
        (folder / "samples").mkdir(exist_ok=True)
    kl_codec = hasattr(codec, "encoder")
    cache = latent_cache(codec, f"{ds.id}:{cfg.data.split}", cfg.data.image_size, cfg.data.latent_cache_gb)

    def micro_step(batch: Any, gens: list[torch.Generator]) -> Any:
        images, maps = batch.images.to(device, non_blocking=True), batch.maps.to(device, non_blocking=True)
        crops = batch.crops.to(device)
        with torch.no_grad():
            if cache is not None:
                x0 = cache.encode_latents(images, batch.keys, gens).float()
            else:
                x0 = codec.encode_latents(
                    images.to(codec.dtype), generator=gens if kl_codec else None
                ).float()
        d = cfg.diffusion
        perturb = bool(d.input_perturbation)
        dr = draw(gens, x0.shape[1:], schedule.num_train_timesteps, d.drop_map, d.drop_crops, device, perturb)
        with acc.autocast():
            return loss_fn(
                lambda x, t: model(x, t, maps, crops, dr.drop_map, dr.drop_crops),
                x0, t=dr.t, noise=dr.noise, perturbation=dr.perturbation,
            )  # fmt: skip

    window: dict[str, Any] = {"loss": 0.0, "wloss": 0.0, "gnorm": 0.0, "n": 0, "t": 0.0, "data": 0.0}
    last: dict[str, float | None] = {"loss": None}

    def lr_at(done: int) -> float:  # linear warm-up, then constant (so a finished run can be extended)
        return o.lr * min(1.0, done / max(1, o.warmup_steps))

    def train_step(step: int) -> None:
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step + 1)
        for micro in range(accum):
            td = time.perf_counter()
            batch = next(loader)
            window["data"] += time.perf_counter() - td
            # per-sample draws: the result does not depend on how the global batch is split
            gens = sample_generators(seed, step, plan.positions(micro))
            sync = acc.no_sync(model) if micro < accum - 1 else contextlib.nullcontext()
            with sync:
                terms = micro_step(batch, gens)
                acc.backward(terms.loss.mean() / accum)
            window["loss"] += terms.raw.mean().detach() / accum
            window["wloss"] += terms.loss.mean().detach() / accum
        if o.grad_clip > 0:
            acc.unscale_gradients()  # a no-op unless fp16 loss scaling is on
            gnorm = torch.nn.utils.clip_grad_norm_(params, o.grad_clip, foreach=True)
            window["gnorm"] += gnorm.detach()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(raw, step)
        window["n"] += 1
        window["t"] += time.perf_counter() - t0

    def log(done: int) -> dict[str, str]:
        row = _log_row(acc, window, done, lr_at(done), cfg, device, t_run)
        if acc.is_main_process:
            stats.append(row)
        last["loss"] = row["loss"]
        return {"loss": f"{row['loss']:.4f}", "s_per_step": f"{row['step_time']:.3f}"}

    def sample(done: int) -> None:
        _write_grid(folder / "samples" / f"step-{done:08d}.png",
                    HistoSynthPipeline(ema.model, codec, scheduler), examples, data, cfg)  # fmt: skip
        stats.plot(folder / "loss.png")

    def checkpoint(done: int) -> None:
        if acc.is_main_process:
            pipe = HistoSynthPipeline(ema.model, codec, scheduler)
            extra = {"scaler": acc.scaler.state_dict()} if acc.scaler is not None else {}
            save_checkpoint(
                folder / "checkpoints", done, pipe, raw, optimizer, extra, cfg.run.keep_checkpoints
            )
        acc.wait_for_everyone()

    t_run = time.perf_counter()
    done = run_steps(
        start, steps, train_step, every=Every(cfg.run.log_every, cfg.run.checkpoint_every, cfg.run.sample_every),
        log=log, checkpoint=checkpoint, sample=sample if acc.is_main_process else None, callback=callback,
        max_minutes=cfg.run.max_minutes, agree=lambda flag: _agree(acc, flag),
        show_progress=show_progress and acc.is_main_process,
    )  # fmt: skip
    if done < steps:
        return StageResult(folder, None, TrainSummary(done, False, last["loss"]))
    if acc.is_main_process:
        HistoSynthPipeline(ema.model, codec, scheduler).save_pretrained(folder / "model")
        ds.classes.save(folder / "model" / "classes.json")
        write_model_card(folder / "model", ds, ident, steps)
        stats.plot(folder / "loss.png")
        write_manifest(
            folder, Kind.MODEL, ident, inputs, counts={"steps": steps},
            run=config_to_dict(cfg.run), num_classes=num_classes, final_loss=last["loss"],
            precision=str(acc.mixed_precision),  # what "auto" resolved to on this machine
        )  # fmt: skip
    acc.wait_for_everyone()
    return StageResult(folder, read_manifest(folder, Kind.MODEL), TrainSummary(steps, True, last["loss"]))


def _agree(acc: Any, flag: bool) -> bool:
    """Every process stops together: any process's request stops all (one tiny all-reduce)."""
    if acc.num_processes == 1:
        return flag
    t = torch.tensor([float(flag)], device=acc.device)
    return bool(acc.reduce(t, reduction="sum").item() > 0)


def _log_row(acc: Any, w: dict[str, Any], step: int, lr: float, cfg: TrainConfig, device: torch.device,
             t_run: float) -> dict[str, Any]:  # fmt: skip
    """The stats line of the log interval ending at ``step`` (means over every process); resets ``w``."""
    n = max(w["n"], 1)
    means = torch.stack(
        [torch.as_tensor(w[k], dtype=torch.float32, device=device) for k in ("loss", "wloss", "gnorm")]
    )
    means = acc.reduce(means, reduction="mean") / n
    loss, wloss, gnorm = (float(v) for v in means.cpu())
    row = {
        "step": step, "loss": loss, "loss_weighted": wloss, "grad_norm": gnorm if cfg.optim.grad_clip > 0 else None,
        "lr": lr, "step_time": w["t"] / n, "data_time": w["data"] / n,
        "samples_per_s": cfg.optim.batch_size * n / max(w["t"], 1e-9),
        "peak_mem_mb": _peak_memory_mb(device), "elapsed": time.perf_counter() - t_run,
        "processes": acc.num_processes, "precision": str(acc.mixed_precision),
    }  # fmt: skip
    w.update({"loss": 0.0, "wloss": 0.0, "gnorm": 0.0, "n": 0, "t": 0.0, "data": 0.0})
    return row
