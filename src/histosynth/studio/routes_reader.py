"""HTTP routes of the reader-study page: start or resume a rater, show items, save ratings.

The key is never served: the page learns item ids and images only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from histosynth.studio.reader_study import Rating, ReaderStudy
from histosynth.studio.routes_studio import json_body

__all__ = ["reader_router"]


def reader_router(study: ReaderStudy) -> APIRouter:
    """Routes under ``/api/study`` serving ``study``."""
    r = APIRouter(prefix="/api/study")

    def progress(rater: str) -> dict[str, Any]:
        try:
            return study.progress(rater)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    @r.post("/session")
    async def session(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        return await run_in_threadpool(progress, str(body.get("rater", "")))

    @r.get("/images/{item}.png")
    def image(item: str) -> FileResponse:
        path = study.image_path(item)
        if path is None:
            raise HTTPException(404, f"item {item!r} is not part of this study")
        return FileResponse(path, media_type="image/png")

    @r.post("/rate")
    async def rate(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        try:
            seconds = body.get("seconds")
            rating = Rating(
                str(body["rater"]),
                str(body["item"]),
                body["realism"],
                str(body["guess"]),
                float(seconds) if seconds is not None else None,
            )
            await run_in_threadpool(study.add, rating)
        except KeyError as exc:
            raise HTTPException(400, f"the rating lacks the field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from None
        return await run_in_threadpool(progress, rating.rater)

    return r
