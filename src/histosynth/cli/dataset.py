"""``histosynth dataset``: tiles + annotations (or pseudo-maps) → patch dataset."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options, data_stage_options, preset_choices


def _annotation_sources(tiles_dir: str, annotations: str, classes: str):
    """Lazy per-slide label sources from an annotation folder, and an identity for them."""
    import functools
    import hashlib
    from pathlib import Path

    from histosynth.artifacts import file_sha256, read_manifest
    from histosynth.wsi.label_sources import find_annotation, load_label_source
    from histosynth.wsi.schemes import load_scheme

    scheme = load_scheme(classes)
    slides = read_manifest(tiles_dir, "tiles").get("slides", {})
    sources, listing = {}, []
    for slide, info in slides.items():
        path = find_annotation(annotations, slide)
        if path is None:
            continue
        sources[slide] = functools.partial(load_label_source, path, scheme, (info["width"], info["height"]))
        listing.append(f"{slide}\t{path.name}\t{file_sha256(path)}")  # content, not location or mtime
    ident = hashlib.sha256("\n".join([*listing, repr(scheme.aliases)]).encode()).hexdigest()[:16]
    if not sources:
        from histosynth.config import ConfigError

        raise ConfigError(
            f"{Path(annotations)}: no annotation file matches any slide of {tiles_dir} "
            f"(expected <slide>.xml, .geojson, .json, .tif or .png)"
        )
    return scheme, sources, f"annotations-{ident}"


def _pseudo_sources(cluster_dir: str, k: int | None):
    from histosynth.config import ConfigError

    try:
        from histosynth.cluster.pseudo_maps import pseudo_map_sources
    except ImportError:
        raise ConfigError(
            "--pseudo-maps needs the cluster stage (histosynth.cluster), not in this build"
        ) from None
    classes, sources = pseudo_map_sources(cluster_dir, k=k)
    try:
        from histosynth.artifacts import read_manifest

        ident = read_manifest(cluster_dir)["id"]
    except Exception:  # a cluster folder without a manifest still works; name it by path
        ident = f"clusters-{cluster_dir}"
    return classes, sources, f"{ident}-k{k}"


def _pseudo_hierarchy(cluster_dir: str, k: int | None) -> dict:
    """``{"hierarchy.json": ...}`` for the dataset folder (empty without a cluster model)."""
    from histosynth.cluster.pseudo_maps import pseudo_map_hierarchy

    hierarchy = pseudo_map_hierarchy(cluster_dir, k)
    return {"hierarchy.json": hierarchy} if hierarchy is not None else {}


def _derived_sources(tiles_dir: str):
    """Per-slide stain-derived label sources (computed inside each slide's work item)."""
    import functools

    from histosynth.artifacts import read_manifest
    from histosynth.data.derived_labels import DERIVED_CLASSES, stain_label_source

    slides = read_manifest(tiles_dir, "tiles").get("slides", {})
    sources = {
        s: functools.partial(stain_label_source, info["path"], info["slide_mpp"])
        for s, info in slides.items()
    }
    return DERIVED_CLASSES, sources, "derived-stain-v1"


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
    split_file,
    seed,
    overwrite,
    preset=None,
    config_file=None,
    overrides=(),
    **run,
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
    from histosynth.data.build import DatasetConfig, build_dataset

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
    config = resolve(
        DatasetConfig,
        preset,
        config_file,
        overrides,
        seed=seed,
        sampling=sampling or None,
        fill=fill if fill not in (None, "none") else None,
    )
    extra: dict = {}
    if annotations is not None:
        scheme, sources, labels_id = _annotation_sources(tiles, annotations, classes)
        class_map = scheme.classes
        if fill is None and config.fill is None and scheme.fill is not None:
            config = dataclasses.replace(config, fill=scheme.fill)
    elif derived is not None:
        class_map, sources, labels_id = _derived_sources(tiles)
    else:
        class_map, sources, labels_id = _pseudo_sources(pseudo_maps, k)
        extra = _pseudo_hierarchy(pseudo_maps, k)
    if fill == "none":
        config = dataclasses.replace(config, fill=None)
    splits = None
    if split_file is not None:
        from histosynth.data.splits import read_split_file

        splits = read_split_file(split_file)
    runner = make_stage_executor(**run)
    try:
        summary, manifest = build_dataset(
            tiles,
            out,
            sources,
            class_map,
            config,
            labels_id=labels_id,
            splits=splits,
            overwrite=overwrite,
            executor=runner,
            extra_json=extra,
        )
    finally:
        runner.close()
    click.echo(summary.describe("slides"))
    counts = manifest["counts"]
    per_split = ", ".join(f"{s}: {counts.get('split_' + s, 0)}" for s in ("train", "val", "test"))
    click.echo(f"{counts['patches']} patches in {out} ({per_split})")
    if manifest.get("unlabelled"):
        click.echo(
            f"{len(manifest['unlabelled'])} slides without labels skipped: {', '.join(manifest['unlabelled'])}"
        )
    if not summary.ok:
        raise SystemExit(1)
