""".env.example is valid as written: every line parses the same under python-dotenv and bash's
`set -a; . ./.env`, and a copy of it as `.env` starts both `flask run` and gunicorn (real
processes, from a directory of their own). The real environment wins over the file."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from webapp.config import load_env_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / ".env.example"
BIN = Path(sys.executable).parent


def bash_values(directory: Path) -> dict[str, str]:
    """What `set -a; . ./.env` exports, read back from the shell (NUL-separated)."""
    script = (
        "set -a; . ./.env; set +a; "
        'for name in $(sed -n "s/^\\([A-Z_][A-Z0-9_]*\\)=.*/\\1/p" .env); do '
        'printf "%s=%s\\0" "$name" "${!name}"; done'
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=directory,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        check=False,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if item)


def test_every_line_means_the_same_to_python_dotenv_and_bash(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / ".env")
    python = dotenv_values(tmp_path / ".env")
    assert all(value is not None for value in python.values()), "a line without '='"
    assert bash_values(tmp_path) == python
    assert python["LOGIN_ACCOUNT_IP_RATE_LIMIT"] == "5 per minute; 20 per hour"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0].decode()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout} s")


@pytest.fixture
def site_dir(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory holding `.env` (a copy of .env.example) and a migrated SQLite database, and
    the environment to start the site there: the test's own, less anything .env sets, plus
    DATABASE_URL (the environment wins over the file, so the database is the test's)."""
    shutil.copy(EXAMPLE, tmp_path / ".env")
    env = {k: v for k, v in os.environ.items() if k not in dotenv_values(tmp_path / ".env")}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite:///{tmp_path / 'site.db'}")
    env.pop("FLASK_SKIP_DOTENV", None)
    subprocess.run(
        [BIN / "flask", "--app", "wsgi", "db", "upgrade"], cwd=tmp_path, env=env, check=True
    )
    yield tmp_path, env


def serve(command: list[str | Path], directory: Path, env: dict[str, str], url: str) -> None:
    process = subprocess.Popen(
        command, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert wait_for(f"{url}/healthz", process) == 200
        with urllib.request.urlopen(f"{url}/pricing", timeout=10) as response:
            assert response.status == 200
            assert b"Professional" in response.read()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_gunicorn_starts_from_the_example_env(site_dir: tuple[Path, dict[str, str]]) -> None:
    directory, env = site_dir
    port = free_port()
    # Only the file says where to listen: gunicorn.conf.py must have read it. WEB_CONCURRENCY
    # stays empty as in the example (it used to crash int('')).
    with (directory / ".env").open("a") as file:
        file.write(f'\nGUNICORN_BIND="127.0.0.1:{port}"\nWEB_CONCURRENCY=""\n')
    command = [BIN / "gunicorn", "--config", ROOT / "gunicorn.conf.py", "wsgi:app"]
    serve(command, directory, env, f"http://127.0.0.1:{port}")


def test_flask_run_starts_from_the_example_env(site_dir: tuple[Path, dict[str, str]]) -> None:
    directory, env = site_dir
    port = free_port()
    with (directory / ".env").open("a") as file:
        file.write(f"\nFLASK_RUN_PORT={port}\n")  # only the file says where: Flask read it
    command = [BIN / "flask", "--app", "wsgi", "run", "--host", "127.0.0.1"]
    serve(command, directory, env, f"http://127.0.0.1:{port}")


def test_production_reads_only_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=DEBUG\nMEMBER_CACHE_SECONDS=5\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.setenv("MEMBER_CACHE_SECONDS", "7")

    monkeypatch.setenv("APP_ENV", "production")
    assert load_env_file() is False
    assert "LOG_LEVEL" not in os.environ

    monkeypatch.setenv("APP_ENV", "development")
    assert load_env_file() is True
    assert os.environ["LOG_LEVEL"] == "DEBUG"
    assert os.environ["MEMBER_CACHE_SECONDS"] == "7"  # the environment wins over the file
    monkeypatch.delenv("LOG_LEVEL")
