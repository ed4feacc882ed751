"""``histosynth tile``: slides → tiles table (level-0 coords, mpp, tissue, split) + QC pictures."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options, data_stage_options, preset_choices


@click.command("tile")
@click.argument("slides", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output folder (resumed).")
@click.option("--patch-mpp", type=float, default=None, help="Target resolution of the patches, µm/px [0.5].")
@click.option("--size", type=int, default=None, help="Patch side in pixels at the target resolution [256].")
@click.option("--overlap", type=int, default=None, help="Overlap of neighbouring patches in pixels [0].")
@click.option(
    "--min-tissue", type=float, default=None, help="Keep patches with at least this tissue fraction [0.5]."
)
@click.option(
    "--mpp",
    type=float,
    default=None,
    help="Level-0 µm/px of the slides, for files without it (plain images); overrides metadata.",
)
@click.option("--reader", default=None, help="Slide reader: auto, openslide, tiffslide or image [auto].")
@data_stage_options(
    "CSV slide,split or JSON {slide: split} overriding the seeded split.",
    "Seed of the slide split [0].",
    "slides",
)
@config_options(preset_choices=preset_choices("histosynth.wsi.tiling", "TileConfig"))
def command(
    slides,
    out,
    patch_mpp,
    size,
    overlap,
    min_tissue,
    mpp,
    reader,
    annotations,
    classes,
    split_file,
    seed,
    overwrite,
    preset=None,
    config_file=None,
    overrides=(),
    **executor_args,
) -> None:
    """Tile SLIDES (files or folders) into OUT/tiles.parquet with QC pictures in OUT/qc/.

    Tissue is found on a thumbnail; patches of --size px at --patch-mpp whose tissue fraction
    reaches --min-tissue are kept, with level-0 coordinates. Slides are split into
    train/val/test by slide. A slide that cannot be read or has no tissue is reported and
    skipped; the command then exits with status 1.
    """
    from histosynth.cli.options import make_stage_executor, resolve
    from histosynth.wsi.tile_stage import run
    from histosynth.wsi.tiling import TileConfig

    values = dict(
        mpp=patch_mpp,
        size=size,
        overlap=overlap,
        min_tissue=min_tissue,
        slide_mpp=mpp,
        reader=reader,
        seed=seed,
        split={"file": split_file} if split_file else None,
    )
    cfg = resolve(TileConfig, preset, config_file, overrides, **values)
    with make_stage_executor(**executor_args) as executor:
        result = run(slides, out, cfg, annotations=annotations, classes=classes, executor=executor,
                     overwrite=overwrite)  # fmt: skip
    counts = result.manifest["counts"]
    click.echo(result.summary.describe("slides"))
    click.echo(f"{counts['tiles']} tiles from {counts['done']} slides in {out}")
    if not result.ok:
        raise SystemExit(1)
