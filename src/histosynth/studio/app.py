"""The studio web app: the generation page, the reader-study page, or both.

All assets are served from the package (``studio/static``); the page loads nothing from
elsewhere, so it works offline and on an air-gapped workstation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from histosynth.studio.access import Access
from histosynth.studio.access import install as install_access
from histosynth.studio.reader_study import ReaderStudy
from histosynth.studio.session import StudioSession

__all__ = ["STATIC", "create_app"]

STATIC = Path(str(resources.files("histosynth.studio") / "static"))

# The page is self-contained: no script, style, image or connection from another origin.
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)


def create_app(
    session: StudioSession | None = None, study: ReaderStudy | None = None, access: Access | None = None
) -> FastAPI:
    """A FastAPI app serving the studio for ``session`` and/or the reader study ``study``.

    Parameters
    ----------
    session
        The generation side (model, crop bank, maps); its worker stops when the app shuts down.
    study
        A reader study to rate at ``/reader``.
    access
        Host names and the per-launch token (:mod:`histosynth.studio.access`); a new token for
        127.0.0.1 by default. ``app.state.access`` holds it.
    """
    if session is None and study is None:
        raise ValueError("the studio needs a model session, a reader study, or both")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if session is not None:
            session.close()

    app = FastAPI(
        title="histosynth studio", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    install_access(app, access or Access())  # outermost: checked before anything else runs

    if session is not None:
        from histosynth.studio.routes_studio import error_handlers, studio_router

        app.include_router(studio_router(session))
        for exc, handler in error_handlers().items():
            app.add_exception_handler(exc, handler)

    if study is not None:
        from histosynth.studio.routes_reader import reader_router

        app.include_router(reader_router(study))

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        if session is None:
            return RedirectResponse("/reader")
        return FileResponse(STATIC / "index.html")

    @app.get("/reader", include_in_schema=False)
    def reader() -> Response:
        if study is None:
            return Response("no reader study is loaded (start with --reader-study DIR)", 404)
        return FileResponse(STATIC / "reader.html")

    return app
