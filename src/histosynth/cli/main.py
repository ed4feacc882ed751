"""The ``histosynth`` click group with lazily loaded commands.

Commands are listed in ``COMMANDS`` (name → module) and imported only when run or when help is
shown, so ``histosynth --help`` stays fast. A command whose module is not present in this build
is not listed: ``--help`` shows only commands that work.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

# name -> module defining a click command called ``command``; order is the pipeline's.
COMMANDS: dict[str, str] = {
    "tile": "histosynth.cli.tile",
    "dataset": "histosynth.cli.dataset",
    "domains": "histosynth.cli.domains",
    "embed": "histosynth.cli.embed",
    "cluster": "histosynth.cli.cluster",
    "train-codec": "histosynth.cli.train_codec",
    "train": "histosynth.cli.train",
    "sample": "histosynth.cli.sample",
    "evaluate": "histosynth.cli.evaluate",
    "report": "histosynth.cli.report",
    "run": "histosynth.cli.run",
    "demo": "histosynth.cli.demo",
    "synth-slide": "histosynth.cli.synth_slide",
    "studio": "histosynth.cli.studio",
    "reader-study": "histosynth.cli.reader_study",
    "doctor": "histosynth.cli.doctor",
}


class LazyGroup(click.Group):
    """A group that imports each command's module only when it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, mod in COMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        mod = COMMANDS.get(cmd_name)
        if mod is None or importlib.util.find_spec(mod) is None:
            return None
        return importlib.import_module(mod).command


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="histosynth")
def cli() -> None:
    """histosynth: synthetic, pixel-annotated histopathology data.

    Slides → tiles → patch dataset (annotated, or pseudo-maps from embeddings + clusters) →
    train the map + crop conditioned latent diffusion model → sample → evaluate → report.
    Every stage writes a folder with a manifest.json; re-running a command resumes it.
    """


def _run(argv: list[str] | None) -> None:
    """Run one command; free the folders it claimed however it ends; name a full disk."""
    from histosynth.disk import as_disk_full, is_disk_full
    from histosynth.errors import USER_ERRORS
    from histosynth.locking import releasing_new_locks

    with releasing_new_locks():
        try:
            cli.main(args=argv, prog_name="histosynth", standalone_mode=False)
        except Exception as exc:  # a library writing a file itself (torch, safetensors) filled the disk
            if is_disk_full(exc) and not isinstance(exc, USER_ERRORS):
                raise as_disk_full(exc) from exc  # here, while the folder being written is still held
            raise


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one sentence and exit 2; HISTOSYNTH_DEBUG=1 shows tracebacks."""
    from histosynth.errors import USER_ERRORS

    try:
        _run(argv)
    except click.exceptions.Abort:
        click.echo("interrupted; re-run the same command to resume", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except USER_ERRORS as exc:
        if os.environ.get("HISTOSYNTH_DEBUG"):
            raise
        click.echo(f"histosynth: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; re-run the same command to resume", err=True)
        sys.exit(130)
