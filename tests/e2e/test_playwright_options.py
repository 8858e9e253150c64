"""pytest-playwright's own options work with our fixtures: a failing browser test leaves its
trace and screenshot with `--tracing retain-on-failure --screenshot only-on-failure`, and
`--base-url` skips the tests that need the app in process. Each runs pytest in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAILING = """
from playwright.sync_api import expect


def test_a_page_that_is_not_what_we_expect(page):
    page.set_content("<main><h1>Hello</h1></main>")
    expect(page.get_by_role("heading")).to_have_text("Goodbye", timeout=500)


def test_a_page_that_is(page):
    page.set_content("<main><h1>Hello</h1></main>")
    expect(page.get_by_role("heading")).to_have_text("Hello")
"""


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_failing_test_leaves_its_trace_and_screenshot(tmp_path: Path) -> None:
    (tmp_path / "test_fails.py").write_text(FAILING)
    # Our fixtures, as tests/e2e gets them (a conftest's fixtures override the plugin's).
    (tmp_path / "conftest.py").write_text("from tests.e2e.conftest import *  # noqa: F403\n")
    out = tmp_path / "results"
    result = run_pytest(
        tmp_path,
        "test_fails.py",
        "--tracing",
        "retain-on-failure",
        "--screenshot",
        "only-on-failure",
        "--output",
        str(out),
    )
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    kept = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    folder = "test-fails-py-test-a-page-that-is-not-what-we-expect-chromium"
    assert f"{folder}/trace.zip" in kept, kept
    assert any(name.startswith(f"{folder}/test-failed-") for name in kept), kept
    assert all(name.startswith(f"{folder}/") for name in kept), kept  # the passing test: none


def test_base_url_skips_what_needs_the_app_in_process(tmp_path: Path) -> None:
    # Nothing listens on port 9: the in-process test must be skipped before it tries.
    result = run_pytest(
        ROOT, "tests/e2e/test_tax.py", "--base-url", "http://127.0.0.1:9", "-rs", "-q"
    )
    assert "1 skipped" in result.stdout, result.stdout + result.stderr
    assert "needs the app in process" in result.stdout
