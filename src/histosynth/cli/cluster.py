"""``histosynth cluster``: embeddings → tissue-type clusters, pseudo-maps and an HTML report."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options


def _levels(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


@click.command("cluster")
@click.argument("embeddings", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output cluster folder.")
@click.option("--k", type=int, default=None, help="Clusters at the finest level; default 100.")
@click.option("--levels", callback=_levels, default=None, metavar="K1,K2,...",
              help="Coarser nested levels (hierarchical mode), e.g. 5,10,20,50.")  # fmt: skip
@click.option(
    "--per-slide", type=int, default=None, help="At most N vectors per slide to fit on; default 1000."
)
@click.option("--min-tissue", type=float, default=None, help="Sub-tiles below this tissue fraction are id 0.")
@click.option("--seed", type=int, default=None, help="k-means seed; default 0.")
@click.option("--model", "model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Apply this model.npz (from an earlier run) instead of fitting.")  # fmt: skip
@click.option("--truth-masks", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of <slide>.labels.png + classes.json: report purity against them.")  # fmt: skip
@click.option("--no-report", is_flag=True, help="Skip the HTML report.")
@click.option("--overwrite", is_flag=True, help="Replace an output folder that holds another artefact.")
@config_options(["flat", "hierarchical", "small"])
def command(embeddings: str, out: str, model: str | None, truth_masks: str | None, no_report: bool,
            overwrite: bool, preset: str | None, config_file: str | None, overrides: tuple[str, ...],
            **values: object) -> None:  # fmt: skip
    """Cluster the sub-tile embeddings in EMBEDDINGS into tissue types and paint pseudo-maps.

    Fits faiss k-means (seeded) on a diversity-aware sample of at most --per-slide vectors per
    slide and applies it to all; --levels adds nested coarser maps. Writes model.npz (reusable
    on new slides with --model), per-slide label grids for `histosynth dataset --pseudo-maps`,
    and report/index.html (mosaics, sizes, silhouette, stability across seeds, purity).
    """
    from histosynth.cli.options import resolve
    from histosynth.cluster.stage import ClusterConfig, run_cluster

    if no_report:
        values["report"] = {"enabled": False}
    cfg = resolve(ClusterConfig, preset, config_file, overrides, **values)
    truth = _truth(embeddings, truth_masks) if truth_masks else None
    manifest = run_cluster(embeddings, out, cfg, model=model, truth=truth, overwrite=overwrite)
    c = manifest["counts"]
    click.echo(f"{out}: {c['vectors']} sub-tiles of {c['slides']} slides clustered at k = {manifest['levels']} "
               f"({c['tissue_vectors']} tissue), {c['failed']} failed")  # fmt: skip
    if "report" in manifest:
        click.echo(f"report: {out}/{manifest['report']['path']}")
    for slide, reason in manifest.get("failures", {}).items():
        click.echo(f"  failed: {slide}: {reason}", err=True)


def _truth(embeddings: str, folder: str) -> dict:
    from histosynth.cluster.truth import load_truth_masks
    from histosynth.embed.store import EmbeddingStore
    from histosynth.embed.subtiles import default_opener

    store = EmbeddingStore(embeddings)
    first = {s: store.slide_index(s).iloc[0] for s in store.slides}
    slides = {s: (str(r.slide_path), float(r.slide_mpp)) for s, r in first.items()}
    return load_truth_masks(folder, slides, default_opener)
