"""The studio's HTTP API, served for real on 127.0.0.1 (a free port) and shut down after."""

import base64
import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the studio's web stack (fastapi) is not installed")
pytest.importorskip("python_multipart", reason="python-multipart is not installed")

from histosynth.studio.app import create_app
from histosynth.studio.server import ServerThread
from tests.studio.conftest import painted_label
from tests.studio.http_client import Client


@pytest.fixture
def server(session, study):
    """An authorised client of a served studio (the launch token in every request)."""
    with ServerThread(create_app(session, study)) as srv:
        yield Client(srv.url, srv.token)


def png_bytes(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def wait_done(server: Client, job_id: str) -> dict:
    for _ in range(200):
        _, st = server.get_json(f"{server.url}/api/jobs/{job_id}")
        if st["state"] in ("done", "failed"):
            return st
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_pages_and_assets_are_local(server):
    assert server.url.startswith("http://127.0.0.1:")
    status, headers, body = server.call(server.url + "/")
    assert status == 200 and b"histosynth studio" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    for asset in ("common.js", "paint.js", "studio.js", "reader.js", "style.css"):
        assert server.call(f"{server.url}/static/{asset}")[0] == 200
    # no asset from another origin
    for page in ("/", "/reader"):
        html = server.call(server.url + page)[2].decode()
        assert "http://" not in html and "https://" not in html and "//" not in html.replace("<!--", "")


def test_generate_queue_and_downloads(server, session, generator):
    generator.gate = threading.Event()
    c1 = server.get_json(f"{server.url}/api/crops?class_id=1&limit=1")[1]["items"][0]["id"]
    req = dict(label=base64.b64encode(painted_label().tobytes()).decode(), crops=[{"class_id": 1, "crop": c1}],
               guidance_map=1.0, guidance_crops=1.0, steps=3, sampler="ddim", seed=1)  # fmt: skip
    s1, first = server.post_json(f"{server.url}/api/generate", req)
    s2, second = server.post_json(f"{server.url}/api/generate", {**req, "seed": 2})
    assert s1 == s2 == 202 and second["state"] == "queued" and second["position"] >= 1
    generator.gate.set()
    assert wait_done(server, first["id"])["state"] == "done"
    done = wait_done(server, second["id"])
    assert done["classes"] == [1, 2] and done["step"] == done["total"] == 3
    base = f"{server.url}/api/jobs/{second['id']}"
    status, headers, image = server.call(f"{base}/image.png?download=true")
    assert status == 200 and headers["content-disposition"] == f'attachment; filename="{second["id"]}.png"'
    # saved beside the image under the same stem, the GeoJSON pairs with it (tile + dataset --annotations)
    gj_headers = server.call(f"{base}/annotation.geojson?download=true")[1]
    assert gj_headers["content-disposition"] == f'attachment; filename="{second["id"]}.geojson"'
    label_headers = server.call(f"{base}/label.png?download=true")[1]
    assert label_headers["content-disposition"] == f'attachment; filename="{second["id"]}-label.png"'
    assert np.asarray(Image.open(io.BytesIO(image))).shape == (64, 64, 3)
    label = np.asarray(Image.open(io.BytesIO(server.call(f"{base}/label.png")[2])))
    assert np.array_equal(label, painted_label())
    gj = json.loads(server.call(f"{base}/annotation.geojson")[2])
    assert len(gj["features"]) == 2 and gj["features"][0]["properties"]["objectType"] == "annotation"
    assert server.call(f"{base}/../../config")[0] in (200, 404)  # normalised by the client; never a file read
    assert server.call(f"{base}/secret.txt")[0] == 404
    assert server.get_json(f"{server.url}/api/jobs/job999")[0] == 404


@pytest.mark.parametrize(
    ("payload", "status", "match"),
    [
        (b"not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"label": "AAAA"}', 400, "the model needs 64"),
        (json.dumps({"label": base64.b64encode(bytes(64 * 64)).decode()}).encode(), 400, "lacks the field"),
    ],
)
def test_bad_generate_requests(server, payload, status, match):
    got, _, body = server.call(f"{server.url}/api/generate", payload, {"Content-Type": "application/json"})
    assert got == status and match in json.loads(body)["detail"]


def test_uploads(server):
    ok, got = server.post_file(
        f"{server.url}/api/uploads", {"class_id": "2"}, "c.png", png_bytes(np.zeros((16, 16, 3), np.uint8))
    )
    assert ok == 200 and got["id"].startswith("upload-2-") and (got["width"], got["height"]) == (16, 16)
    assert server.call(f"{server.url}/api/crops/{got['id']}.png")[0] == 200
    bad, got = server.post_file(f"{server.url}/api/uploads", {"class_id": "2"}, "notes.txt", b"plain text")
    assert (
        bad == 400
        and got["detail"] == "'notes.txt' is not an image this studio reads (PNG, JPEG, TIFF, BMP, WEBP)"
    )
    big, got = server.post_file(
        f"{server.url}/api/uploads", {"class_id": "2"}, "big.png", b"\0" * (9 * 2**20)
    )
    assert big == 413 and "larger than the 8 MB limit" in got["detail"]
    nocls, got = server.post_file(f"{server.url}/api/uploads", {"class_id": "7"}, "c.png", b"x")
    assert nocls == 400 and "class id 7" in got["detail"]


def test_maps_and_crops(server):
    maps = server.get_json(f"{server.url}/api/maps")[1]
    assert len(maps) == 4
    got = server.get_json(f"{server.url}/api/maps/0/label")[1]
    assert len(base64.b64decode(got["label"])) == 64 * 64
    assert (
        server.call(f"{server.url}/api/maps/0/preview.png")[0] == 200
        and server.get_json(f"{server.url}/api/maps/99/label")[0] == 404
    )
    assert server.get_json(f"{server.url}/api/crops?class_id=42")[0] == 404


def test_reader_routes_never_serve_the_key(server, study):
    status, prog = server.post_json(f"{server.url}/api/study/session", {"rater": "ann"})
    assert status == 200 and prog["done"] == 0 and prog["next"] == study.order("ann")[0]
    assert server.call(f"{server.url}/api/study/images/{prog['next']}.png")[0] == 200
    for path in ("/api/study/images/key.png", "/static/../key.json", "/key.json", "/api/study/key.json"):
        status, _, body = server.call(server.url + path)
        assert status == 404 and b'"items"' not in body
    bad = server.post_json(f"{server.url}/api/study/session", {"rater": "a/b"})
    assert bad[0] == 400 and "rater name" in bad[1]["detail"]
    item = prog["next"]
    status, prog = server.post_json(
        f"{server.url}/api/study/rate", {"rater": "ann", "item": item, "realism": 4, "guess": "real"}
    )
    assert status == 200 and prog["done"] == 1
    status, got = server.post_json(
        f"{server.url}/api/study/rate", {"rater": "ann", "item": item, "realism": "4", "guess": "real"}
    )
    assert status == 400 and "whole number" in got["detail"]
    assert study.ratings("ann")[0].realism == 4


def test_reader_only_app_redirects(study):
    with ServerThread(create_app(study=study)) as srv:
        client = Client(srv.url, srv.token)
        status, _, body = client.call(srv.url + "/")
        assert status == 200 and b"reader study" in body  # followed the redirect to /reader
        assert client.call(srv.url + "/api/config")[0] == 404
    with pytest.raises(ValueError, match="needs a model session"):
        create_app()


def test_oversized_json_is_refused(server):
    status, _, body = server.call(
        f"{server.url}/api/generate", b"{" + b" " * (3 * 2**20) + b"}", {"Content-Type": "application/json"}
    )
    assert status == 413 and "larger than" in json.loads(body)["detail"]
