"""``histosynth run``: your slides through the whole method, one command, resumable."""

from __future__ import annotations

import click

from histosynth.cli.options import annotations_option, classes_option, config_options, preset_choices


def _csv(text: str | None, kind: type = str) -> list | None:
    return None if text is None else [kind(v.strip()) for v in text.split(",") if v.strip()]


@click.command("run")
@click.argument("slides", nargs=-1, type=click.Path(exists=True))
@click.option(
    "-o", "--out", type=click.Path(file_okay=False), help="The run's folder (re-running resumes it)."
)
@annotations_option
@classes_option
@click.option(
    "--minutes", type=float, default=None, help="Time budget of the whole run on this machine [60]."
)
@click.option(
    "--steps", type=int, default=None, help="Train each variant this many steps instead of --minutes."
)
@click.option(
    "--variants",
    default=None,
    metavar="A,B",
    help="Conditioning variants to train: map, spatial, tokens [tokens].",
)
@click.option(
    "--samples", type=int, default=None, help="Synthetic patches per variant, on held-out maps [64]."
)
@click.option(
    "--large", type=int, default=None, help="Large images per variant (pyramidal TIFF + labels) [0]."
)
@click.option("--large-size", type=int, default=None, help="Side of the large images in pixels [1024].")
@click.option("--split", type=click.Choice(["auto", "slide", "region"]), default=None,
              help="Split by slide, or by region within slides [auto: by slide from 3 slides up].")  # fmt: skip
@click.option(
    "--encoder", default=None, help="Tile encoder of the unannotated path [handcrafted: no weights]."
)
@click.option("--k", "clusters", type=int, default=None, help="Tissue types of the unannotated path [8].")
@click.option(
    "--levels", default=None, metavar="K1,K2", help="Coarser levels of the cluster hierarchy, e.g. 4,8."
)
@click.option("--mpp", type=float, default=None, help="Level-0 µm/px for slides whose files do not say.")
@click.option(
    "--workers", type=int, default=None, help="Processes for tiling, datasets, embedding, sampling [1]."
)
@click.option(
    "--skip-bad-slides", is_flag=True, help="Leave out unreadable slides and malformed annotations."
)
@click.option(
    "--overwrite", is_flag=True, help="Replace stage folders that hold other settings (after a change)."
)
@click.option("--dry-run", is_flag=True, help="Check everything and show the plan; run nothing.")
@click.option(
    "--print-config", is_flag=True, help="Print the settings as TOML (for --config) and every stage's config."
)
@config_options(preset_choices=preset_choices("histosynth.pipeline.config", "RunConfig"))
def command(slides, out, annotations, classes, minutes, steps, variants, samples, large, large_size, split,
            encoder, clusters, levels, mpp, workers, skip_bad_slides, overwrite, dry_run, print_config, preset=None,
            config_file=None, overrides=()) -> None:  # fmt: skip
    """Take SLIDES (files or folders) through the whole method into OUT.

    With --annotations DIR --classes C (ASAP/Camelyon16 XML, QuPath GeoJSON or label masks,
    one per slide), the model trains on their maps; without, on pseudo-maps from tile
    embeddings and tissue clusters. Then sampling on held-out maps, evaluation against the
    held-out real patches and an HTML report. A plan checks everything first and shows what
    will run and what it costs. Every stage folder is the one its own command writes; re-running
    the same command resumes. The last line names the report.

    Presets: cpu (the default: 64 px patches, a model that learns tissue in minutes on a
    laptop), paper (the paper's 256 px patches and UNet, for a GPU), test (the plumbing in
    seconds). See docs/run.md.
    """
    from pathlib import Path

    from histosynth.cli.options import resolve
    from histosynth.pipeline.config import RunConfig

    values = dict(
        minutes=minutes, train_steps=steps, variants=_csv(variants), n_samples=samples, large_images=large,
        large_size=large_size, split=split, encoder=encoder, clusters=clusters, levels=_csv(levels, int),
        slide_mpp=mpp,
    )  # fmt: skip
    cfg = resolve(RunConfig, preset, config_file, overrides, **values)
    if print_config:
        click.echo(
            _config_text(cfg, slides, Path(out or "OUT"), annotations, classes, skip_bad_slides), nl=False
        )
        return
    if not slides or out is None:
        raise click.UsageError("give the slides and the run's folder: histosynth run SLIDES... -o OUT")
    from histosynth.pipeline.plan import make_plan
    from histosynth.pipeline.runner import StepFailed, run_plan
    from histosynth.pipeline.summary import plan_summary

    plan = make_plan(slides, out, cfg, annotations=annotations, classes=classes, skip_bad=skip_bad_slides)
    click.echo(plan_summary(plan))
    if dry_run:
        return
    from histosynth.cli.options import make_stage_executor

    with make_stage_executor(executor_workers=workers) as executor:
        try:
            parallel = executor if (workers or 1) > 1 else None
            report = run_plan(plan, echo=click.echo, executor=parallel, overwrite=overwrite)
        except StepFailed as exc:  # the stage already printed its reason
            raise click.ClickException(str(exc)) from None
    click.echo(f"report: {report}")


def _config_text(cfg, slides, out, annotations, classes, skip_bad) -> str:
    """The settings as TOML, then every stage's config (for these slides when given)."""
    from histosynth.pipeline.print_config import config_toml, stages_toml

    if slides:
        from histosynth.pipeline.plan import make_plan

        steps = make_plan(slides, out, cfg, annotations=annotations, classes=classes, skip_bad=skip_bad,
                          estimate=False).steps  # fmt: skip
        note = ""
    else:
        from histosynth.pipeline.checks import label_source
        from histosynth.pipeline.settings import split_mode
        from histosynth.pipeline.steps import make_steps

        source = label_source(cfg, annotations, classes)
        steps = make_steps(cfg, out, {}, source, split_mode(cfg, 1), labels=(annotations, classes))
        note = "\n# (no slides given: the split is shown as for one slide)\n"
    return config_toml(cfg) + note + stages_toml(steps)
