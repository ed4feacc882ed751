"""The reader-study page in headless Chromium: rate a small study to the end, with a closed
browser midway, and check the scores computed from the answers given."""

import json

import pytest

from tests.studio.browser import chromium, need_browser, open_page


def answer(page, key: dict, n: int, given: list[dict]) -> None:
    """Rate ``n`` items: right on every other one, realism cycling 1..5; record each answer."""
    for _ in range(n):
        item = page.get_attribute("#item-image", "data-item")
        k = len(given)
        truth = key[item]["source"]
        guess = truth if k % 2 == 0 else ("real" if truth == "synthetic" else "synthetic")
        realism = 1 + k % 5
        if k % 3 == 2:  # the keyboard way: digit, R / S, Enter
            page.keyboard.press(str(realism))
            page.keyboard.press(guess[0].upper())
            page.keyboard.press("Enter")
        else:
            page.click(f".realism[data-value='{realism}']")
            page.click(f"#guess-{guess}")
            page.click("#submit")
        given.append({"item": item, "guess": guess, "realism": realism, "truth": truth})
        page.wait_for_function(
            "prev => document.body.dataset.finished === '1' || "
            "document.querySelector('#item-image').dataset.item !== prev",
            arg=item,
        )
        page.wait_for_function("() => document.querySelector('#item-image').complete")


def test_rate_to_the_end_and_score(study):
    need_browser()
    from histosynth.studio.app import create_app
    from histosynth.studio.scoring import score_study, wilson_interval
    from histosynth.studio.server import ServerThread

    key = json.loads((study.folder / "key.json").read_text())["items"]
    given: list[dict] = []
    errors: list[str] = []
    with ServerThread(create_app(study=study)) as srv, chromium() as browser:
        page = open_page(browser, srv.page("/reader"), errors)
        page.fill("#rater", "not a name!")
        page.click("#start-button")
        page.wait_for_selector("#message:not([hidden])")
        assert "rater name" in page.inner_text("#message")
        page.fill("#rater", "ann")
        page.click("#start-button")
        page.wait_for_selector("#rating:not([hidden])")
        assert page.is_disabled("#submit")
        answer(page, key, 3, given)
        page.context.close()  # the browser is closed midway: nothing given so far is lost
        assert len(study.ratings("ann")) == 3

        page = open_page(browser, srv.page("/reader"), errors)
        page.fill("#rater", "ann")
        page.click("#start-button")
        page.wait_for_selector("#rating:not([hidden])")
        assert "3 saved" in page.inner_text("#progress")
        answer(page, key, len(study) - 3, given)
        page.wait_for_selector("#done:not([hidden])")
    assert [g["item"] for g in given] == study.order("ann")
    assert not [e for e in errors if "400" not in e], errors

    s = score_study(study.folder)
    n, right = len(given), sum(g["guess"] == g["truth"] for g in given)
    d = s["discrimination"]
    assert (d["n"], d["correct"], d["accuracy"]) == (n, right, right / n) == (6, 3, 0.5)
    assert d["ci"] == pytest.approx(list(wilson_interval(right, n)))
    for src in ("real", "synthetic"):
        scores = [g["realism"] for g in given if g["truth"] == src]
        assert s["realism"][src]["mean"] == pytest.approx(sum(scores) / len(scores))
        assert s["realism"][src]["n"] == 3
    assert s["complete_raters"] == ["ann"]
