"""HTTP routes of the studio page: config, crops, uploads, held-out maps, generation, downloads."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from histosynth.studio.session import StudioSession
from histosynth.studio.uploads import UploadError

__all__ = ["studio_router"]

# Too-large uploads up to this size are read and discarded before the 413 answer.
_DRAIN_LIMIT = 256 * 2**20
_DOWNLOAD_NAMES = {"image.png", "label.png", "label-colour.png", "annotation.geojson", "provenance.json"}
# The image and its GeoJSON download under one stem (job3.png, job3.geojson): saved side by side,
# `histosynth tile job3.png` and `dataset --annotations` pair them, as QuPath pairs an image with
# its annotations.
_SAVED_AS = {"image.png": "{job}.png", "annotation.geojson": "{job}.geojson"}


async def json_body(request: Request, max_bytes: int = 2**20) -> dict[str, Any]:
    """The request's JSON object, or a 400 (413 when over ``max_bytes``) with one sentence."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        await _drain(request, int(declared))
        raise HTTPException(413, f"the request is larger than {max_bytes:,} bytes")
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    return body


async def _drain(request: Request, declared: int) -> None:
    """Read away a refused body (up to a bound) so the client gets the answer, not a reset."""
    if declared <= _DRAIN_LIMIT:
        async for _ in request.stream():
            pass


def studio_router(session: StudioSession) -> APIRouter:
    """Routes under ``/api`` serving ``session``."""
    r = APIRouter(prefix="/api")

    @r.get("/config")
    def config() -> dict[str, Any]:
        return session.config()

    @r.get("/crops")
    def crops(class_id: int, offset: int = 0, limit: int = 24) -> dict[str, Any]:
        if class_id not in session.classes.ids:
            raise HTTPException(404, f"class id {class_id} is not a class of the model")
        return session.crop_listing(class_id, offset, limit)

    @r.get("/crops/{crop_id}.png")
    def crop_png(crop_id: str) -> Response:
        data = session.crop_png(crop_id)
        if data is None:
            raise HTTPException(404, f"crop {crop_id!r} is unknown or its upload has expired")
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @r.post("/uploads")
    async def upload(request: Request) -> dict[str, Any]:
        limit = session.uploads.limits.max_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
            await _drain(request, int(declared))
            raise HTTPException(413, f"the upload is larger than the {limit / 2**20:.0f} MB limit")
        try:
            form = await request.form(max_files=1, max_fields=4)
        except Exception:  # malformed multipart bodies raise parser-specific errors
            raise HTTPException(400, "the upload is not a valid form with one file") from None
        try:
            class_id, name, data = await _read_upload(form, limit, session.classes.ids)
        finally:
            await form.close()
        item = await run_in_threadpool(session.uploads.add, data, name, class_id)
        h, w = item.pixels.shape[:2]
        return {"id": item.id, "class_id": class_id, "name": name, "width": w, "height": h}

    @r.get("/maps")
    def maps() -> list[dict[str, Any]]:
        return session.maps.listing() if session.maps is not None else []

    @r.get("/maps/{index}/label")
    def map_label(index: int) -> dict[str, Any]:
        label = _map(session, index)
        return {"index": index, "size": session.size, "label": base64.b64encode(label.tobytes()).decode()}

    @r.get("/maps/{index}/preview.png")
    def map_png(index: int) -> Response:
        from histosynth.data.patch_dataset import encode_png

        png = encode_png(session.classes.colorize(_map(session, index)))
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @r.post("/generate", status_code=202)
    async def generate(request: Request) -> dict[str, Any]:
        # the map travels as base64 of size² bytes: 4/3 of that, plus room for the other fields
        body = await json_body(request, max_bytes=2 * session.size**2 + 2**20)
        try:
            job = await run_in_threadpool(session.submit, body)
        except KeyError as exc:
            raise HTTPException(400, f"the request lacks the field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, UploadError):
                raise
            raise HTTPException(400, f"a field of the request has the wrong type ({exc})") from None
        return session.job_status(job)

    @r.get("/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        return session.job_status(_job(session, job_id))

    @r.get("/jobs/{job_id}/{name}")
    def download(job_id: str, name: str, download: bool = False) -> Response:
        job = _job(session, job_id)
        got = session.result_file(job, name) if name in _DOWNLOAD_NAMES else None
        if got is None:
            raise HTTPException(404, f"{name!r} is not available for {job_id} (state: {job.state})")
        data, media = got
        saved_as = _SAVED_AS.get(name, "{job}-" + name).format(job=job_id)
        headers = {"Content-Disposition": f'attachment; filename="{saved_as}"'} if download else {}
        return Response(data, media_type=media, headers=headers)

    return r


async def _read_upload(form: Any, limit: int, class_ids: list[int]) -> tuple[int, str, bytes]:
    """Class id, file name and at most ``limit + 1`` bytes of an upload form."""
    file, class_field = form.get("file"), form.get("class_id")
    if file is None or isinstance(file, str):
        raise HTTPException(400, "choose an image file to upload")
    if not isinstance(class_field, str) or not class_field.lstrip("-").isdigit():
        raise HTTPException(400, "the upload must say which class it shows")
    class_id = int(class_field)
    if class_id not in class_ids:
        raise HTTPException(400, f"class id {class_id} is not a class of the model")
    return class_id, file.filename or "upload", await file.read(limit + 1)


def _map(session: StudioSession, index: int):
    if session.maps is None:
        raise HTTPException(404, "no held-out maps were given (start the studio with --maps DIR)")
    try:
        return session.maps.label(index)
    except IndexError as exc:
        raise HTTPException(404, str(exc)) from None


def _job(session: StudioSession, job_id: str):
    job = session.queue.get(job_id)
    if job is None:
        raise HTTPException(404, f"{job_id!r} is unknown or was forgotten (only recent results are kept)")
    return job


def error_handlers() -> dict[Any, Any]:
    """Exception → JSON response mappings shared by the app."""
    from histosynth.studio.jobs import QueueFullError

    async def bad_input(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    async def busy(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429)

    return {UploadError: bad_input, QueueFullError: busy}
