"""The viewer in a real browser: headless Chromium (Debian's package) driven by Playwright.

In CI (`.ci/run` installs Chromium with apt-get and sets SEETHROUGH_REQUIRE_BROWSER=1) these
tests fail, never skip, when the browser is missing. Elsewhere a machine without Chromium skips
them, saying why and how to install it. SEETHROUGH_CHROMIUM names another Chromium binary.
"""
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from conftest import IMAGES
from seethrough.viewer import write_view

#: The README's screenshot: written by test_screenshot_for_the_readme when SEETHROUGH_UPDATE_SCREENSHOT=1
#: (else into the test's temporary folder, so a test run leaves the checkout unchanged).
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "viewer.png"


def chromium() -> str:
    for candidate in (os.environ.get("SEETHROUGH_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and Path(candidate).exists():
            return candidate
    message = "no Chromium found: install Debian's package (apt-get install -y chromium) or set SEETHROUGH_CHROMIUM"
    if os.environ.get("SEETHROUGH_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


class Page:
    """A page on a view that records console errors and every request."""

    def __init__(self, browser, view: Path):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto((view / "index.html").as_uri())
        self.page.wait_for_function("window.SEETHROUGH && window.SEETHROUGH.readyMs !== undefined")

    def pixels(self, selector: str) -> bytes:
        return self.page.locator(selector).first.screenshot()

    def wait_shown(self, sample_id: str) -> None:
        self.page.wait_for_function(f"window.SEETHROUGH.shown === {sample_id!r}")

    def check_clean(self) -> None:
        assert self.errors == []
        assert [url for url in self.requests if not url.startswith("file://")] == []


def test_grid_image_switches_sliders_keyboard_and_no_network(browser, run_view):
    page = Page(browser, run_view)
    p = page.page
    assert p.locator(".cell").count() == IMAGES
    assert p.locator("#grid-count").inner_text() == f"{IMAGES} of {IMAGES} images"
    p.locator(".cell").first.click()
    first = p.evaluate("window.SEETHROUGH.shown === undefined ? null : 1")
    page.wait_shown("0")
    assert first is None or first == 1
    assert p.locator("#panels canvas").count() == 4 * 2                       # models × explainers
    focus = "#focus-canvas"
    shots = {"start": page.pixels(focus)}
    p.select_option("#focus-model", "intr")
    shots["model"] = page.pixels(focus)
    other = p.evaluate("document.querySelector('#class-select').options[1].value")
    p.select_option("#class-select", other)
    shots["class"] = page.pixels(focus)
    p.select_option("#focus-explainer", "random")                         # a baseline: the same for every class
    shots["explainer"] = page.pixels(focus)
    p.locator("#opacity").fill("100")
    shots["opacity"] = page.pixels(focus)
    p.locator("#threshold").fill("90")
    shots["threshold"] = page.pixels(focus)
    p.select_option("#colormap", "cividis")
    shots["colormap"] = page.pixels(focus)
    names = list(shots)
    for before, after in zip(names, names[1:]):
        assert shots[before] != shots[after], f"switching {after} did not change the canvas"
    # the value under the cursor is shown in every panel, for the same place
    p.locator("#panels canvas").first.hover(position={"x": 20, "y": 20})
    values = p.locator("#panels .caption .value").all_inner_texts()
    assert len(values) >= 4 and all(v.startswith("value ") for v in values)
    # per-model evidence: INTR's heads, CA-Stream's taps, SCOUTER−'s "why not"
    extras = p.locator("#extras").inner_text()
    assert "each head's cross-attention" in extras and "at each tap" in extras
    assert "why not" in p.locator("#panels").inner_text()
    p.locator("#detail-title").click()                    # keys go to the page, not to a slider or a menu
    p.keyboard.press("ArrowRight")
    page.wait_shown("1")
    p.keyboard.press("ArrowLeft")
    page.wait_shown("0")
    page.check_clean()


def test_the_view_of_an_evaluation_draws_curves_and_a_sortable_metric_table(browser, evaluate_output, tmp_path):
    view = tmp_path / "view"
    write_view([evaluate_output], view)
    page = Page(browser, view)
    p = page.page
    assert p.locator(".cell").count() == 6
    p.select_option("#filter-metric", label="fc · native · insertion")
    p.fill("#filter-min", "-1")
    p.fill("#filter-max", "2")
    p.select_option("#sort-order", "desc")
    assert p.locator(".cell").count() == 6
    p.locator(".cell").first.click()
    p.wait_for_function("window.SEETHROUGH.shown !== undefined")
    assert p.locator("#curves svg").count() == 2 * 2                           # models × (insertion, deletion)
    assert p.locator("#curves svg polyline").count() == 2 * 2 * 2               # a line per explainer
    assert p.locator("#curves").inner_text().count("AUC") == 2 * 2 * 2
    table = p.locator("table.metrics")
    assert table.locator("tr").count() == 1 + 2 * 2
    table.locator("th", has_text="insertion").click()
    page.check_clean()


def test_screenshot_for_the_readme(browser, run_view, tmp_path):
    """SEETHROUGH_SCREENSHOT_VIEW=DIR takes the picture of another view. The README's is the demo's:
    seethrough demo, then this test with SEETHROUGH_UPDATE_SCREENSHOT=1
    SEETHROUGH_SCREENSHOT_VIEW=seethrough-demo/view."""
    view = Path(os.environ.get("SEETHROUGH_SCREENSHOT_VIEW") or run_view)
    page = Page(browser, view)
    page.page.locator(".cell").nth(2).click()
    page.page.wait_for_function("window.SEETHROUGH.shown !== undefined")
    path = SCREENSHOT if os.environ.get("SEETHROUGH_UPDATE_SCREENSHOT") == "1" else tmp_path / SCREENSHOT.name
    path.parent.mkdir(exist_ok=True)
    page.page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    page.check_clean()
