"""The notebooks' three widgets, used in JupyterLab by a real headless Chromium, as a reader would use them.

The widget modules are unit-tested as Python objects; only a browser shows that the front end renders them
and that typing, Enter and clicks reach the kernel and come back: the search box (clip.ipynb), the ask box
(blip.ipynb) and the chat box (qwen_vl.ipynb). Each notebook is copied to a temporary root (the committed
one is never saved), opened, run with Run > Run All Cells on the stand-ins of `make test`, and its widget
is driven; screenshots of each widget before and after go to build/browser/.

Needs Debian's Chromium (`tools/browser_deps.sh` installs it) and playwright; skipped without them.
`-m browser` selects these tests, `-m "not browser"` skips them.
"""
from __future__ import annotations

import re
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from lab_server import JupyterLab

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"BROWSER TEST SKIPPED: {CHROMIUM} is missing; run tools/browser_deps.sh as root "
                "(apt-get install -y --no-install-recommends chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="BROWSER TEST SKIPPED: playwright is missing; pip install -r requirements-dev.txt")
expect = sync_api.expect

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "build" / "browser"
NOTEBOOKS = ("clip", "blip", "qwen_vl")
# The last flag keeps the page on the test's server: other hosts (the notebooks' Colab badges) do not resolve.
# (A Playwright route would do it too, but its handler runs only while this process is inside a Playwright
# call, so the page's own requests would stall whenever the test waits on the server instead.)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
# Bounds, generous for 2 shared CPU cores: blip.ipynb alone loads six stand-in models.
KERNEL_READY_S = 120
RUN_ALL_S = 1200
WIDGET_REPLY_S = 300
UI_S = 60


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("notebooks")
    for name in NOTEBOOKS:
        shutil.copy(REPO / "notebooks" / f"{name}.ipynb", root)
    with JupyterLab(root, tmp_path_factory.mktemp("jupyterlab")) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(lab, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_S * 1000)
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
        lab.shutdown_kernels()   # the next notebook gets the machine's memory to itself


@contextmanager
def failure_screenshot(page, name: str):
    """On any failure, a screenshot of the whole page next to the widget screenshots, to see why."""
    try:
        yield
    except BaseException:
        SHOTS.mkdir(parents=True, exist_ok=True)
        with suppress(Exception):   # a dead page must not hide the original error
            page.screenshot(path=str(SHOTS / f"{name}-failure.png"), full_page=True)
        raise


def prompts(page) -> list[str]:
    return page.eval_on_selector_all(".jp-CodeCell .jp-InputPrompt", "ps => ps.map(p => p.textContent.trim())")


def run_all(page, lab, name: str) -> None:
    """Open the notebook, wait for its kernel, Run > Run All Cells, and wait until every cell has run."""
    page.goto(lab.url(f"lab/tree/{name}.ipynb?reset"))
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for()
    lab.wait_for_kernel(f"{name}.ipynb", KERNEL_READY_S)   # Run All before that silently runs nothing
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator('li[data-command="runmenu:run-all"]').click()
    page.wait_for_function("() => document.querySelector('.jp-CodeCell .jp-InputPrompt').textContent.trim()"
                           " !== '[ ]:'")
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].some(p => p.textContent.trim()"
        " === '[*]:') && document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle'",
        timeout=RUN_ALL_S * 1000, polling=1000)
    seen = prompts(page)
    if seen != [f"[{i}]:" for i in range(1, len(seen) + 1)]:   # a failing cell stops Run All there
        ran = sum(p != "[ ]:" for p in seen)
        failed = page.locator(".jp-CodeCell").nth(ran - 1).locator(".jp-OutputArea").inner_text()
        pytest.fail(f"{name}.ipynb: Run All stopped after code cell {ran} of {len(seen)}:\n{failed[-3000:]}")


