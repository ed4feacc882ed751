"""The studio page in headless Chromium, with the test double of the model (page mechanics).

The end-to-end test with the real model is ``test_browser_e2e.py``.
"""

import io
import threading

import numpy as np
from PIL import Image

from tests.studio.browser import chromium, need_browser, open_page, paint_two_regions, pick_first_crop
from tests.studio.http_client import Client


def test_paint_pick_upload_queue_and_overlay(session, generator, tmp_path):
    shot_dir = tmp_path
    need_browser()
    from histosynth.studio.app import create_app
    from histosynth.studio.server import ServerThread

    generator.gate = threading.Event()
    errors: list[str] = []
    with ServerThread(create_app(session)) as srv, chromium() as browser:
        page = open_page(browser, srv.page(), errors)
        paint_two_regions(page, 1, 2)
        picked = {c: pick_first_crop(page, c) for c in (1, 2)}
        # a bad upload gets its message on the page, next to the class
        page.set_input_files("#upload-3", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
        page.wait_for_selector("#upload-msg-3:not([hidden])")
        assert "'notes.txt' is not an image" in page.inner_text("#upload-msg-3")
        # two requests: the second waits in the queue while the first runs
        page.fill("#seed", "5")
        page.click("#generate")
        page.wait_for_selector("#jobs li")
        page.click("#generate")
        page.wait_for_selector("#jobs li[data-state='queued']")
        generator.gate.set()
        page.wait_for_function(
            "() => document.querySelectorAll(\"#jobs li[data-state='done']\").length === 2"
        )
        page.wait_for_selector("#result:not([hidden])")
        page.check("#overlay-toggle")
        assert page.is_visible("#result-overlay")
        href = page.get_attribute("#download-label", "href")
        label = np.asarray(Image.open(io.BytesIO(Client(srv.url, srv.token).call(srv.url + href)[2])))
        assert sorted(np.unique(label).tolist()) == [1, 2] and (label == 2).mean() > 0.1
        page.screenshot(path=str(shot_dir / "studio-double.png"), full_page=True)
        assert [c.class_id for c in generator.calls[0]["crops"]] == [1, 2]
        assert generator.calls[0]["seed"] == 5 and generator.calls[0]["sampler"] == "ddim"
        sources = [c.source for c in generator.calls[0]["crops"]]
        assert all(picked[c] in s for c, s in zip((1, 2), sources, strict=True))
        # loading a held-out map replaces the painting
        want = session.maps.label(2)
        page.select_option("#map-select", "2")
        page.click("#map-load")
        names = [session.classes.names[i] for i in np.unique(want)]
        page.wait_for_function(
            "n => n.every(x => document.querySelector('#map-stats').textContent.includes(x))", arg=names
        )
        assert "epithelium" not in page.inner_text("#map-stats")
    assert not [e for e in errors if "notes.txt" not in e and "400" not in e], errors
