"""End to end: the studio page in headless Chromium with the real Synthesizer and a tiny model.

Paint two regions, pick a bank crop for each, generate, and check the returned image and map.
The page is screenshotted (to the test's folder) to check the page renders; the docs' screenshot
of a real model comes from ``scripts/studio_screenshot.py``.
"""

import io
import json

import numpy as np
from PIL import Image

from tests.studio.browser import chromium, open_page, paint_two_regions, pick_first_crop
from tests.studio.http_client import Client


def test_paint_pick_generate_with_the_real_model(
    browser_ok, tiny_checkpoint, crop_bank, tiny_dataset, tmp_path
):
    from histosynth.data.crops import Crop
    from histosynth.sample.synthesis import Synthesizer
    from histosynth.studio.app import create_app
    from histosynth.studio.server import ServerThread
    from histosynth.studio.session import MapSource, StudioSession

    synth = Synthesizer.from_checkpoint(tiny_checkpoint)
    session = StudioSession(synth, crop_bank, MapSource(tiny_dataset, "test", synth.image_size))
    errors: list[str] = []
    with ServerThread(create_app(session)) as srv, chromium() as browser:
        page = open_page(browser, srv.page(), errors)
        paint_two_regions(page, 1, 3)
        picked = {c: pick_first_crop(page, c) for c in (1, 3)}
        page.fill("#steps", "4")
        page.select_option("#sampler", "dpm++")
        page.fill("#seed", "11")
        page.click("#generate")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        job_id = page.get_attribute("#result", "data-job")
        shot = tmp_path / "s.png"
        page.screenshot(path=str(shot), full_page=True)

        def download(link: str) -> bytes:
            status, _, body = Client(srv.url, srv.token).call(srv.url + page.get_attribute(link, "href"))
            assert status == 200
            return body

        image = np.asarray(Image.open(io.BytesIO(download("#download-image"))))
        label = np.asarray(Image.open(io.BytesIO(download("#download-label"))))
        geojson = json.loads(download("#download-geojson"))
        assert page.inner_text(f"#job-{job_id}").startswith(f"{job_id}: done")
    assert image.shape == (synth.image_size, synth.image_size, 3) and image.dtype == np.uint8
    assert label.shape == image.shape[:2] and sorted(np.unique(label).tolist()) == [1, 3]
    assert 0.1 < (label == 3).mean() < 0.9 and image.std() > 0
    names = {f["properties"]["classification"]["name"] for f in geojson["features"]}
    assert names == {crop_bank.classes.names[1], crop_bank.classes.names[3]}
    # the page's request reached the model unchanged: the same inputs give the same image
    crops = [Crop(c, crop_bank.load(picked[c])) for c in (1, 3)]
    again = synth.generate(label, crops, 1.0, 1.0, steps=4, sampler="dpm++", seed=11)
    assert np.array_equal(again, image)
    assert not errors, errors