def button(scope, label: str):
    # By text, not by role: the accessible name of a button with an icon starts with the icon's glyph.
    return scope.locator("button.widget-button").filter(has_text=re.compile(rf"^{label}$"))


def widget(page, label: str):
    """The widget box of the cell output that holds a button labelled `label`, once rendered."""
    box = page.locator(".jp-OutputArea-output > .widget-vbox").filter(has=button(page, label))
    expect(box).to_have_count(1, timeout=UI_S * 1000)
    box.scroll_into_view_if_needed()
    return box


def shot(box, name: str, when: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    box.screenshot(path=str(SHOTS / f"{name}-{when}.png"))


def natural_size(img) -> tuple[int, int]:
    img.evaluate("img => img.decode()")
    return tuple(img.evaluate("img => [img.naturalWidth, img.naturalHeight]"))


def test_search_box_shows_result_images_for_a_typed_query(page, lab):
    with failure_screenshot(page, "clip"):
        run_all(page, lab, "clip")
        box = widget(page, "Search")
        result = box.locator(".widget-output img")
        status = box.locator(".widget-html-content")
        before = result.first.get_attribute("src")   # the notebook's own search, run by the next cell
        shot(box, "clip", "before")
        query = box.locator(".widget-text input")
        query.fill("a photo of a dog running on the grass")
        query.press("Enter")
        # The grid's title names the query, so a new search gives a new picture. (Compared in the page: an
        # expect() on the src attribute would print both base64 PNGs when it fails.)
        try:
            page.wait_for_function("([box, before]) => [...box.querySelectorAll('.widget-output img')]"
                                   ".some(img => img.src !== before)", arg=[box.element_handle(), before],
                                   timeout=WIDGET_REPLY_S * 1000, polling=500)
        except sync_api.TimeoutError:
            pytest.fail(f"no new result grid {WIDGET_REPLY_S} s after typing a query and Enter; "
                        f"status line: {status.inner_text()!r}")
        expect(status).to_have_text(re.compile(r"^\d+ of \d+ images, best similarity"))
        shot(box, "clip", "after")
        expect(result).to_have_count(1)                # one grid picture of all the hits
        width, height = natural_size(result.first)
        assert width > 0 and height > 0, "the result grid did not decode"
        assert not page.errors, page.errors


def test_ask_box_shows_an_answer_to_a_typed_question(page, lab):
    with failure_screenshot(page, "blip"):
        run_all(page, lab, "blip")
        box = widget(page, "Ask")
        answer = box.locator(".widget-html-content")
        shot(box, "blip", "before")
        box.locator(".widget-text input").fill("What color is the cat?")
        button(box, "Ask").click()
        # The notebook's last call asked an empty question, so the box showed a red hint until now.
        expect(answer).to_have_text(re.compile(r"^Answer:\s*\S"), timeout=WIDGET_REPLY_S * 1000)
        shot(box, "blip", "after")
        width, height = natural_size(box.locator(".widget-image").first)
        assert width > 0 and height > 0, "the photo did not decode"
        assert not page.errors, page.errors


def test_chat_box_shows_a_reply_to_a_sent_message(page, lab):
    with failure_screenshot(page, "qwen_vl"):
        run_all(page, lab, "qwen_vl")
        box = widget(page, "Send")
        turns = box.locator(".widget-html-content").first.locator("p")
        before = turns.count()                        # the notebook already chatted once from code
        shot(box, "qwen_vl", "before")
        message = box.locator(".widget-text input")
        message.fill("Is the cat asleep?")
        button(box, "Send").click()
        expect(turns).to_have_count(before + 2, timeout=WIDGET_REPLY_S * 1000)
        shot(box, "qwen_vl", "after")
        assert turns.nth(before).inner_text() == "user: Is the cat asleep?"
        assert turns.nth(before + 1).inner_text().startswith("assistant:")
        expect(message).to_have_value("")             # sent: the box is cleared for the next message
        assert not page.errors, page.errors
