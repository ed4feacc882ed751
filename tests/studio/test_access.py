"""Only the studio's user can drive it: Host and Origin are checked and a per-launch token is
required, over raw HTTP and in a real browser visiting a hostile page."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the studio's web stack (fastapi) is not installed")

from histosynth.studio.access import Access
from histosynth.studio.app import create_app
from histosynth.studio.server import ServerThread
from tests.studio.conftest import painted_label


def raw(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    """(status, headers, body) of one request to 127.0.0.1:``port`` sent exactly as given (Host included)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        headers = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
            headers["Content-Length"] = str(len(body))
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def served(session, study):
    with ServerThread(create_app(session, study)) as srv:
        yield srv


def generate_body() -> bytes:
    return json.dumps({"label": base64.b64encode(painted_label().tobytes()).decode(), "crops": [],
                       "guidance_map": 1.0, "guidance_crops": 1.0, "steps": 1, "sampler": "ddim", "seed": 1}).encode()  # fmt: skip


def test_token_is_required(served, session, study):
    auth = {"Authorization": f"token {served.token}"}
    assert raw(served.port, "GET", "/api/config", auth)[0] == 200
    for path in ("/api/config", "/api/maps", "/", "/reader", f"/api/study/images/{study.items[0]}.png"):
        status, _, body = raw(served.port, "GET", path)
        assert status == 401 and b"needs its token" in body, (path, status)
    assert raw(served.port, "GET", "/api/config", {"Authorization": "token " + "0" * 48})[0] == 401
    # state-changing requests without it change nothing
    assert raw(served.port, "POST", "/api/generate", body=generate_body())[0] == 401
    rating = {"rater": "eve", "item": study.order("eve")[0], "realism": 5, "guess": "real"}
    assert raw(served.port, "POST", "/api/study/rate", body=json.dumps(rating).encode())[0] == 401
    assert session.queue.get("job1") is None and study.ratings() == []
    # static code holds nothing of the user's: served without the token
    assert raw(served.port, "GET", "/static/studio.js")[0] == 200


def test_printed_url_sets_a_strict_cookie_and_leaves_the_address_bar(served):
    status, headers, _ = raw(served.port, "GET", f"/reader?token={served.token}")
    assert status == 303 and headers["location"] == "/reader"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"{Access(served.token).cookie}={served.token}")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    jar = {"Cookie": cookie.split(";")[0]}
    assert raw(served.port, "GET", "/api/config", jar)[0] == 200


def test_foreign_host_is_refused(served):
    """DNS rebinding: a page whose domain now points at 127.0.0.1 sends its own Host."""
    auth = {"Authorization": f"token {served.token}"}
    for host in ("evil.example.com", f"evil.example.com:{served.port}", "127.0.0.1.evil.example.com"):
        status, _, body = raw(served.port, "GET", "/api/config", {**auth, "Host": host})
        assert status == 403 and b"does not answer to the host" in body, host
    for host in (f"localhost:{served.port}", f"[::1]:{served.port}"):
        assert raw(served.port, "GET", "/api/config", {**auth, "Host": host})[0] == 200, host


def test_foreign_origin_cannot_change_anything(served, session, study, generator):
    auth = {"Authorization": f"token {served.token}"}
    for origin in ("http://evil.example.com", "null", f"http://localhost:{served.port + 1}"):
        status, _, body = raw(
            served.port, "POST", "/api/generate", {**auth, "Origin": origin}, generate_body()
        )
        assert status == 403 and b"another site" in body, origin
    rating = {"rater": "eve", "item": study.order("eve")[0], "realism": 5, "guess": "real"}
    status, _, _ = raw(served.port, "POST", "/api/study/rate", {**auth, "Origin": "http://evil.example.com"},
                       json.dumps(rating).encode())  # fmt: skip
    assert status == 403 and study.ratings() == [] and generator.calls == []
    own = f"http://127.0.0.1:{served.port}"
    assert (
        raw(served.port, "POST", "/api/study/rate", {**auth, "Origin": own}, json.dumps(rating).encode())[0]
        == 200
    )


