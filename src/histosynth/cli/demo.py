"""``histosynth demo``: the main job, end to end on real H&E, within a time budget."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--minutes", default=15.0, show_default=True, help="Time budget on this machine.")
@click.option("--out", default="histosynth-demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a setting of the demo's run, e.g. --set n_samples=32 or --set train.run.threads=1 "
              "(repeatable; the keys of `histosynth run --print-config`).")  # fmt: skip
def command(minutes: float, out: str, overrides: tuple[str, ...]) -> None:
    """Run the whole method on the bundled real slide (CMU-1-Small-Region, CC0): `histosynth run`
    with the demo's settings.

    Both paths (stain-derived annotations; embeddings → clusters → pseudo-maps), one model
    trained with the whole budget (--set 'variants=["map","spatial","tokens"]' trains the
    paper's ablation), sampling with and without crops, evaluation and the HTML report.
    Re-running resumes. The last line names the report.
    """
    from histosynth.config import build_config
    from histosynth.demo import DemoPlan, run_demo

    plan = build_config(DemoPlan, values={"minutes": minutes}, overrides=overrides)
    try:
        report = run_demo(out, plan, echo=click.echo)
    except RuntimeError as exc:  # a failed stage already printed its reason
        raise click.ClickException(str(exc)) from None
    click.echo(f"report: {report}")
