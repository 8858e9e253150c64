"""`gunicorn wsgi:app` without APP_ENV runs development mode: it must say so at start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.gunicorn import GUNICORN, ROOT, free_port

WARNING = "APP_ENV is not set: serving in DEVELOPMENT mode"
BOOTED = "Booting worker"


def start_up_log(tmp_path: Path, **settings: str) -> str:
    """Start `gunicorn wsgi:app` (the README's command: gunicorn.conf.py is read from the
    working directory) with `settings`, and return its stderr up to the first worker's boot."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "APP_ENV"}
    env.update(
        GUNICORN_BIND=f"127.0.0.1:{port}",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'site.db'}",
        **settings,
    )
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [GUNICORN, "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while BOOTED not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not boot a worker:\n{log_path.read_text()}")
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    return log_path.read_text()


def test_gunicorn_without_app_env_warns_that_it_serves_development_mode(tmp_path):
    log = start_up_log(tmp_path)
    [line] = [line for line in log.splitlines() if WARNING in line]
    assert "[WARNING]" in line
    assert "APP_ENV=production" in line


def test_gunicorn_with_app_env_development_on_purpose_says_nothing(tmp_path):
    assert WARNING not in start_up_log(tmp_path, APP_ENV="development")