def test_access_for_other_machines():
    remote = Access.serving("0.0.0.0")
    assert remote.host_allowed("192.168.1.20:8765") and remote.host_allowed("[fe80::1]:8765")
    assert remote.host_allowed("localhost:8765") and not remote.host_allowed("evil.example.com:8765")
    local = Access.serving("127.0.0.1")
    assert not local.host_allowed("192.168.1.20:8765") and local.host_allowed("127.0.0.1:1")
    assert Access().token != Access().token and len(Access().token) == 48


def test_reader_study_served_to_other_machines_keeps_the_token(study):
    """`reader-study serve --host 0.0.0.0`: the printed URL carries the token; nothing works without it."""
    args = [sys.executable, "-m", "histosynth", "reader-study", "serve", str(study.folder), "--host", "0.0.0.0",
            "--port", "0"]  # fmt: skip
    env = {**os.environ, "HISTOSYNTH_PROGRESS": "0", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and len(lines) < 2:
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        local = re.search(r"http://127\.0\.0\.1:(\d+)/reader\?token=([0-9a-f]{48})", text)
        remote = re.search(r"from other machines: http://([^:/]+):(\d+)/reader\?token=([0-9a-f]{48})", text)
        assert local and remote and remote.group(3) == local.group(2), text
        port, token, name = int(local.group(1)), local.group(2), remote.group(1)
        assert raw(port, "GET", "/reader")[0] == 401
        status, headers, _ = raw(port, "GET", f"/reader?token={token}", {"Host": f"{name}:{port}"})
        assert status == 303, (name, status)
        evil = {"Host": f"evil.example.com:{port}", "Authorization": f"token {token}"}
        assert raw(port, "GET", "/api/study/images/x.png", evil)[0] == 403
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


HOSTILE = {  # path → page of another site that tries to rate in the user's name
    "/fetch": """<!doctype html><html><body><script>
fetch("{target}/api/study/rate", {{method: "POST", mode: "no-cors", credentials: "include",
  body: JSON.stringify({{rater: "mallory", item: "{item}", realism: 1, guess: "synthetic"}})}})
  .finally(() => {{ document.title = "sent"; }});
</script></body></html>""",
    "/form": """<!doctype html><html><body onload="document.forms[0].submit()">
<form method="POST" enctype="text/plain" action="{target}/api/study/rate">
<input name='{{"rater":"eve","item":"{item}","realism":5,"guess":"real","x":"' value='"}}'></form></body></html>""",
}


def serve_hostile(pages: dict[str, bytes]) -> http.server.ThreadingHTTPServer:
    class Hostile(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(pages[self.path])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_hostile_page_in_the_browser_cannot_drive_the_studio(browser_ok, study):
    """In Chromium: the user opens the reader page (the token cookie is set), then visits pages
    of another site that post ratings to it by fetch and by a form; nothing is saved."""
    from tests.studio.browser import chromium

    with ServerThread(create_app(study=study)) as srv, chromium() as browser:
        item = study.order("eve")[0]
        evil = serve_hostile({p: h.format(target=srv.url, item=item).encode() for p, h in HOSTILE.items()})
        site = f"http://localhost:{evil.server_address[1]}"
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(srv.page("/reader"))
            page.wait_for_selector("body[data-ready='1']")  # the user's own page works
            assert any(c["httpOnly"] for c in context.cookies())
            page.goto(site + "/fetch")
            page.wait_for_function("document.title === 'sent'")
            with page.expect_navigation(url=srv.url + "/api/study/rate"):
                page.goto(site + "/form")
            assert "another site" in page.content()
            assert study.ratings() == []
            fresh = browser.new_page()  # a browser that never opened the printed URL
            fresh.goto(srv.url + "/reader")
            assert "needs its token" in fresh.content()
            context.close()
        finally:
            evil.shutdown()
            evil.server_close()
