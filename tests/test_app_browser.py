"""The app in a real browser: headless Debian Chromium driven by Playwright against a real server.

A person types a prompt, clicks an image of a column and sees the next slate; on a phone-sized screen the slate
fits the width and can still be picked. Screenshots are saved to test-artifacts/ (uploaded by CI).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None,
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def server(start_app):
    return start_app(turns=3)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


def column_images(page, column: int):
    return page.locator(f"#pasta-column-{column} img")


def wait_for_slate(page, turn: int, timeout: float = 120_000) -> None:
    """Until turn `turn` is complete: the status asks for a pick and every column shows its 4 images."""
    status = page.locator("#pasta-status").filter(has_text=f"Turn {turn} of").filter(has_text="pick the column")
    status.wait_for(timeout=timeout)
    for column in range(1, 5):
        assert column_images(page, column).count() == 4


def test_type_a_prompt_click_a_column_see_the_next_slate(server, browser):
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url)
    page.locator("#pasta-prompt textarea").fill("a red dress")
    page.locator("#pasta-consent input").check()
    page.locator("#pasta-start").click()
    wait_for_slate(page, 1)
    first = [page.locator(f"#pasta-caption-{c}").inner_text() for c in range(1, 5)]
    assert all(len(text) > 5 for text in first)

    column_images(page, 2).first.click()  # a click on any image picks its column
    wait_for_slate(page, 2)
    second = [page.locator(f"#pasta-caption-{c}").inner_text() for c in range(1, 5)]
    assert second != first
    history = page.locator("text=Turn 1 (picked 2").first
    history.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
    assert not errors

    sessions = server.store.sessions()
    assert sessions and sessions[-1]["initial_prompt"] == "a red dress"
    episode = server.store.episode(sessions[-1]["id"])
    assert episode["turns"][0]["choice"]["column"] == 1
    assert episode["turns"][0]["slate"][1]["prompt"] in first[1]

    page.reload()  # the browser remembers its logged session: a reload resumes it
    wait_for_slate(page, 2)
    assert [page.locator(f"#pasta-caption-{c}").inner_text() for c in range(1, 5)] == second
    page.get_by_role("button", name="Export session (.zip)").click()  # the whole session, for download
    link = page.locator("#pasta-export a").first
    link.wait_for(timeout=30_000)
    assert re.search(r"pasta-session-[0-9a-f]{32}\.zip", link.get_attribute("href") or "")
    page.close()


def test_on_a_phone_the_slate_fits_and_a_pick_button_works(server, browser):
    page = browser.new_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page.goto(server.url)
    page.locator("#pasta-prompt textarea").fill("a blue coat")
    page.locator("#pasta-start").click()
    wait_for_slate(page, 1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling
    for column in range(1, 5):
        box = page.locator(f"#pasta-column-{column}").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 391
        for image in column_images(page, column).all():  # every image inside its column, none cut off
            inner = image.bounding_box()
            assert box["x"] <= inner["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"]
    page.locator("#pasta-pick-3").tap()
    wait_for_slate(page, 2)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-phone.png"), full_page=True)
    page.close()


def test_an_unlogged_session_leaves_no_image_and_no_url_when_its_page_closes(server, browser):
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(server.url)
    page.locator("#pasta-prompt textarea").fill("a green hat")
    page.locator("#pasta-start").click()  # consent left unticked
    wait_for_slate(page, 1)
    urls = [image.get_attribute("src") for column in range(1, 5) for image in column_images(page, column).all()]
    assert len(urls) == 16 and all(urls)
    urls = [url if url.startswith("http") else server.url.rstrip("/") + url for url in urls]
    with urllib.request.urlopen(urls[0], timeout=10) as answer:
        assert answer.status == 200  # served while the page is open
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert "a green hat" not in stored and "pasta-shown" not in stored  # no run history in the browser
    page.close()

    # Gradio reports the close a moment later; until then the files are served. A request racing the deletion may
    # get a 500 from Gradio's file route (it checks, then reads), so wait for the settled state: every URL refused.
    deadline = time.time() + 30
    gone = []
    while time.time() < deadline and not (len(gone) == len(urls) and set(gone) <= {403, 404}):
        gone = []
        for url in urls:
            try:
                urllib.request.urlopen(url, timeout=10).close()
            except urllib.error.HTTPError as error:
                gone.append(error.code)
        time.sleep(0.5)
    assert len(gone) == len(urls) and set(gone) <= {403, 404}
    assert not [s for s in server.store.sessions() if s["initial_prompt"] == "a green hat"]
    files = [Path(urllib.parse.unquote(url.split("file=", 1)[1])) for url in urls]
    assert all(server.demo.pasta_shown.root in f.parents for f in files)  # the app's own folder, not Gradio's cache
    assert not any(f.exists() for f in files) and not files[0].parent.exists()


def test_the_browser_benchmark_says_where_a_picks_time_goes(server, browser):
    """`pasta bench app --browser`'s session: each pick's images are timed in the page itself, in the order a
    browser meets them (requested after the server's batch arrives, received, then complete)."""
    import numpy as np

    from pasta.tools.bench_browser import run_browser_session

    result = run_browser_session(browser, server.url, "a blue coat", 3, np.random.default_rng(0), think_time=0)
    assert result["start"]["complete_s"] > 0 and len(result["picks"]) == 2  # the third pick ends the session
    pick = result["picks"][0]
    images = pick["images"]
    assert images["requests"] >= 16  # four columns of four images, each fetched
    assert 0 < images["first_request_s"] <= images["last_request_s"] < images["last_response_s"]
    assert pick["first_images_s"] <= pick["complete_s"] and pick["ready_s"] <= pick["complete_s"]
    assert images["last_response_s"] <= pick["complete_s"] + 0.5  # the page's clock starts just before the click
