"""``histosynth doctor``: what this installation can do, offline."""

from __future__ import annotations

import click


@click.command("doctor")
@click.option("--ray-address", default=None, help="Also check that a Ray cluster answers at this address.")
@click.option("--weights-registry", type=click.Path(dir_okay=False), default=None,
              help="A local encoder-weights registry file (TOML) to check.")  # fmt: skip
def command(ray_address: str | None, weights_registry: str | None) -> None:
    """Versions, CPU/GPU, slide readers, encoder weights found (and how to add missing ones)."""
    from histosynth.console import format_table
    from histosynth.doctor import run_checks

    ok = True
    marks = {"ok": "✓", "missing": "·", "error": "✗"}
    for section, rows in run_checks(ray_address=ray_address, weights_registry=weights_registry).items():
        click.echo(click.style(section, bold=True))
        ok &= all(status != "error" for _, status, _ in rows)
        table = format_table(["", "name", "detail"], [[marks[s], n, d] for n, s, d in rows], indent=2)
        click.echo("\n".join(table.splitlines()[1:]))  # the section title says what the columns are
    if not ok:
        raise SystemExit(1)
