"""Who may drive the studio: Host and Origin checks and a per-launch token, as Jupyter does.

Listening on 127.0.0.1 is not enough on its own: any web page the user opens can send
requests there (cross-site request forgery), and a page whose domain is re-pointed at
127.0.0.1 (DNS rebinding) can even read the answers. Three checks close both:

1. **Host**: a request must name the studio by an address it answers to: 127.0.0.1, localhost
   or ::1, and, when served to other machines (``--host``), that host, this machine's names and
   any IP address. A rebinding domain is refused, since it is none of these.
2. **Origin**: a request that changes state (POST and the like) from a browser must come from
   the studio's own origin; a cross-site one is refused before any handler runs.
3. **Token**: a random token, new at every launch, is printed in the URL at start
   (``http://127.0.0.1:8765/?token=…``). Opening that URL sets a cookie (``HttpOnly``,
   ``SameSite=Strict``) and redirects to the clean URL; every page and API request must carry
   the token: by that cookie, an ``Authorization: token …`` header, or ``?token=``. The static
   scripts and styles, which hold nothing of the user's, are served without it.

Serving a reader study to other machines (``histosynth reader-study serve --host``) keeps the
token: readers open the printed URL; without it they see a page saying so.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["LOOPBACK", "Access", "install"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PUBLIC_PREFIX = "/static/"


def _hostname(host_header: str) -> str | None:
    """The host part of a Host header (``[::1]:8765`` → ``::1``), lower-case; None if malformed."""
    try:
        return urlsplit(f"//{host_header}").hostname
    except ValueError:
        return None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Access:
    """The token and the host names of one studio launch.

    Attributes
    ----------
    token
        The per-launch secret (48 hex digits).
    hosts
        Host names the studio answers to.
    any_ip
        Also answer to any IP-address Host (serving to other machines: readers type an address,
        and an address cannot be re-pointed by DNS).
    """

    token: str = field(default_factory=lambda: secrets.token_hex(24))
    hosts: frozenset[str] = LOOPBACK
    any_ip: bool = False

    @classmethod
    def serving(cls, host: str) -> Access:
        """The checks for a studio bound to ``host`` (loopback, or another interface)."""
        if host in LOOPBACK:
            return cls()
        names = {host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}
        return cls(
            hosts=LOOPBACK | frozenset(n for n in names if n and n not in ("0.0.0.0", "::")), any_ip=True
        )

    @property
    def cookie(self) -> str:
        """The cookie's name: per token, so two studios on one machine keep their own."""
        return "histosynth-" + hashlib.sha256(self.token.encode()).hexdigest()[:12]

    def url(self, base: str, path: str = "/") -> str:
        """The URL to open: ``base + path`` with the token."""
        return f"{base}{path}?{urlencode({'token': self.token})}"

    # --------------------------------------------------------------------- checks
    def host_allowed(self, host_header: str) -> bool:
        name = _hostname(host_header)
        return name is not None and (name in self.hosts or (self.any_ip and _is_ip(name)))

    def origin_allowed(self, origin: str | None, host_header: str) -> bool:
        """A missing Origin (curl, scripts) passes; a browser's must be the studio itself."""
        return origin is None or origin == f"http://{host_header}"

    def token_given(self, headers: Any, query: str, cookies: dict[str, str]) -> str | None:
        """Where a valid token came from (``"cookie"``, ``"header"``, ``"query"``), else None."""
        auth = headers.get("authorization", "")
        candidates = {
            "cookie": cookies.get(self.cookie, ""),
            "header": auth[6:].strip() if auth.lower().startswith("token ") else "",
            "query": dict(parse_qsl(query)).get("token", ""),
        }
        for where, given in candidates.items():
            if given and hmac.compare_digest(given.encode(), self.token.encode()):
                return where
        return None


def install(app: Any, access: Access) -> None:
    """Put the checks in front of every route of the FastAPI ``app``."""
    from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse

    app.state.access = access

    def refuse(status: int, detail: str, api: bool):
        return JSONResponse({"detail": detail}, status) if api else PlainTextResponse(detail, status)

    @app.middleware("http")
    async def check(request: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        path, host = request.url.path, request.headers.get("host", "")
        api = path.startswith("/api/")
        if not access.host_allowed(host):
            return refuse(
                403, f"this studio does not answer to the host {host!r}; open the URL it printed", api
            )
        if request.method not in _SAFE_METHODS and not access.origin_allowed(
            request.headers.get("origin"), host
        ):
            return refuse(403, "a request from another site was refused", api)
        if path.startswith(_PUBLIC_PREFIX):
            return await call_next(request)
        given = access.token_given(request.headers, request.url.query, request.cookies)
        if given is None:
            return refuse(401, "this studio needs its token: open the URL with ?token=… that "
                               "`histosynth studio` (or `reader-study serve`) printed when it started", api)  # fmt: skip
        if given == "query" and request.method == "GET" and not api:
            # A page opened from the printed URL: keep the token in a cookie, drop it from the address bar.
            rest = urlencode([(k, v) for k, v in parse_qsl(request.url.query) if k != "token"])
            response = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(access.cookie, access.token, httponly=True, samesite="strict", path="/")
            return response
        return await call_next(request)
