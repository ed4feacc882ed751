"""A tiny HTTP client for the studio tests (urllib, no extra dependency)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass


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


def post_json(url: str, obj, headers: dict | None = None) -> tuple[int, dict]:
    status, _, body = call(
        url, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    return status, json.loads(body)


def get_json(url: str, headers: dict | None = None) -> tuple[int, dict]:
    status, _, body = call(url, None, headers)
    return status, json.loads(body)


def post_file(
    url: str, fields: dict[str, str], name: str, content: bytes, headers: dict | None = None
) -> tuple[int, dict]:
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
    status, _, body = call(
        url, data, {"Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})}
    )
    return status, json.loads(body)


@dataclass(frozen=True)
class Client:
    """The functions above with the studio's launch token (``Authorization: token …``)."""

    url: str
    token: str

    def _auth(self, headers: dict | None = None) -> dict:
        return {"Authorization": f"token {self.token}", **(headers or {})}

    def call(self, url: str, data: bytes | None = None, headers: dict | None = None):
        return call(url, data, self._auth(headers))

    def get_json(self, url: str):
        return get_json(url, self._auth())

    def post_json(self, url: str, obj):
        return post_json(url, obj, self._auth())

    def post_file(self, url: str, fields: dict[str, str], name: str, content: bytes):
        return post_file(url, fields, name, content, self._auth())
