"""``histosynth doctor``: what this installation can do, offline."""

from __future__ import annotations

import click


@click.command("doctor")
@click.option("--ray-address", default=None, help="Also check that a Ray cluster answers at this address.")
@click.option("--weights-registry", type=click.Path(dir_okay=False), default=None,
              help="A local encoder-weights registry file (TOML) to check.")  # fmt: skip
def command(ray_address: str | None, weights_registry: str | None) -> None:
    """Versions, CPU/GPU, slide readers, encoder weights found (and how to add missing ones)."""
    from histosynth.doctor import run_checks

    ok = True
    for section, rows in run_checks(ray_address=ray_address, weights_registry=weights_registry).items():
        click.echo(click.style(section, bold=True))
        for name, status, detail in rows:
            mark = {"ok": "✓", "missing": "·", "error": "✗"}[status]
            ok &= status != "error"
            click.echo(f"  {mark} {name:<22} {detail}")
    if not ok:
        raise SystemExit(1)
