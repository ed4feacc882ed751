"""Large images: synthesis beyond one patch, seam-free, written as a pyramidal slide.

The latent canvas of the whole image is denoised by overlapping windows of the model's
training size: the windows' predictions are blended (MultiDiffusion,
:class:`~histosynth.sample.multidiffusion.WindowBlend`) and the one denoising loop of the
patches (:func:`~histosynth.diffusion.sampling.denoise`) steps the whole canvas, its noise
drawn from the run's seed. Decoding is tiled the same way, into a memory-mapped canvas, so
memory is bounded by the window for the networks and by the latent canvas (f² × smaller than
the image, per channel) for the state.

Output folder::

    image.tif        pyramidal tiled TIFF, JPEG, mpp of the training data (OpenSlide, QuPath)
    labels.tif       the label map, aligned, lossless, same pyramid
    image.geojson    the label regions as QuPath annotations (level-0 coordinates), named after
                     image.tif so that ``histosynth dataset --annotations OUT`` finds it
    classes.json
    manifest.json    kind "large-image": config, seam score, crop provenance
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from histosynth.artifacts import Kind, StageResult, prepare_output, read_manifest, write_manifest
from histosynth.config import config_to_dict
from histosynth.data.pyramid_tiff import array_region_fn, write_pyramid_tiff
from histosynth.jobs import RunSummary
from histosynth.sample.windows import blend_weights, seam_score, window_origins
from histosynth.seeding import item_seed, numpy_rng

__all__ = ["LargeConfig", "run"]

GEOJSON_MAX_SIDE = 8192


@dataclass(frozen=True)
class LargeConfig:
    """Settings of large-image synthesis.

    Attributes
    ----------
    width, height
        Image size in pixels (multiples of the codec factor).
    overlap
        Window overlap as a fraction of the window.
    maps, maps_dir, procedural_kind, fractions
        The large map: a label PNG (``maps_dir`` is then the file) or a procedural layout.
    window_batch
        Windows evaluated together (memory ∝ this, not the image).
    mpp
        Resolution written into the TIFFs; 0 takes the crop bank's data mpp (else 0.5).
    """

    width: int = 1024
    height: int = 1024
    overlap: float = 0.25
    maps: Literal["png", "procedural"] = "procedural"
    maps_dir: str = ""
    procedural_kind: Literal["noise", "voronoi"] = "noise"
    fractions: tuple[float, ...] = ()
    region_scale: float = 0.0
    crops: Literal["random", "none"] = "random"
    crops_per_class: int = 1
    sampler: str = "dpm++"
    steps: int = 20
    guidance_map: float = 1.0
    guidance_crops: float = 1.0
    window_batch: int = 4
    mpp: float = 0.0
    seed: int = 0

    @classmethod
    def from_sample(cls, cfg: Any, size: tuple[int, int]) -> LargeConfig:
        """The large-image settings implied by ``histosynth sample`` settings and ``--size``."""
        maps = "png" if cfg.maps == "png" else "procedural"
        crops = "none" if cfg.crops == "none" else "random"
        return cls(width=size[0], height=size[1], maps=maps, maps_dir=cfg.maps_dir,
                   procedural_kind=cfg.procedural_kind, fractions=cfg.fractions, crops=crops,
                   crops_per_class=cfg.crops_per_class, sampler=cfg.sampler, steps=cfg.steps,
                   guidance_map=cfg.guidance_map, guidance_crops=cfg.guidance_crops, seed=cfg.seed)  # fmt: skip


def _large_map(cfg: LargeConfig, classes: Any, window: int) -> np.ndarray:
    from histosynth.data.patch_dataset import decode_png
    from histosynth.sample.maps import procedural_map

    if cfg.maps == "png":
        label = decode_png(cfg.maps_dir, "L")
        if label.shape != (cfg.height, cfg.width):
            raise ValueError(
                f"{cfg.maps_dir}: map is {label.shape[::-1]}, asked for {cfg.width}x{cfg.height}"
            )
        classes.check_ids(np.unique(label), cfg.maps_dir)
        return label
    tissue = [c for c in classes.ids if c != 0] or classes.ids
    fr = {i: f for i, f in enumerate(cfg.fractions) if f > 0} or {c: 1.0 / len(tissue) for c in tissue}
    side = max(cfg.width, cfg.height)
    scale = cfg.region_scale or window * 0.75  # regions about a window wide: each window mixes classes
    full = procedural_map(side, fr, cfg.procedural_kind, scale=scale, rng=numpy_rng(cfg.seed, "large-map"))
    return np.ascontiguousarray(full[: cfg.height, : cfg.width])


def run(
    checkpoint: str | Path,
    out: str | Path,
    cfg: LargeConfig | None = None,
    *,
    crop_bank: str | Path | None = None,
    device: str = "cpu",
    overwrite: bool = False,
) -> StageResult:
    """Synthesise one large image with its label map.

    >>> result = run("train/tokens", "big", LargeConfig(4096, 4096), crop_bank="crop-bank")  # doctest: +SKIP
    >>> result.manifest["result"]["seam_score"]                                           # doctest: +SKIP

    Parameters
    ----------
    checkpoint
        A ``histosynth train`` output, checkpoint or pipeline folder.
    out
        The image's folder.
    cfg
        Size, map and sampling settings (default :class:`LargeConfig`).
    crop_bank
        A crop bank folder (unused when the model reads no crops or ``cfg.crops == "none"``).
    device
        Where the model runs.
    overwrite
        Replace a folder of another configuration.

    Returns
    -------
    StageResult
        The folder and its manifest, whose ``result`` holds the files, the seam score and the
        crops' provenance.
    """
    import torch

    from histosynth.data.geojson_export import write_geojson
    from histosynth.diffusion.sampling import denoise
    from histosynth.progress import progress
    from histosynth.sample.crop_bank import CropBank
    from histosynth.sample.multidiffusion import WindowBlend
    from histosynth.sample.synthesis import Synthesizer
    from histosynth.seeding import torch_generator

    cfg = cfg or LargeConfig()
    synth = Synthesizer.from_checkpoint(checkpoint, device=device)
    pipe, den = synth.pipe, synth.pipe.denoiser
    f, win = int(den.config.downsample), synth.image_size
    if cfg.width % f or cfg.height % f or min(cfg.width, cfg.height) < win:
        raise ValueError(f"size {cfg.width}x{cfg.height} must be multiples of {f} and at least {win} px")
    bank = CropBank(crop_bank) if crop_bank and cfg.crops != "none" and synth.uses_crops else None
    config = config_to_dict(cfg)
    inputs = {"model": synth.source, **({"crop_bank": bank.id} if bank is not None else {})}
    claim = prepare_output(out, Kind.LARGE_IMAGE, config, inputs, overwrite=overwrite)
    folder = claim.folder
    if claim.complete:
        return StageResult(folder, read_manifest(folder, Kind.LARGE_IMAGE), RunSummary())

    label = _large_map(cfg, synth.classes, win)
    rng = numpy_rng(cfg.seed, "large-crops")
    present = [int(c) for c in np.unique(label)]
    bank_crops = {c: bank.pick(c, cfg.crops_per_class, rng) for c in present} if bank is not None else {}

    lw, ov = win // f, int(round(cfg.overlap * win / f))
    H, W = cfg.height // f, cfg.width // f
    windows = [(y, x) for y in window_origins(H, lw, ov) for x in window_origins(W, lw, ov)]
    blend = WindowBlend(pipe, label, windows, lw, ov, bank_crops if bank else None, cfg.guidance_map,
                        cfg.guidance_crops, cfg.window_batch)  # fmt: skip

    pipe.set_sampler(cfg.sampler)
    # One generator for the one canvas: its initial noise, then any noise the sampler adds.
    gen = torch_generator(item_seed(cfg.seed, "large-noise"), device=device)
    with torch.inference_mode():
        latents = denoise(
            pipe.scheduler, blend, (1, int(den.config.latent_channels), H, W), generator=[gen],
            num_inference_steps=cfg.steps, device=device, progress=lambda ts: progress(ts, desc="large image"),
        )  # fmt: skip
        image = _decode_tiled(pipe, latents, windows, lw, ov, f, folder)
    mpp = cfg.mpp or (bank.mpp if bank is not None and bank.mpp else 0.5)
    write_pyramid_tiff(folder / "image.tif", array_region_fn(image), (cfg.width, cfg.height), mpp,
                       description=f"histosynth synthetic image; mpp={mpp}")  # fmt: skip
    write_pyramid_tiff(folder / "labels.tif", array_region_fn(label, labels=True), (cfg.width, cfg.height), mpp,
                       channels=1, compression="deflate")  # fmt: skip
    # Exact pixel outlines (re-imported, they give labels.tif back) up to 8192 px; beyond, outlines
    # at 8192-px resolution keep the file (and QuPath) manageable: exact would take ~2 min at 16k.
    step = max(1, -(-max(cfg.width, cfg.height) // GEOJSON_MAX_SIDE))
    write_geojson(folder / "image.geojson", label[::step, ::step], synth.classes, scale=float(step))
    synth.classes.save(folder / "classes.json")
    bx = sorted({x * f for _, x in windows} | {(x + lw) * f for _, x in windows})
    by = sorted({y * f for y, _ in windows} | {(y + lw) * f for y, _ in windows})
    result = {
        "image": str(folder / "image.tif"),
        "labels": str(folder / "labels.tif"),
        "geojson": str(folder / "image.geojson"),
        "seam_score": seam_score(np.asarray(image), bx, by),
        "windows": len(windows),
        "mpp": mpp,
        "crop_sources": {str(c): [k.source for k in v] for c, v in bank_crops.items()},
    }
    del image
    (folder / "_canvas.f32").unlink(missing_ok=True)
    (folder / "_canvas.u8").unlink(missing_ok=True)
    manifest = write_manifest(
        folder, Kind.LARGE_IMAGE, config, inputs, {"windows": len(windows)}, result=result
    )
    return StageResult(folder, manifest, RunSummary())


def _decode_tiled(
    pipe: Any, latents: Any, windows: list, lw: int, ov: int, f: int, folder: Path
) -> np.ndarray:
    """Decode window by window into a memory-mapped canvas, blending the overlaps."""
    H, W = latents.shape[-2] * f, latents.shape[-1] * f
    acc = np.lib.format.open_memmap(folder / "_canvas.f32", mode="w+", dtype=np.float32, shape=(H, W, 4))
    wpx = blend_weights(lw * f, ov * f)[..., None]
    codec = pipe.codec
    for y, x in windows:
        tile = codec.decode_latents(latents[:, :, y : y + lw, x : x + lw].to(codec.dtype))
        tile = ((tile.float().clamp(-1, 1) + 1) * 127.5)[0].permute(1, 2, 0).cpu().numpy()  # (h, w, 3)
        ys, xs = slice(y * f, (y + lw) * f), slice(x * f, (x + lw) * f)
        acc[ys, xs, :3] += tile * wpx
        acc[ys, xs, 3:] += wpx
    out = np.lib.format.open_memmap(folder / "_canvas.u8", mode="w+", dtype=np.uint8, shape=(H, W, 3))
    for r in range(0, H, 256):  # normalise in row bands: memory stays flat
        band = acc[r : r + 256]
        out[r : r + 256] = np.clip(np.round(band[..., :3] / band[..., 3:]), 0, 255).astype(np.uint8)
    del acc
    return out
