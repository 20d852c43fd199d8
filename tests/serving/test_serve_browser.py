"""The page of `divita serve` in a real browser: Debian's headless Chromium driven by Playwright uploads a
generated trailer, waits for the genres table and the timeline picture, and saves screenshots at 1280x800
and at a phone's width (their folder is printed: look at them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'divita[serve]'")

from test_serve import live_server, make_service, train_tiny_checkpoint  # noqa: E402

from divita.serving.app import create_app  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "results" / "screenshots"  # git-ignored


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt when missing; the test is skipped (reason printed) only where apt
    is not there to install it."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        reason = "chromium is not installed and apt-get is not available to install it (as root)"
        print(f"test_serve_browser: skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run([apt, "install", "-y", "-qq", "chromium"], check=True, env=env, timeout=900)
    assert Path(CHROMIUM).exists(), "apt installed chromium but /usr/bin/chromium is not there"
    return CHROMIUM


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_browser")
    return root, train_tiny_checkpoint(root)


@pytest.fixture(scope="module")
def browser():
    executable = ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_page_uploads_a_trailer_and_shows_its_genres_and_timeline(trained, browser, tmp_path):
    from divita.inference.predict import GenreClassifier

    root, ckpt = trained
    service = make_service(trained, GenreClassifier.from_checkpoint(ckpt), tmp_path / "serve")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SCREENSHOTS}")
    with live_server(create_app(service)) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.wait_for_selector("#model:has-text('efficientnet_lite0')")
        assert page.is_visible("#jobs-empty")

        for genre in ("comedy", "action"):  # the second upload lists the first among earlier jobs
            page.set_input_files("#file-input", str(root / "new" / f"new_{genre}.mp4"))
            page.wait_for_function(
                f"document.getElementById('result-title').textContent === 'new_{genre}.mp4' && "
                "document.getElementById('result-status').textContent === 'done'",
                timeout=120_000,
            )
            page.wait_for_function("document.querySelectorAll('#genres tbody tr').length === 10")
            page.wait_for_function(
                "(() => { const i = document.getElementById('timeline');"
                " return i.complete && i.naturalWidth > 800 && i.style.display === 'block'; })()",
                timeout=60_000,
            )
            rows = page.locator("#genres tbody tr")
            assert rows.first.locator("td.genre").inner_text() == genre  # ranked: the true genre first
            assert "predicted" in (rows.first.get_attribute("class") or "")
            assert page.inner_text("#result-title") == f"new_{genre}.mp4"
            assert "uploaded new_" in page.inner_text("#progress-text")
        page.wait_for_function("document.querySelectorAll('#jobs tbody tr.job').length === 2")
        jobs = page.inner_text("#jobs")
        assert "new_comedy.mp4" in jobs and "new_action.mp4" in jobs
        page.screenshot(path=str(SCREENSHOTS / "serve_1280x800.png"))
        page.screenshot(path=str(SCREENSHOTS / "serve_1280_full.png"), full_page=True)

        phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
        mobile = phone.new_page()
        mobile.on("pageerror", lambda e: errors.append(str(e)))
        mobile.goto(url + "/")
        mobile.wait_for_function("document.querySelectorAll('#jobs tbody tr.job').length === 2")
        mobile.click("#jobs tbody tr.job >> nth=1")  # the earlier job opens from the list
        mobile.wait_for_selector("#result-status.done")
        mobile.wait_for_function("document.getElementById('timeline').naturalWidth > 800")
        assert mobile.inner_text("#result-title") == "new_comedy.mp4"
        width = mobile.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide on a 390 px phone: it scrolls sideways"
        mobile.screenshot(path=str(SCREENSHOTS / "serve_390x844.png"))
        mobile.screenshot(path=str(SCREENSHOTS / "serve_390_full.png"), full_page=True)

        mobile.click("#jobs tbody tr.job >> nth=1 >> button")  # delete it
        mobile.wait_for_function("document.querySelectorAll('#jobs tbody tr.job').length === 1")
        assert service.store.counts()["done"] == 1
        phone.close()
        context.close()
    assert errors == []
    for name in ("serve_1280x800.png", "serve_390x844.png"):
        assert (SCREENSHOTS / name).stat().st_size > 20_000


def test_api_docs_render_offline(trained, browser, tmp_path):
    """/docs (Swagger UI) and /redoc load everything from the server itself, Redoc's footer logo included:
    with every request to another host aborted and counted, none is attempted, and both pages render every
    operation of the API."""
    from urllib.parse import urlsplit

    from divita.inference.predict import GenreClassifier

    service = make_service(trained, GenreClassifier.from_checkpoint(trained[1]), tmp_path / "serve")
    app = create_app(service)
    summaries = [op["summary"] for ops in app.openapi()["paths"].values() for op in ops.values()]
    assert len(summaries) >= 6 and "Upload a trailer (multipart field `file`); its job is queued" in summaries
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    remote: dict[str, list[str]] = {"/docs": [], "/redoc": []}
    local: dict[str, list[str]] = {"/docs": [], "/redoc": []}
    where = ["/docs"]

    def only_loopback(route):
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
            local[where[0]].append(urlsplit(url).path)
            route.continue_()
        else:
            remote[where[0]].append(url)
            route.abort()

    with live_server(app) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.route("**/*", only_loopback)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/docs")
        page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
        page.wait_for_load_state("networkidle")
        assert page.locator(".swagger-ui .opblock").count() == len(summaries)
        shown = page.locator(".swagger-ui .opblock-summary-description").all_inner_texts()
        assert sorted(shown) == sorted(summaries), shown
        paths = page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
        assert "/v1/predictions" in [p.replace("\u200b", "") for p in paths], paths
        assert "divita serve" in page.inner_text(".swagger-ui .info .title")
        page.screenshot(path=str(SCREENSHOTS / "serve_docs_offline.png"))

        where[0] = "/redoc"
        page.goto(url + "/redoc")
        page.wait_for_selector("text=Upload a trailer (multipart field `file`); its job is queued", timeout=30_000)
        page.wait_for_load_state("networkidle")
        headings = page.locator("h2").all_inner_texts()
        assert all(s in headings for s in summaries), headings
        logo = page.locator("img[alt='redocly logo']")  # the footer's: from this server now
        page.wait_for_function("document.querySelector(\"img[alt='redocly logo']\").naturalWidth > 0")
        assert logo.get_attribute("src") == "static/redoc-logo.svg"
        page.screenshot(path=str(SCREENSHOTS / "serve_redoc_offline.png"))
        context.close()
    assert remote == {"/docs": [], "/redoc": []}, remote
    assert errors == [], errors
    assert {"/static-offline-docs/swagger-ui-bundle.js", "/openapi.json"} <= set(local["/docs"]), local
    assert {"/redoc-offline.js", "/openapi.json", "/static/redoc-logo.svg"} <= set(local["/redoc"]), local
    assert (SCREENSHOTS / "serve_docs_offline.png").stat().st_size > 20_000
    assert (SCREENSHOTS / "serve_redoc_offline.png").stat().st_size > 20_000
