"""``histosynth cluster``: embeddings → tissue-type clusters, pseudo-maps and an HTML report."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options, echo_failures


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
@click.option(
    "--annotations",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Per-slide annotations (as for `tile`/`dataset`): the report measures purity against them.",
)
@click.option("--classes", default=None, help="classes.json or a preset, for --annotations.")  # fmt: skip
@click.option("--no-report", is_flag=True, help="Skip the HTML report.")
@click.option("--overwrite", is_flag=True, help="Replace an output folder that holds another artefact.")
@config_options(["flat", "hierarchical", "small"])
def command(embeddings: str, out: str, model: str | None, annotations: str | None, classes: str | None, no_report: bool,
            overwrite: bool, preset: str | None, config_file: str | None, overrides: tuple[str, ...],
            **values: object) -> None:  # fmt: skip
    """Cluster the sub-tile embeddings in EMBEDDINGS into tissue types and paint pseudo-maps.

    Fits faiss k-means (seeded) on a diversity-aware sample of at most --per-slide vectors per
    slide and applies it to all; --levels adds nested coarser maps. Writes model.npz (reusable
    on new slides with --model), per-slide label grids for `histosynth dataset --pseudo-maps`,
    and report/index.html (mosaics, sizes, silhouette, stability across seeds, and purity against
    --annotations when given).
    """
    from histosynth.cli.options import resolve
    from histosynth.cluster.stage import ClusterConfig, annotation_truth, run

    if no_report:
        values["report"] = {"enabled": False}
    cfg = resolve(ClusterConfig, preset, config_file, overrides, **values)
    if (annotations is None) != (classes is None):
        raise click.UsageError("--annotations and --classes go together")
    truth = annotation_truth(embeddings, annotations, classes) if annotations else None
    result = run(embeddings, out, cfg, model=model, truth=truth, overwrite=overwrite)
    manifest = result.manifest
    c = manifest["counts"]
    click.echo(f"{out}: {c['vectors']} sub-tiles of {c['slides']} slides clustered at k = {manifest['levels']} "
               f"({c['tissue_vectors']} tissue), {c['failed']} failed")  # fmt: skip
    if "report" in manifest:
        click.echo(f"report: {out}/{manifest['report']['path']}")
    echo_failures(result.summary)
