"""The site in a real browser (`make test-browser`): headless Chromium loads every page of a
site and finds no console error, no image that did not load, no link to a missing file and
nothing fetched from off the file system. The site is rendered here from a small real grid,
and with $PRUNEBENCH_SITE (a rendered site folder, `make test-browser` passes
reports/site/PROFILE) that site is checked too, a screenshot of its index kept beside it as
<profile>-index.png (or at $PRUNEBENCH_SCREENSHOT)."""

import os
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from bench.cli import main
from browser import Browser, find_browser

pytestmark = pytest.mark.browser
BROKEN_IMAGES = "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
LINKS = "Array.from(document.links).map(a => a.href)"
FETCHED = "performance.getEntriesByType('resource').map(entry => entry.name)"


@pytest.fixture(scope="module")
def browser():
    if find_browser() is None:
        pytest.skip("no Chromium: `apt-get install chromium` (.ci/run installs it)")
    with Browser() as opened:
        yield opened


def problems(browser: Browser, page: Path) -> list[str]:
    """What is wrong with the page in the browser: console errors, uncaught exceptions and
    failed loads, images not loaded, links to missing files, anything fetched off the file system."""
    found = browser.load(page)
    found += [f"image not loaded: {src}" for src in browser.evaluate(BROKEN_IMAGES)]
    for href in browser.evaluate(LINKS):
        url = urlparse(href)
        if url.scheme != "file":
            found.append(f"link off the file system: {href}")
        elif not Path(url2pathname(url.path)).exists():
            found.append(f"link to a missing file: {href}")
    found += [f"fetched off the file system: {name}" for name in browser.evaluate(FETCHED)
              if not name.startswith("file:")]
    return found


def small_grid(data):
    data["seeds"], data["goal_sparsities"] = [0, 1], [0.9]
    data["rows"][1]["grid"] = {"retrain_epochs": [1], "cycles": [1]}
    data["claims"] = [{"text": "IMP beats Dense", "better": "IMP", "worse": "Dense"}]


def test_every_page_of_a_site_of_a_small_grid_loads_cleanly_in_chromium(browser, dirs, write_manifest, tmp_path):
    """A grid of four two-epoch runs, a figure that trains nothing and a target never run."""
    results, reports, where = dirs
    path = str(write_manifest(small_grid))
    assert main(["run", path, "--profile", "base", "--executor", "inline", "--quiet", *where]) == 0
    assert main(["report", "fig-lr-schedules", "--profile", "base", *where[:4]]) == 0
    assert main(["site", path, "fig-lr-schedules", "table-imp-vs-stable", "--profile", "base", "--quiet",
                 *where[:4]]) == 0
    images = check_site(browser, reports / "site" / "base", tmp_path / "index.png")
    assert {"index.html", "targets/fig-lr-schedules.html", "targets/table-imp-vs-stable.html"} <= set(images)
    assert images["targets/small.html"] >= 1 and images["methods/imp.html"] == images["methods/dense.html"] == 1


def test_the_rendered_site_loads_cleanly_in_chromium(browser):
    site = Path(os.environ.get("PRUNEBENCH_SITE") or "unset")
    if not (site / "index.html").is_file():
        pytest.skip(f"no site at $PRUNEBENCH_SITE ({site}): `make site PROFILE=P` renders one, "
                    "`make test-browser PROFILE=P` checks it")
    check_site(browser, site, Path(os.environ.get("PRUNEBENCH_SCREENSHOT") or site.parent / f"{site.name}-index.png"))


def check_site(browser: Browser, site: Path, screenshot: Path) -> dict[str, int]:
    """Every page of the site without a problem, then a screenshot of its index; the pages
    (relative paths) with their number of images."""
    images = {}
    for page in sorted(site.rglob("*.html")):
        assert problems(browser, page) == [], page
        images[page.relative_to(site).as_posix()] = browser.evaluate("document.images.length")
    browser.load(site / "index.html")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser.screenshot(screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return images


def test_a_broken_page_is_caught(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png"><a href="nowhere.html">x</a>'
                    '<a href="https://example.org/">off</a><script>console.error("boom"); undefinedFunction();'
                    "</script></body></html>")
    found = "\n".join(problems(browser, page))
    for expected in ("console error: boom", "uncaught: ReferenceError: undefinedFunction",
                     "network error: Failed to load resource", "image not loaded: file://",
                     "link to a missing file: file://", "link off the file system: https://example.org/"):
        assert expected in found
