"""Run the studio app (127.0.0.1 unless told): in the foreground (the CLI) or in a thread (tests, notebooks)."""

from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Any

__all__ = ["HOST", "ServerThread", "bind", "serve"]

HOST = "127.0.0.1"  # the default; other interfaces only for a reader study, always with the token


def bind(port: int, host: str = HOST) -> socket.socket:
    """A listening socket on ``host:port`` (``0``: a free port), or one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"port {port} on {host} is in use; choose another with --port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise OSError(
                f"{host} is not an address of this machine; give one of its addresses to --host"
            ) from None
        raise
    sock.listen(64)
    return sock


def _server(app: Any, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False))


def serve(app: Any, sock: socket.socket, log_level: str = "info") -> None:
    """Serve ``app`` on a socket from :func:`bind` until interrupted; the socket is closed after."""
    with sock:
        _server(app, log_level).run(sockets=[sock])


class ServerThread:
    """Serve an app in a background thread; a context manager that stops it on exit.

    Parameters
    ----------
    app
        The ASGI app.
    port
        ``0`` picks a free port; read the chosen one from :attr:`url`.
    """

    def __init__(self, app: Any, port: int = 0, log_level: str = "warning") -> None:
        self._sock = bind(port)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.token: str = app.state.access.token
        self._server = _server(app, log_level)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def page(self, path: str = "/") -> str:
        """The URL a user opens: ``path`` with the launch token (the page then keeps it in a cookie)."""
        return f"{self.url}{path}?token={self.token}"

    def start(self, timeout: float = 20.0) -> ServerThread:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the studio server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to finish (running the app's shutdown) and wait for it."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
