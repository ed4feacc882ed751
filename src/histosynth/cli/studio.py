"""``histosynth studio``: a local web page to paint a map, pick crops and generate."""

from __future__ import annotations

import contextlib

import click


def web_deps() -> None:
    """Raise one clear sentence when the web stack is not installed."""
    import importlib.util

    for module, package in (
        ("fastapi", "fastapi"),
        ("uvicorn", "uvicorn"),
        ("python_multipart", "python-multipart"),
    ):
        if importlib.util.find_spec(module) is None:
            raise click.ClickException(
                f"the studio needs fastapi, uvicorn and python-multipart ({package} is missing): "
                "pip install fastapi uvicorn python-multipart"
            )


def run_app(app, port: int, path: str = "/", host: str | None = None) -> None:
    """Serve ``app`` on ``host`` (127.0.0.1) until Ctrl-C; print the URL with the launch token."""
    import socket

    from histosynth.studio.server import HOST, bind, serve

    host = host or HOST
    try:
        sock = bind(port, host)
    except OSError as exc:
        raise click.ClickException(str(exc)) from None
    port = sock.getsockname()[1]
    access = app.state.access
    click.echo(f"histosynth studio: open {access.url(f'http://{HOST}:{port}', path)}  (Ctrl-C stops it)")
    if host != HOST:
        name = socket.getfqdn() if host in ("0.0.0.0", "::") else host
        click.echo(f"from other machines: {access.url(f'http://{name}:{port}', path)}  (the token is needed)")
    # uvicorn re-raises Ctrl-C after its graceful shutdown, or returns when the signal came while
    # it was restoring its handlers: say "stopped" either way.
    with contextlib.suppress(KeyboardInterrupt):
        serve(app, sock)
    click.echo("histosynth studio: stopped")


def load_synthesizer(checkpoint: str, device: str):
    """The model from ``checkpoint`` (imported here: torch loads only when the studio starts)."""
    from histosynth.sample.synthesis import Synthesizer

    return Synthesizer.from_checkpoint(checkpoint, device=device)


@click.command("studio")
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A trained model checkpoint folder.",
)
@click.option(
    "--crop-bank",
    "crop_bank",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A crop bank folder (histosynth.sample.crop_bank) with the model's classes.",
)
@click.option(
    "--maps",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A patch dataset whose held-out maps the page can load.",
)
@click.option(
    "--maps-split", default="test", show_default=True, help="Split of --maps offered ('all': every row)."
)
@click.option(
    "--reader-study",
    "reader_study",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Also serve this reader study at /reader.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (the studio never listens on other interfaces; its URL carries a token).",
)
@click.option("--device", default="cpu", show_default=True, help="Torch device of the model.")
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(0.1, 256),
    default=8.0,
    show_default=True,
    help="Largest uploaded crop.",
)
def command(
    checkpoint: str,
    crop_bank: str,
    maps: str | None,
    maps_split: str,
    reader_study: str | None,
    port: int,
    device: str,
    max_upload_mb: float,
) -> None:
    """Paint a semantic map, pick exemplar crops, generate and download: a page on 127.0.0.1.

    The URL printed at start carries a token, new at every launch (as Jupyter's does): only a
    browser that opened it can use the page; other sites and other host names are refused.

    The page offers one brush per class, fill and erase, held-out maps (--maps), the crop
    bank's crops per class with their source, uploads, both guidance scales, steps, sampler and
    seed. Requests run one at a time in the background; more are queued. Downloads: the image
    PNG, the label map PNG (class ids), QuPath GeoJSON and a provenance record.
    """
    web_deps()
    from histosynth.sample.crop_bank import CropBank
    from histosynth.studio.app import create_app
    from histosynth.studio.reader_study import ReaderStudy
    from histosynth.studio.session import MapSource, StudioSession
    from histosynth.studio.uploads import UploadLimits, UploadStore

    click.echo(f"loading {checkpoint} ...")
    generator = load_synthesizer(checkpoint, device)
    source = MapSource(maps, maps_split, int(generator.image_size)) if maps else None
    uploads = UploadStore(limits=UploadLimits(max_bytes=int(max_upload_mb * 2**20)))
    session = StudioSession(generator, CropBank(crop_bank), source, uploads)
    study = ReaderStudy(reader_study) if reader_study else None
    try:
        run_app(create_app(session, study), port)
    finally:
        session.close()
