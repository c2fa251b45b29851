"""The class overview and a feedback page in a real headless Chromium: no console
errors, every link resolves, sorting and filtering work, the chart renders, and the
pages keep basic accessibility rules. Screenshots go to tests/artifacts/."""

import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import REPO, SUBMISSIONS
from grader.batch import BatchSettings, grade_batch
from grader.mnist import BUILTIN_DIR

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "tests" / "artifacts"
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def out(tmp_path_factory, rubric):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian package chromium)")
    folder = tmp_path_factory.mktemp("in")
    for name in ("ow16mapi", "is29febo"):
        shutil.copy(SUBMISSIONS / f"{name}.ipynb", folder)
    (folder / "broken.ipynb").write_text("{")
    out = tmp_path_factory.mktemp("out")
    grade_batch(folder, out, rubric, BatchSettings(BUILTIN_DIR, workers=2))
    return out


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: errors.append(f"network request {request.url}")
            if not request.url.startswith(("file:", "data:", "about:")) else None)
    page.goto(path.as_uri())
    return page, errors


def check_links(page, base: Path):
    for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
        target = (base.parent / unquote(urlparse(href).path)).resolve()
        assert target.is_file(), href


class _Structure(HTMLParser):
    """Collect what the accessibility checks need, and fail on unbalanced tags."""

    VOID = {"meta", "br", "img", "input", "hr", "link", "line", "polyline"}

    def __init__(self):
        super().__init__()
        self.stack, self.headings, self.images_without_alt, self.tables_without_th = [], [], 0, 0
        self._table_has_th = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self.headings.append(tag)
        if tag == "img" and not attributes.get("alt"):
            self.images_without_alt += 1
        if tag == "table":
            self._table_has_th.append(False)
        if tag == "th" and self._table_has_th:
            self._table_has_th[-1] = True
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
        self.stack.pop()
        if tag == "table" and not self._table_has_th.pop():
            self.tables_without_th += 1


def check_structure(path: Path):
    parser = _Structure()
    parser.feed(path.read_text())
    assert parser.stack == ["html"] or parser.stack == []
    assert parser.headings[0] == "h1"
    assert parser.images_without_alt == 0
    assert parser.tables_without_th == 0


def test_overview_page(browser, out):
    index = out / "index.html"
    page, errors = open_page(browser, index)
    assert page.locator("h1").inner_text().endswith("class overview")
    rows = page.locator("#students tbody tr")
    assert rows.count() == 3
    page.fill("#filter", "invalid-notebook")
    assert page.locator("#students tbody tr:not([hidden])").count() == 1
    page.fill("#filter", "")
    page.click("button[data-column='3']")
    totals = [float(t) for t in page.locator("#students tbody tr td:nth-child(4)").all_inner_texts()]
    assert totals == sorted(totals)
    check_links(page, index)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    assert errors == []
    check_structure(index)


def test_feedback_page(browser, out):
    feedback = out / "feedback" / "ow16mapi.html"
    page, errors = open_page(browser, feedback)
    chart = page.locator("svg[role='img'] polyline")
    assert chart.count() == 2
    box = chart.first.bounding_box()
    assert box is not None
    assert box["width"] > 100
    assert page.locator("tr.mismatch").count() == 1
    assert "first difference" in page.locator("tr.mismatch").inner_text()
    check_links(page, feedback)
    page.screenshot(path=str(ARTIFACTS / "feedback.png"), full_page=True)
    assert errors == []
    check_structure(feedback)
