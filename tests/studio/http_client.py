"""A tiny HTTP client for the studio tests (urllib, no extra dependency)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid


def call(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET (or a POST when ``data`` is given); errors are returned, not raised."""
    req = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post_json(url: str, obj) -> tuple[int, dict]:
    status, _, body = call(url, json.dumps(obj).encode(), {"Content-Type": "application/json"})
    return status, json.loads(body)


def get_json(url: str) -> tuple[int, dict]:
    status, _, body = call(url)
    return status, json.loads(body)


def post_file(url: str, fields: dict[str, str], name: str, content: bytes) -> tuple[int, dict]:
    """A multipart/form-data POST with text ``fields`` and one file."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    data = b"".join(parts) + f"--{boundary}--\r\n".encode()
    status, _, body = call(url, data, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return status, json.loads(body)
