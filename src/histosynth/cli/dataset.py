"""``histosynth dataset``: tiles + annotations (or pseudo-maps) → patch dataset."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options, data_stage_options, preset_choices
from histosynth.data.png import DEFAULT_PNG_MODE, PNG_MODES


@click.command("dataset")
@click.argument("tiles", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o", "--out", required=True, type=click.Path(file_okay=False), help="Dataset folder (resumed)."
)
@click.option(
    "--pseudo-maps",
    "pseudo_maps",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A cluster folder: label each tile by its cluster id instead of annotations.",
)
@click.option("--k", type=int, default=None, help="Number of clusters to use with --pseudo-maps.")
@click.option(
    "--derived",
    type=click.Choice(["stain"]),
    default=None,
    help="Derive a two-class map from the slide itself (hematoxylin-dense epithelium vs stroma, by "
    "colour deconvolution): a documented stand-in for expert annotations.",
)
@click.option("--fill", default=None, help="Class for tissue that no annotation covers ('none' to disable).")
@click.option(
    "--min-fraction", type=float, default=None, help="Share of tissue a class needs to count [0.2]."
)
@click.option("--max-per-slide", type=int, default=None, help="Cap on patches per slide, 0 = none [1000].")
@click.option("--balance/--no-balance", default=None, help="Balance patches across composition bins.")
@click.option(
    "--homogeneous-share", type=float, default=None, help="Share of single-class patches to add [0]."
)
@click.option(
    "--png",
    type=click.Choice(list(PNG_MODES)),
    default=DEFAULT_PNG_MODE,
    show_default=True,
    help="PNG encoding, same pixels: fast, compat (the bytes of releases before fast was the "
    "default, same size, encoding 4x slower) or stored (no compression, fastest, about 1.6x larger).",
)
@data_stage_options(
    "CSV slide,split or JSON {slide: split} overriding the tiles table's splits.",
    "Seed of the patch selection [0].",
    "slides (plan) and chunks of patches (extract)",
)
@config_options(preset_choices=preset_choices("histosynth.data.build", "DatasetConfig"))
def command(
    tiles,
    out,
    annotations,
    classes,
    pseudo_maps,
    k,
    derived,
    fill,
    min_fraction,
    max_per_slide,
    balance,
    homogeneous_share,
    png,
    split_file,
    seed,
    overwrite,
    preset=None,
    config_file=None,
    overrides=(),
    **executor_args,
) -> None:
    """Build a patch dataset (images/, maps/, index.parquet) from the tiles in TILES.

    Each tile's map is rasterised at the tiles' resolution; patches whose class composition
    meets the rule (default: two classes with ≥ 20 % of the tissue each) are kept. A slide
    whose annotation is malformed or lies outside the slide is reported and skipped; the
    command then exits with status 1.
    """
    import dataclasses

    from histosynth.cli.options import make_stage_executor, resolve
    from histosynth.config import ConfigError
    from histosynth.data.build import DatasetConfig, run

    if sum(x is not None for x in (annotations, pseudo_maps, derived)) != 1:
        raise ConfigError(
            "give one label source: --annotations DIR (with --classes), --pseudo-maps CLUSTER_DIR or --derived stain"
        )
    if annotations is not None and classes is None:
        raise ConfigError(
            "--annotations needs --classes (a classes.json file or a preset such as camelyon16)"
        )
    sampling = {
        key: v
        for key, v in dict(
            min_fraction=min_fraction,
            max_per_slide=max_per_slide,
            balance=balance,
            homogeneous_share=homogeneous_share,
        ).items()
        if v is not None
    }
    cfg = resolve(
        DatasetConfig,
        preset,
        config_file,
        overrides,
        seed=seed,
        sampling=sampling or None,
        fill=fill if fill not in (None, "none") else None,
    )
    if annotations is not None:
        from histosynth.wsi.label_sources import annotation_labels

        labels = annotation_labels(tiles, annotations, classes)
    elif derived is not None:
        from histosynth.data.derived_labels import stain_labels

        labels = stain_labels(tiles)
    else:
        from histosynth.cluster.pseudo_maps import pseudo_labels

        labels = pseudo_labels(pseudo_maps, k)
    if fill == "none":  # no fill class, not even the label scheme's
        cfg, labels = dataclasses.replace(cfg, fill=None), dataclasses.replace(labels, fill=None)
    splits = None
    if split_file is not None:
        from histosynth.data.splits import read_split_file

        splits = read_split_file(split_file)
    with make_stage_executor(**executor_args) as executor:
        result = run(
            tiles, out, cfg, labels=labels, splits=splits, executor=executor, overwrite=overwrite, png=png
        )
    manifest = result.manifest
    click.echo(result.summary.describe("slides"))
    counts = manifest["counts"]
    per_split = ", ".join(f"{s}: {counts.get('split_' + s, 0)}" for s in ("train", "val", "test"))
    click.echo(f"{counts['patches']} patches in {out} ({per_split})")
    if manifest.get("unlabelled"):
        click.echo(
            f"{len(manifest['unlabelled'])} slides without labels skipped: {', '.join(manifest['unlabelled'])}"
        )
    if not result.ok:
        raise SystemExit(1)
