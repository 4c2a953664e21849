"""The app's speed as a person meets it: the real page in headless Chromium (Playwright), clicking images.

`pasta bench app --browser` runs these sessions beside its gradio_client sessions, against the same server, and
reports both. A browser waits for more than an API client: every streamed update is rendered, and each image is
fetched from the server and decoded before a person sees it. So "complete" here means the status asks for a pick
and all 16 images of the slate are loaded (`img.complete` with pixels), and "first images" means the first column
shows its images, loaded.

Chromium is Debian's (`apt-get install chromium`); Playwright drives it through `executable_path`, so nothing is
downloaded.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
SLATE = 4

_LOADED = """([turn, column, count]) => {
    const status = document.querySelector('#pasta-status');
    if (!status || !status.innerText.includes(`Turn ${turn} of`)) return false;
    const columns = column ? [column] : [1, 2, 3, 4];
    return columns.every(c => {
        const images = [...document.querySelectorAll(`#pasta-column-${c} img`)];
        return images.length === count && images.every(i => i.complete && i.naturalWidth > 0);
    });
}"""
_READY = """([turn]) => {
    const status = document.querySelector('#pasta-status');
    return !!status && status.innerText.includes(`Turn ${turn} of`) && status.innerText.includes('pick the column');
}"""


_IMAGE_TIMES = """([since]) => {
    const shown = performance.getEntriesByType('resource').filter(e => e.initiatorType === 'img' && e.startTime >= since);
    if (!shown.length) return null;
    return {
        first_request_s: (Math.min(...shown.map(e => e.startTime)) - since) / 1000,
        last_request_s: (Math.max(...shown.map(e => e.startTime)) - since) / 1000,
        last_response_s: (Math.max(...shown.map(e => e.responseEnd)) - since) / 1000,
        requests: shown.length,
    };
}"""
"""Where a pick's time goes in the page (the browser's own clock, from the click): when the slate's first image was
requested (the server's first rendered batch has arrived and been drawn), the last one requested (the last batch),
and the last one received; what follows until "complete" is decoding and drawing."""


def browser_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM.exists()


def _wait(page, script: str, args: list, timeout_s: float) -> float:
    page.wait_for_function(script, arg=args, timeout=timeout_s * 1000, polling=50)
    return time.perf_counter()


def run_browser_session(
    browser,
    url: str,
    prompt: str,
    turns: int,
    rng: np.random.Generator,
    think_time: float,
    images_per_column: int = 4,
    timeout_s: float = 180,
) -> dict:
    """One person in a browser: type a prompt, consent, Start; then `turns` picks by clicking an image of a random
    column, `think_time` seconds after the slate is complete."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    try:
        t0 = time.perf_counter()
        page.goto(url)
        page.locator("#pasta-prompt textarea").wait_for(timeout=timeout_s * 1000)
        page_ready = time.perf_counter() - t0
        page.locator("#pasta-prompt textarea").fill(prompt)
        page.locator("#pasta-consent input").check()
        t0 = time.perf_counter()
        page.locator("#pasta-start").click()
        first = _wait(page, _LOADED, [1, 1, images_per_column], timeout_s) - t0
        _wait(page, _READY, [1], timeout_s)
        complete = _wait(page, _LOADED, [1, 0, images_per_column], timeout_s) - t0
        start = {"first_images_s": first, "complete_s": complete}
        picks, columns = [], []
        for turn in range(1, turns + 1):
            column = int(rng.integers(1, SLATE + 1))
            columns.append(column - 1)
            time.sleep(think_time)
            page.evaluate(
                "() => { performance.clearResourceTimings(); performance.setResourceTimingBufferSize(1000); }"
            )
            since = page.evaluate("() => performance.now()")
            t0 = time.perf_counter()
            page.locator(f"#pasta-column-{column} img").first.click()
            if turn == turns:  # the last pick ends the session: no slate follows
                page.wait_for_function(
                    "() => document.querySelector('#pasta-status').innerText.includes('finished')",
                    timeout=timeout_s * 1000,
                    polling=50,
                )
                break
            first = _wait(page, _LOADED, [turn + 1, 1, images_per_column], timeout_s) - t0
            ready = _wait(page, _READY, [turn + 1], timeout_s) - t0
            complete = _wait(page, _LOADED, [turn + 1, 0, images_per_column], timeout_s) - t0
            images = page.evaluate(_IMAGE_TIMES, [since]) or {}
            picks.append({"first_images_s": first, "ready_s": ready, "complete_s": complete, "images": images})
        return {"prompt": prompt, "page_ready_s": page_ready, "start": start, "picks": picks, "columns": columns}
    finally:
        page.close()


def run_browser_phase(
    url: str, prompts: list[str], sessions: int, turns: int, think_time: float, seed: int, images_per_column: int = 4
) -> list[dict]:
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng([seed, int(think_time * 1000)])
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            return [
                run_browser_session(browser, url, prompts[i % len(prompts)], turns, rng, think_time, images_per_column)
                for i in range(sessions)
            ]
        finally:
            browser.close()
