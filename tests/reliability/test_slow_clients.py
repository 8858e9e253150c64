"""Slow clients against gunicorn: why sync workers need a buffering reverse proxy.

A sync worker reads the whole request itself, so a client that sends its headers a byte at a
time holds the worker until GUNICORN_TIMEOUT: as many slow clients as workers and the site stops
answering. A buffering proxy (nginx's default `proxy_request_buffering on`) passes requests on
only once complete. gthread workers (GUNICORN_THREADS > 1) wait for readable sockets in a poller
and give each request a thread, so a few slow clients take a few threads, not the site.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.reliability.gunicorn import serve

GROUP = "limits, reused checkouts, weak passwords, form targets"
WORKERS = 2


@contextmanager
def gunicorn(database_url: str, threads: int, log_path: Path) -> Iterator[str]:
    settings = {
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": str(threads),
    }
    with serve(settings, log_path) as url:
        yield url


def slow_clients(url: str, count: int) -> list[socket.socket]:
    """`count` connections that have begun a request and never finish its headers."""
    port = int(url.rsplit(":", 1)[1])
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sockets.append(sock)
    time.sleep(0.5)  # let the workers (or their threads) pick them up
    return sockets


def answers_while_slow_clients_wait(url: str) -> bool:
    held = slow_clients(url, WORKERS)
    try:
        return requests.get(f"{url}/healthz", timeout=3).status_code == 200
    except requests.RequestException:
        return False
    finally:
        for sock in held:
            sock.close()


def test_slow_clients_hold_every_sync_worker(database_url, tmp_path):
    """Why the README asks for a buffering reverse proxy in front of sync workers."""
    with gunicorn(database_url, threads=1, log_path=tmp_path / "gunicorn.log") as url:
        assert requests.get(f"{url}/healthz", timeout=3).status_code == 200
        assert not answers_while_slow_clients_wait(url)


def test_gthread_workers_keep_answering_while_slow_clients_wait(database_url, figures, tmp_path):
    with gunicorn(database_url, threads=4, log_path=tmp_path / "gunicorn.log") as url:
        assert figures.attack(GROUP, refused=answers_while_slow_clients_wait(url))
