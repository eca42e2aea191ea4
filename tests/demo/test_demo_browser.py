"""The demo in a real browser: Debian's Chromium driven by Playwright (never ``playwright install``).

Uploads a bundled blurred photo through the page's file input, presses Deblur, waits for the before/after
slider to show both images, and saves a screenshot to the test's tmp folder; with
``DEBLUR_UPDATE_SCREENSHOT=1`` it also refreshes ``docs/demo.png`` (shown in the README), so an ordinary
test run never changes a tracked file. The app runs with the shipped weights, so the screenshot shows
what users get.

Without /usr/bin/chromium the test is skipped, unless ``DEBLUR_REQUIRE_BROWSER=1`` (set by CI), where a
missing browser is a failure.
"""

import os
import shutil
from pathlib import Path

import pytest

from deblur_core.single import example_images

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "demo.png"


def _require_browser():
    required = os.environ.get("DEBLUR_REQUIRE_BROWSER") == "1"
    missing = None
    if not CHROMIUM.is_file():
        missing = f"{CHROMIUM} not found (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright python package is not installed (pip install playwright)"
    if missing and required:
        pytest.fail(f"DEBLUR_REQUIRE_BROWSER=1 but {missing}")
    if missing:
        pytest.skip(missing)


def test_upload_run_and_slider_in_chromium(serve, tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    from deblur_demo.app import build_app

    url = serve(build_app(device="cpu"))
    photo = next(p for p in example_images() if p.name == "clock_motion.png")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.locator("input[type=file]").first.set_input_files(str(photo))
            # the upload preview appears once the file reached the server
            page.locator("#input-image img").first.wait_for(state="visible", timeout=30_000)
            page.get_by_role("button", name="Deblur").click()
            slider_images = page.locator("#result-slider img")
            slider_images.last.wait_for(state="visible", timeout=60_000)
            page.locator("a[href*='clock_motion-deblurred.png']").first.wait_for(timeout=30_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#result-slider img')]"
                ".every(img => img.complete && img.naturalWidth === 400 && img.naturalHeight === 300)"
            )
            assert slider_images.count() == 2
            assert page.get_by_text("s for 400x300 px").is_visible()
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("DEBLUR_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
