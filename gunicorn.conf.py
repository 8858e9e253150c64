"""gunicorn settings: `gunicorn --config gunicorn.conf.py wsgi:app` (see README, "Deploying")."""

import multiprocessing
import os
from typing import Any

from webapp.config import load_env_file

# Development: the working directory's .env, as `flask` reads it (production: the environment).
load_env_file()


def _setting(name: str, default: str) -> str:
    """An environment variable; empty (`WEB_CONCURRENCY=` as in .env.example) means the default."""
    return os.environ.get(name) or default


bind = _setting("GUNICORN_BIND", "127.0.0.1:8000")
# One sync worker per core plus one. Gunicorn's usual advice is two per core plus one, for apps
# that mostly wait on I/O; with pages served from memory ours mostly compute, and on 2 cores
# `make bench` measured 3 workers ahead of 5 on every row (5-40% more requests/s, a shorter
# p99, less memory). With a distant database, raise WEB_CONCURRENCY and measure again.
workers = int(_setting("WEB_CONCURRENCY", str(multiprocessing.cpu_count() + 1)))
threads = int(_setting("GUNICORN_THREADS", "1"))
# A sync worker busy with one request for longer than this is killed, and its client gets a
# dropped connection. The app keeps each request's Stripe work within STRIPE_REQUEST_BUDGET_SECONDS
# (15 by default) and refuses to start unless that leaves at least 5 s of this timeout; webapp's
# Config reads GUNICORN_TIMEOUT too, so set it here through the variable, not --timeout.
timeout = int(_setting("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Load the app once in the master and fork workers from it: a new or recycled worker starts in
# milliseconds instead of importing everything again (about a second of CPU under load), and
# shares the master's memory pages. Safe because building the app opens no connection: pools,
# the member cache's change feed and the Stripe client all connect on first use, in the worker.
preload_app = True
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = 20000
max_requests_jitter = 2000
accesslog = _setting("GUNICORN_ACCESSLOG", "-")
# The usual combined format plus the duration and the app's request id (X-Request-ID), so an
# access line can be matched with the application's log lines of the same request.
access_log_format = (
    '%(h)s - - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms %({x-request-id}o)s'
)
errorlog = "-"
# Each worker touches a heartbeat file after every request; on a disk-backed /tmp that write can
# stall the request (gunicorn's FAQ), so keep it in memory where the system offers /dev/shm.
SHM = "/dev/shm"  # noqa: S108 (gunicorn makes its own unpredictable file inside)
worker_tmp_dir = SHM if os.path.isdir(SHM) else None
# Only these addresses may tell us the original scheme (X-Forwarded-Proto): the reverse proxy.
forwarded_allow_ips = _setting("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server: Any) -> None:  # gunicorn's Arbiter (gunicorn ships no types)
    """Say so when a server starts in development mode only because APP_ENV was left out.

    The app defaults to development (sandbox Stripe, development secrets) so that `make run`
    needs no settings; a server started without APP_ENV is most likely meant for production.
    """
    if "APP_ENV" not in os.environ:
        server.log.warning(
            "APP_ENV is not set: serving in DEVELOPMENT mode (the Stripe sandbox, development "
            "secrets, no production checks). Set APP_ENV=production to deploy, or "
            "APP_ENV=development to run development mode on purpose."
        )
