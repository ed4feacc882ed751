"""Large images: synthesis beyond one patch, seam-free, written as a pyramidal slide.

The latent canvas of the whole image is denoised by overlapping windows of the model's
training size: the windows' predictions are blended (MultiDiffusion,
:class:`~histosynth.sample.multidiffusion.WindowBlend`) and the one denoising loop of the
patches (:func:`~histosynth.diffusion.sampling.denoise`) steps the canvas block by block, its
noise drawn per block from the run's seed. Every image-sized state is a memory-mapped file in
the output folder, deleted at the end: the label map (:mod:`histosynth.sample.large_map`), the
windows' conditions, the latents and the sampler's history
(:class:`~histosynth.sample.tiled_canvas.TiledCanvas`), and the decoded image, decoded window
by window. Memory therefore holds a window batch and a block, whatever the image size; the
files take about ``(4·C/f² + 17)`` bytes per image pixel (``C`` latent channels, codec factor
``f``) while the image is made.

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

from histosynth.artifacts import Kind, StageResult, prepare_output, read_manifest, write_manifest
from histosynth.config import config_to_dict
from histosynth.data.pyramid_tiff import write_pyramid_tiff
from histosynth.jobs import RunSummary
from histosynth.sample import DEFAULT_SAMPLER
from histosynth.sample.large_geojson import write_large_geojson
from histosynth.sample.large_map import large_map, present_classes
from histosynth.sample.paged import paged_region_fn
from histosynth.sample.tiled_decode import decode_tiled
from histosynth.sample.windows import seam_score, window_origins
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
    sampler: str = DEFAULT_SAMPLER
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

    from histosynth.diffusion.sampling import denoise
    from histosynth.progress import progress
    from histosynth.sample.crop_bank import CropBank
    from histosynth.sample.multidiffusion import WindowBlend
    from histosynth.sample.synthesis import Synthesizer
    from histosynth.sample.tiled_canvas import TiledCanvas

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

    label = large_map(cfg, synth.classes, win, folder)
    rng = numpy_rng(cfg.seed, "large-crops")
    present = present_classes(label)
    bank_crops = {c: bank.pick(c, cfg.crops_per_class, rng) for c in present} if bank is not None else {}

    lw, ov = win // f, int(round(cfg.overlap * win / f))
    H, W = cfg.height // f, cfg.width // f
    windows = [(y, x) for y in window_origins(H, lw, ov) for x in window_origins(W, lw, ov)]
    blend = WindowBlend(pipe, label, windows, lw, ov, bank_crops if bank else None, cfg.guidance_map,
                        cfg.guidance_crops, cfg.window_batch, folder)  # fmt: skip
    shape = (1, int(den.config.latent_channels), H, W)
    canvas = TiledCanvas(folder, shape, item_seed(cfg.seed, "large-noise"), device=device)

    pipe.set_sampler(cfg.sampler)
    with torch.inference_mode():
        denoise(
            pipe.scheduler, blend.fill, shape, num_inference_steps=cfg.steps, device=device, canvas=canvas,
            progress=lambda ts: progress(ts, desc="large image"),
        )  # fmt: skip
        blend.remove()
        image = decode_tiled(pipe, canvas.x, windows, lw, ov, f, folder)
        canvas.remove()
    mpp = cfg.mpp or (bank.mpp if bank is not None and bank.mpp else 0.5)
    write_pyramid_tiff(folder / "image.tif", paged_region_fn(image), (cfg.width, cfg.height), mpp,
                       description=f"histosynth synthetic image; mpp={mpp}")  # fmt: skip
    write_pyramid_tiff(folder / "labels.tif", paged_region_fn(label, labels=True), (cfg.width, cfg.height), mpp,
                       channels=1, compression="deflate")  # fmt: skip
    # Exact pixel outlines (re-imported, they give labels.tif back) up to 8192 px; beyond, outlines
    # at 8192-px resolution keep the file (and QuPath) manageable: exact would take ~2 min at 16k.
    step = max(1, -(-max(cfg.width, cfg.height) // GEOJSON_MAX_SIDE))
    write_large_geojson(folder / "image.geojson", label, synth.classes, step)
    synth.classes.save(folder / "classes.json")
    bx = sorted({x * f for _, x in windows} | {(x + lw) * f for _, x in windows})
    by = sorted({y * f for y, _ in windows} | {(y + lw) * f for y, _ in windows})
    result = {
        "image": str(folder / "image.tif"),
        "labels": str(folder / "labels.tif"),
        "geojson": str(folder / "image.geojson"),
        "seam_score": seam_score(image, bx, by),
        "windows": len(windows),
        "mpp": mpp,
        "crop_sources": {str(c): [k.source for k in v] for c, v in bank_crops.items()},
    }
    del image, label
    for name in ("_canvas.f32", "_canvas.u8", "_label.u8"):
        (folder / name).unlink(missing_ok=True)
    manifest = write_manifest(
        folder, Kind.LARGE_IMAGE, config, inputs, {"windows": len(windows)}, result=result
    )
    return StageResult(folder, manifest, RunSummary())
