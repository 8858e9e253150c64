"""Browser tests: the site in a thread (or any deployed site: `--base-url`), driven by
pytest-playwright in Debian's Chromium.

We build on pytest-playwright's own fixtures (`browser`, `new_context`, `context`, `page`) and
only change what they launch, so its options work: `--tracing`, `--screenshot`, `--video`,
`--output`, `--headed`, `--slowmo`, `--browser-channel`. Playwright cannot download browsers here,
so it launches /usr/bin/chromium (CHROMIUM_PATH) unless `--browser-channel` names another.

`pytest tests/e2e --base-url http://host:port` runs the suite against a site someone started
(sandbox mode); tests marked `in_process` (they read the database, change the app's settings or
drive the sandbox's clock from inside) are skipped there.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import BrowserContext, Page
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import _empty_all_tables, make_app
from webapp.extensions import db

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Where `shoot` keeps its screenshots (look at them when a page changes).
SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-e2e"))
# The WCAG 2.x A/AA rules and axe's best practices: every violation fails the test.
AXE_OPTIONS = {"resultTypes": ["violations"]}
AXE = Axe()  # axe-core as shipped inside the axe-playwright-python wheel: nothing fetched


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    remote = config.getoption("base_url", None)
    for item in items:
        if "/e2e/" not in str(item.fspath):
            continue
        item.add_marker(pytest.mark.e2e)
        if remote and item.get_closest_marker("in_process"):
            item.add_marker(pytest.mark.skip(reason=f"needs the app in process, not {remote}"))


# --- what pytest-playwright launches -----------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any], browser_channel: str | None
) -> dict[str, Any]:
    """pytest-playwright's launch options (--headed, --slowmo, --browser-channel) plus ours."""
    launch = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    if not browser_channel:
        if not os.path.exists(CHROMIUM_PATH):
            pytest.fail(f"Chromium not found at {CHROMIUM_PATH}: run `make test` (it installs it)")
        launch["executable_path"] = CHROMIUM_PATH
    return launch


@pytest.fixture
def new_context(
    new_context: Callable[..., BrowserContext], browser_context_args: dict[str, Any]
) -> Callable[..., BrowserContext]:
    """pytest-playwright's `new_context` (it records traces, videos and screenshots of every
    context it makes): tests that need a second browser or another viewport call this, never
    `browser.new_context`. A desktop window unless the test or `--device` says otherwise. Our
    pages answer in milliseconds; 15 s tells a hang from a wait."""

    def make(**kwargs: Any) -> BrowserContext:
        if "viewport" in browser_context_args:  # --device chose it
            kwargs.pop("viewport", None)
        else:
            kwargs.setdefault("viewport", DESKTOP)
        context = new_context(**kwargs)
        context.set_default_timeout(15_000)
        return context

    return make


# --- the site under test -----------------------------------------------------------------------


@dataclass
class LiveServer:
    app: Flask
    server: BaseWSGIServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


@dataclass
class RemoteSite:
    """A site someone else started (`--base-url`): only its URL is known."""

    url: str

    @property
    def app(self) -> Flask:
        pytest.fail("this test reads the app in process: mark it @pytest.mark.in_process")


@pytest.fixture
def live_server(
    request: pytest.FixtureRequest, base_url: str | None, config_overrides: dict[str, Any]
) -> Iterator[LiveServer | RemoteSite]:
    """The real app on a free port, webhooks delivered in the background as Stripe does; or,
    with `--base-url`, the site at that address."""
    if base_url:
        yield RemoteSite(base_url.rstrip("/"))
        return
    request.getfixturevalue("_schema")
    database_url = request.getfixturevalue("database_url")
    overrides = {"SANDBOX_WEBHOOK_DELIVERY": "thread", **config_overrides}
    app = make_app(database_url, **overrides)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.config["SERVER_NAME"] = None
    app.config["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveServer(app, server)
    server.shutdown()
    thread.join(timeout=10)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    _empty_all_tables(database_url)


def unique_email(name: str, domain: str = "example.com") -> str:
    """An address no earlier run used: a deployed site keeps its accounts between runs."""
    return f"{name}-{secrets.token_hex(4)}@{domain}"


# --- looking at pages --------------------------------------------------------------------------


def axe_report(page: Page, name: str) -> str | None:
    """axe-core's report of the page as it is now (every rule, every impact), None if clean."""
    results = AXE.run(page, options=AXE_OPTIONS)
    if not results.violations_count:
        return None
    width = page.viewport_size["width"] if page.viewport_size else "?"
    return f"{name} at {width}px ({page.url}):\n{results.generate_report()}"


def assert_accessible(page: Page, name: str) -> None:
    """axe-core finds nothing on the page as it is now."""
    report = axe_report(page, name)
    assert report is None, report


def shoot(page: Page, name: str, *, top: bool = False) -> None:
    """The page at 1280 and 390 px: a full-page screenshot of each (`top`: the first screen as
    well), no sideways scrolling, and no axe-core violation at either width."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size in (DESKTOP, PHONE):
        width = size["width"]
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        if top:
            page.screenshot(path=str(SHOTS / f"{name}-{width}-top.png"))
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{name} scrolls sideways at {width}px"
        assert_accessible(page, name)
    page.set_viewport_size(DESKTOP)
