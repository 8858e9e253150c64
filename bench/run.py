"""Load and latency benchmark of the site, expressed as ratios to a bare baseline endpoint.

`make bench` (full run, targets enforced; prints the table and writes bench/results.local.md,
ignored by git; `make bench RECORD=1` writes the tracked bench/results.md instead) or
`make bench-smoke` (a couple of seconds per row, no targets). What it does, in one run:

1. creates a throwaway PostgreSQL database under a random name of its own (a SQLite file if
   PostgreSQL is unreachable), migrates it and creates a bench user;
2. starts gunicorn with the repository's gunicorn.conf.py (workers from the core count);
3. logs in through the real form, gets a JWT from the API, and checks every row answers as it
   should (200, or 304 for the conditional row);
4. measures each row with wrk: `/healthz` (touches no database: the baseline), `/pricing`
   anonymous, anonymous with a current ETag (304) and logged in, `/account`, webhook ingestion
   with distinct signed events, and the API's current subscription; in interleaved rounds, each
   row keeping its fastest, so a burst of other work on the machine cannot favour or penalise
   one row;
5. checks the pricing page's weight, origins, compression, static caching and cache headers
   (public for anonymous visitors, private for members), and the workers' memory after the load;
6. stops gunicorn and drops the database, even when something failed.

Ratios rather than absolute figures make the targets mean the same on a laptop and in CI: the
baseline shares the machine, the server, the WSGI stack and wrk with every other row.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import hmac
import http.client
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import webhook_queue  # bench/webhook_queue.py: the webhook-queue rows

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
LUA_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
RESULTS = Path(__file__).resolve().parent / "results.md"  # tracked: written with --record only
LOCAL_RESULTS = Path(__file__).resolve().parent / "results.local.md"  # ignored by git
HOST = "127.0.0.1"  # load is only ever sent to this machine

BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "bench-password-not-secret"  # a throwaway user in a throwaway database
WEBHOOK_SECRET = "whsec_bench_only_" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]

PAGE_WEIGHT_LIMIT = 30 * 1024
RSS_LIMIT_KB = 120 * 1024
FAR_FUTURE_SECONDS = 180 * 24 * 3600
MAX_ERROR_RATE = 0.01  # beyond this a row's figures describe failures, not the page


class BenchError(RuntimeError):
    """The harness itself could not do its job (as opposed to a target being missed)."""


# --- small HTTP client -----------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def fetch(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    """One request, no redirects followed, no decompression: we want to see the raw reply."""
    conn = http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def cookies_from(reply: Reply) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in reply.headers.get_all("Set-Cookie") or []:
        parsed = SimpleCookie()
        parsed.load(header)
        jar.update({name: morsel.value for name, morsel in parsed.items()})
    return jar


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in jar.items())


class _InputFinder(HTMLParser):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.value = name, None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name") == self.name and self.value is None:
            self.value = values.get("value")


class _ResourceFinder(HTMLParser):
    """URLs a browser fetches while loading the page (not links the visitor might follow)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.has_icon = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "link":
            rel = values.get("rel", "").lower().split()
            if {"stylesheet", "icon", "preload", "modulepreload", "manifest"} & set(rel):
                self.urls.append(values.get("href", ""))
                self.has_icon |= "icon" in rel
        elif tag in {"script", "img", "iframe", "source", "audio", "video", "embed"}:
            if values.get("src"):
                self.urls.append(values["src"])
        if values.get("srcset"):
            self.urls += [item.split()[0] for item in values["srcset"].split(",") if item.strip()]
        if "url(" in values.get("style", ""):
            self.urls += css_urls(values["style"])


def css_urls(css: str) -> list[str]:
    found = re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", css)
    found += re.findall(r"@import\s+['\"]([^'\"]+)['\"]", css)
    return [url for url in found if not url.startswith("data:")]


# --- throwaway database ----------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_database(workdir: Path) -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh database; drop it afterwards whatever happened."""
    admin_url = os.environ.get(
        "BENCH_POSTGRES_ADMIN", f"postgresql://postgres@{HOST}:5432/postgres"
    )
    # Random, so two runs (two engineers, two CI jobs on one server) never share or drop each
    # other's database; only the database created here is dropped.
    name = f"bench_{secrets.token_hex(8)}"
    try:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # any failure to reach PostgreSQL means: use SQLite
        print(f"PostgreSQL unreachable ({exc.__class__.__name__}); falling back to SQLite")
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    parts = urlsplit(admin_url)
    try:
        yield f"postgresql+psycopg://{parts.netloc}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            # FORCE: a worker that failed to exit must not keep the database alive.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query_database(url: str, sql: str) -> list[tuple]:
    if url.startswith("sqlite:///"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(url[len("sqlite:///") :])) as conn:
            return conn.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute(sql).fetchall()


# --- gunicorn ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn started with the repository's config, in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.process: subprocess.Popen | None = None

    def start(self, port: int) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"gunicorn exited with {self.process.returncode}\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if fetch(port, "GET", "/healthz").status == 200 and self._all_workers_up():
                    return
            time.sleep(0.25)
        raise BenchError(f"gunicorn did not answer /healthz within 60 s\n{self.log_tail()}")

    def _all_workers_up(self) -> bool:
        return len(self.worker_pids()) >= int(self.env["WEB_CONCURRENCY"])

    def worker_pids(self) -> list[int]:
        """gunicorn's workers: the master's children."""
        assert self.process is not None
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children")
        if children.exists():
            return [int(pid) for pid in children.read_text().split()]
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                # The command name may hold spaces; the parent pid is the 2nd field after ")".
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(stat.parent.name))
        return pids

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # graceful: workers finish their request
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
            # JSON log lines carry whole tracebacks: keep each one short enough to scan.
            return "\n".join(line if len(line) < 400 else line[:400] + " …" for line in tail)
        return ""


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """User + system CPU of a process; with `reaped`, of its exited children instead."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = (13, 14) if reaped else (11, 12)
        return (int(fields[user]) + int(fields[system])) / CLOCK_TICKS
    return 0.0


def database_backends(url: str) -> list[int]:
    """PostgreSQL server processes serving the bench database (their title names it)."""
    if not url.startswith("postgresql"):
        return []
    name = url.rsplit("/", 1)[1].encode()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            title = cmdline.read_bytes()
            if title.startswith(b"postgres: ") and b" " + name + b" " in title:
                pids.append(int(cmdline.parent.name))
    return pids


def cpu_snapshot(server: Server, url: str) -> dict[str, float]:
    """CPU seconds so far of the workers (recycled ones included) and the database backends."""
    assert server.process is not None
    master = server.process.pid
    snapshot = {"reaped workers": cpu_seconds(master, reaped=True)}
    snapshot |= {f"worker {pid}": cpu_seconds(pid) for pid in server.worker_pids()}
    snapshot |= {f"postgres {pid}": cpu_seconds(pid) for pid in database_backends(url)}
    return snapshot


def cpu_used(before: dict[str, float], after: dict[str, float]) -> float:
    """CPU seconds spent between two snapshots. A process born in between started from zero.
    A worker gunicorn recycled in between (max_requests) brings its whole life's CPU into the
    master's "reaped workers" when it is reaped, so what it had used before the first snapshot
    comes off again; a database backend that ended took its time with it."""
    spent = sum(value - before.get(key, 0.0) for key, value in after.items())
    recycled = [key for key in before if key.startswith("worker ") and key not in after]
    return spent - sum(before[key] for key in recycled)


def rss_kb(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def flask_command(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise BenchError(f"flask {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


# --- the rows ------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    min_ratio: float | None = None  # required throughput as a fraction of the baseline's
    latency_spread: bool = False  # p99 must stay within 3 x p50
    status: int = 200  # what the row's requests must answer before they are timed
    skip: str = ""  # why the row was not measured
    rounds: list[dict] = field(default_factory=list)
    result: dict | None = None  # the fastest round

    @property
    def rps(self) -> float:
        assert self.result is not None
        return rate(self.result)


def rate(result: dict) -> float:
    """Requests per second of one wrk result."""
    return result["requests"] / (result["duration_us"] / 1e6)


def wrk(
    port: int,
    row: Row,
    seconds: float,
    threads: int,
    connections: int,
    requests_file: Path | None = None,
) -> dict:
    command = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        f"--script={LUA_SCRIPT}",
    ]
    for name, value in row.headers.items():
        command += ["--header", f"{name}: {value}"]
    command.append(f"http://{HOST}:{port}{row.path}")
    if requests_file is not None:
        command += ["--", str(requests_file), str(threads)]
    # wrk stops itself after --duration; the timeout only guards against a hung process.
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    raise BenchError(f"wrk gave no result for {row.name}:\n{out.stdout}{out.stderr}")


def error_count(result: dict) -> int:
    keys = ("connect_errors", "read_errors", "write_errors", "timeouts", "http_errors")
    return sum(result[key] for key in keys)


def signed_events(path: Path, prefix: str, count: int) -> list[str]:
    """Write `count` distinct Stripe-signed events, one "<signature>\\t<body>" a line."""
    now = int(time.time())
    ids = []
    with path.open("w") as out:
        for n in range(count):
            event_id = f"evt_bench_{prefix}_{n:07d}"
            # An event type the app does not act on: it is still verified, deduplicated and
            # written to the ledger, which is what "ingestion" measures.
            body = json.dumps(
                {
                    "id": event_id,
                    "object": "event",
                    "type": "customer.created",
                    "created": now,
                    "data": {"object": {"id": f"cus_bench_{n}", "object": "customer"}},
                    "livemode": False,
                    "api_version": "2026-10-28.endive",
                },
                separators=(",", ":"),
            )
            out.write(f"{stripe_signature(body, now)}\t{body}\n")
            ids.append(event_id)
    return ids


def stripe_signature(body: str, timestamp: int) -> str:
    digest = hmac.new(
        WEBHOOK_SECRET.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


# --- log in, get a token ---------------------------------------------------------------------


def log_in(port: int) -> str:
    """The session cookie of the bench user, obtained through the real login form."""
    page = fetch(port, "GET", "/login")
    finder = _InputFinder("csrf_token")
    finder.feed(page.text())
    if page.status != 200 or not finder.value:
        raise BenchError(
            f"GET /login: status {page.status}, csrf_token found: {bool(finder.value)}"
        )
    jar = cookies_from(page)
    form = {"email": BENCH_EMAIL, "password": BENCH_PASSWORD, "csrf_token": finder.value}
    reply = fetch(
        port,
        "POST",
        "/login",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie_header(jar),
        },
        urlencode(form).encode(),
    )
    jar.update(cookies_from(reply))
    if reply.status not in (302, 303):
        raise BenchError(f"POST /login answered {reply.status}, not a redirect: wrong credentials?")
    # A browser keeps what the first logged-in page sets (the session with its CSRF secret);
    # replaying the log-in reply's cookie instead would make every measured request create
    # and sign a new session, which no browser does.
    jar.update(cookies_from(fetch(port, "GET", "/account", {"Cookie": cookie_header(jar)})))
    return cookie_header(jar)


def conditional_row(port: int, browser: dict[str, str]) -> Row:
    """Anonymous /pricing revalidated with the ETag it was served with: what a CDN or a browser
    sends once its copy is stale; the site must answer 304 without rendering."""
    etag = fetch(port, "GET", "/pricing", browser).headers.get("ETag")
    if not etag:
        return Row(
            "GET /pricing anonymous, If-None-Match (304)",
            "/pricing",
            skip="skipped: anonymous /pricing sends no ETag",
        )
    return Row(
        "GET /pricing anonymous, If-None-Match (304)",
        "/pricing",
        headers=browser | {"If-None-Match": etag},
        min_ratio=0.95,
        status=304,
    )


def api_token(port: int) -> tuple[str | None, str]:
    """(JWT, "") or (None, why the API row is skipped)."""
    reply = fetch(
        port,
        "POST",
        "/api/v1/auth/token",
        {"Content-Type": "application/json"},
        json.dumps({"email": BENCH_EMAIL, "password": BENCH_PASSWORD}).encode(),
    )
    if reply.status == 404:
        return None, "skipped: the JSON API is not in this build (POST /api/v1/auth/token is 404)"
    if reply.status != 200:
        raise BenchError(f"POST /api/v1/auth/token answered {reply.status}: {reply.text()[:200]}")
    return json.loads(reply.body)["accessToken"], ""


# --- static checks of the pricing page -------------------------------------------------------


@dataclass
class Check:
    name: str
    target: str
    measured: str
    passed: bool


def page_checks(port: int, cookie: str) -> list[Check]:
    checks: list[Check] = []
    page = fetch(port, "GET", "/pricing")
    finder = _ResourceFinder()
    finder.feed(page.text())
    # data: URLs are part of the HTML already; they cost no request.
    urls = list(dict.fromkeys(url for url in finder.urls if url and not url.startswith("data:")))
    if not finder.has_icon:
        urls.append("/favicon.ico")  # browsers ask for it when the page names no icon

    foreign = [url for url in urls if urlsplit(url).netloc not in ("", f"{HOST}:{port}")]
    local = [url for url in urls if url not in foreign]
    sizes = {"/pricing (HTML)": len(page.body)}
    resources: dict[str, Reply] = {}
    # CSS may pull in more files (fonts, images, @import): follow them one level deep.
    queue = list(local)
    while queue:
        url = queue.pop(0)
        if url in resources:
            continue
        reply = fetch(port, "GET", urlsplit(url)._replace(scheme="", netloc="").geturl())
        resources[url] = reply
        if url == "/favicon.ico" and reply.status == 404:
            continue  # a browser caches the miss; there is nothing to transfer but a tiny 404
        sizes[url] = len(reply.body)
        if reply.headers.get("Content-Type", "").startswith("text/css"):
            base = urlsplit(url).path.rsplit("/", 1)[0] + "/"
            for ref in css_urls(reply.text()):
                if urlsplit(ref).netloc:
                    foreign.append(ref)
                else:
                    queue.append(ref if ref.startswith("/") else base + ref)
    total = sum(sizes.values())
    breakdown = ", ".join(f"{url} {size / 1024:.1f} KB" for url, size in sizes.items())
    checks.append(
        Check(
            "pricing page transfer, uncompressed",
            "≤ 30.0 KB",
            f"{total / 1024:.1f} KB ({breakdown})",
            total <= PAGE_WEIGHT_LIMIT,
        )
    )
    checks.append(
        Check(
            "requests to other origins",
            "none",
            ", ".join(foreign) or "none",
            not foreign,
        )
    )

    # Compression: every text response big enough to be worth it, as a browser would ask.
    texts = {
        "/pricing": {},
        "/pricing (logged in)": {"Cookie": cookie},
        "/account": {"Cookie": cookie},
    }
    texts |= {
        url: {}
        for url, reply in resources.items()
        if reply.headers.get("Content-Type", "").split(";")[0]
        in ("text/css", "text/javascript", "application/javascript", "image/svg+xml")
    }
    verdicts = []
    for label, headers in texts.items():
        path = label.split(" ")[0]
        plain = fetch(port, "GET", path, headers)
        packed = fetch(port, "GET", path, headers | {"Accept-Encoding": "gzip"})
        encoding = packed.headers.get("Content-Encoding", "none")
        ok = encoding == "gzip" and len(gzip.decompress(packed.body)) == len(plain.body)
        if len(plain.body) < 500 and encoding != "gzip":
            ok = True  # below COMPRESS_MIN_SIZE gzip would only add bytes
        verdicts.append((label, encoding, len(plain.body), len(packed.body), ok))
    checks.append(
        Check(
            "text responses compressed",
            "Content-Encoding: gzip",
            "; ".join(
                f"{label} {encoding} {plain / 1024:.1f}→{packed / 1024:.1f} KB"
                for label, encoding, plain, packed, _ in verdicts
            ),
            all(ok for *_, ok in verdicts),
        )
    )

    # Static files: a fingerprint in the URL, so they may be cached "forever".
    statics = [url for url in resources if urlsplit(url).path.startswith("/static/")]
    notes, static_ok = [], bool(statics)
    for url in statics:
        parts = urlsplit(url)
        fingerprinted = bool(
            re.search(r"(^|&)v=[0-9a-f]{6,}", parts.query)
            or re.search(r"[.-][0-9a-f]{8,}\.", parts.path)
        )
        cache = resources[url].headers.get("Cache-Control", "")
        max_age = re.search(r"max-age=(\d+)", cache)
        # no-cache (send_file's default) would make browsers revalidate despite the max-age.
        revalidates = re.search(r"no-cache|no-store", cache) is not None
        far = bool(max_age) and int(max_age.group(1)) >= FAR_FUTURE_SECONDS and not revalidates
        static_ok &= fingerprinted and far
        notes.append(f"{url}: Cache-Control {cache or 'none'}")
    checks.append(
        Check(
            "static files fingerprinted, far-future cached",
            "?v=<hash>, max-age ≥ 180 days",
            "; ".join(notes) or "no static files referenced",
            static_ok,
        )
    )
    return checks


def cache_header_check(port: int, cookie: str) -> Check:
    """What a CDN sees: anonymous /pricing public with a validator and no cookie business; a
    member's /pricing private and varying on Cookie."""
    anonymous = fetch(port, "GET", "/pricing")
    member = fetch(port, "GET", "/pricing", {"Cookie": cookie})
    public_cc = anonymous.headers.get("Cache-Control", "")
    anonymous_vary = anonymous.headers.get("Vary", "")
    problems = []
    if not re.search(r"\bpublic\b", public_cc) or "max-age=" not in public_cc:
        problems.append(f"anonymous Cache-Control {public_cc or 'none'}")
    if not anonymous.headers.get("ETag"):
        problems.append("anonymous: no ETag")
    if anonymous.headers.get_all("Set-Cookie") or "cookie" in anonymous_vary.lower():
        problems.append("anonymous: Set-Cookie or Vary: Cookie")
    member_cc = member.headers.get("Cache-Control", "")
    if "private" not in member_cc and "no-store" not in member_cc:
        problems.append(f"member Cache-Control {member_cc or 'none'}")
    if "cookie" not in member.headers.get("Vary", "").lower():
        problems.append("member: no Vary: Cookie")
    return Check(
        "pricing cache headers",
        "anonymous public + ETag, no cookie; member private",
        "; ".join(problems)
        or f"anonymous {public_cc}, ETag {anonymous.headers['ETag']}; member {member_cc}",
        not problems,
    )


# --- reporting -----------------------------------------------------------------------------


def fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def results_table(rows: list[Row], baseline: Row) -> list[str]:
    base = baseline.result
    assert base is not None
    lines = [
        "| row | req/s | x base | p50 ms | x base | p99 ms | x base | CPU ms/req | base/CPU "
        "| errors | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        if row.result is None:
            lines.append(f"| {row.name} | - | - | - | - | - | - | - | - | - | {row.skip} |")
            continue
        r = row.result
        targets, target_note = [], "baseline" if row is baseline else "-"
        cpu_ratio = f"{base['cpu_ms'] / r['cpu_ms']:.2f}" if r["cpu_ms"] else "-"
        if row.min_ratio is not None:
            targets.append(f"≥ {row.min_ratio:.2f} x req/s")
        if row.latency_spread:
            targets.append("p99 ≤ 3 x p50")
        lines.append(
            f"| {row.name} | {row.rps:,.0f} | {row.rps / baseline.rps:.2f} "
            f"| {fmt_ms(r['p50_us'])} | {r['p50_us'] / base['p50_us']:.2f} "
            f"| {fmt_ms(r['p99_us'])} | {r['p99_us'] / base['p99_us']:.2f} "
            f"| {r['cpu_ms']:.2f} | {cpu_ratio} "
            f"| {error_count(r)} | {', '.join(targets) or target_note} |"
        )
    return lines


def row_checks(rows: list[Row], baseline: Row) -> list[Check]:
    checks = []
    for row in rows:
        if row.result is None:
            continue
        r = row.result
        errors = error_count(r)
        checks.append(
            Check(
                f"{row.name}: errors",
                f"≤ {MAX_ERROR_RATE:.0%} of requests",
                f"{errors} of {r['requests']}",
                errors <= MAX_ERROR_RATE * max(1, r["requests"]),
            )
        )
        if row.min_ratio is not None:
            ratio = row.rps / baseline.rps
            checks.append(
                Check(
                    f"{row.name}: throughput",
                    f"≥ {row.min_ratio:.2f} x baseline",
                    f"{ratio:.2f} x ({row.rps:,.0f} / {baseline.rps:,.0f} req/s)",
                    ratio >= row.min_ratio,
                )
            )
        if row.latency_spread:
            # The steadiest round: on a shared machine a burst of other work lands in one round's
            # p99 and says nothing about the page (the fastest round's figures are in the table).
            steady = min(row.rounds, key=lambda rnd: rnd["p99_us"] / rnd["p50_us"])
            spread = steady["p99_us"] / steady["p50_us"]
            checks.append(
                Check(
                    f"{row.name}: p99 / p50",
                    "≤ 3.00 (steadiest round)",
                    f"{spread:.2f} ({fmt_ms(steady['p99_us'])} / {fmt_ms(steady['p50_us'])} ms)",
                    spread <= 3,
                )
            )
    return checks


def checks_table(checks: list[Check]) -> list[str]:
    lines = ["| check | target | measured | |", "| --- | --- | --- | --- |"]
    for check in checks:
        verdict = "pass" if check.passed else "**MISSED**"
        lines.append(f"| {check.name} | {check.target} | {check.measured} | {verdict} |")
    return lines


def machine_summary() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def git_revision() -> str:
    out = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


# --- the run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds a row, no targets")
    parser.add_argument(
        "--seconds", type=float, help="measured seconds a row (default 10; smoke 2)"
    )
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each row")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; smoke 1)")
    parser.add_argument("--connections", type=int, help="wrk connections (default 2 x workers)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--output", type=Path, help="markdown report (default bench/results.local.md)"
    )
    parser.add_argument(
        "--record", action="store_true", help="write the tracked bench/results.md (make RECORD=1)"
    )
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2 if args.smoke else 5)
    # Five: on a shared 2-core machine a row's rounds differ by up to 40% (other tenants'
    # bursts), and three rounds often left a row without one undisturbed round.
    args.rounds = args.rounds or (1 if args.smoke else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)
    if args.output is None and not args.smoke:
        # The tracked results change only when someone means to record a run.
        args.output = RESULTS if args.record else LOCAL_RESULTS
    return args


def server_env(database_url: str, port: int, workers: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "APP_ENV": "development",  # production would insist on live Stripe keys
            "DATABASE_URL": database_url,
            "STRIPE_SECRET_KEY": "",  # never a real key under load: the local sandbox
            "STRIPE_API_BASE": "",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            # The limiter still runs (its cost is part of the figures) but never says no.
            "LOGIN_RATE_LIMIT": "1000000 per minute",
            "API_RATE_LIMIT": "1000000 per minute",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
            "GUNICORN_BIND": f"{HOST}:{port}",
            "PUBLIC_BASE_URL": f"http://{HOST}:{port}",
            "WEB_CONCURRENCY": str(workers),
            "FLASK_DEBUG": "0",
        }
    )
    env.update(webhook_queue.queue_env())  # a Redis broker of this run's own; Stripe +200 ms
    return env


def default_workers() -> int:
    """What gunicorn.conf.py will start, so the harness knows how many workers to wait for."""
    if os.environ.get("WEB_CONCURRENCY"):
        return int(os.environ["WEB_CONCURRENCY"])
    # Evaluated as gunicorn does: from the project directory, which is then on sys.path (the file
    # imports webapp), and in a process of its own so its .env loading stays out of ours.
    read = "import runpy; print(runpy.run_path('gunicorn.conf.py')['workers'])"
    out = subprocess.run(
        [sys.executable, "-c", read], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (apt-get install wrk; `make bench` does it)")
    # SIGTERM (e.g. CI's timeout) must unwind through the finally blocks that clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workers = default_workers()
    connections = args.connections or 2 * workers
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, throwaway_database(Path(tmp)) as url:
        workdir = Path(tmp)
        port = free_port()
        env = server_env(url, port, workers)
        database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        print(f"database: {database}; gunicorn: {workers} workers on {HOST}:{port}")
        flask_command(env, "db", "upgrade")
        # The password goes on stdin: `flask users` never takes one on the command line.
        flask_command(env, "users", "create", "--email", BENCH_EMAIL, stdin=BENCH_PASSWORD + "\n")

        server = Server(env, workdir / "gunicorn.log")
        try:
            server.start(port)
            return run_rows(args, server, port, url, workdir, workers, connections, database)
        except BenchError:
            print(server.log_tail(), file=sys.stderr)
            raise
        finally:
            server.stop()


def run_rows(
    args: argparse.Namespace,
    server: Server,
    port: int,
    url: str,
    workdir: Path,
    workers: int,
    connections: int,
    database: str,
) -> int:
    cookie = log_in(port)
    token, api_skip = api_token(port)
    browser = {"Accept-Encoding": "gzip, deflate", "Accept": "text/html"}
    baseline = Row("GET /healthz (baseline)", "/healthz", headers={"Accept-Encoding": "gzip"})
    rows = [
        baseline,
        Row(
            "GET /pricing anonymous",
            "/pricing",
            headers=browser,
            min_ratio=0.85,
            latency_spread=True,
        ),
        conditional_row(port, browser),
        Row(
            "GET /pricing logged in",
            "/pricing",
            headers=browser | {"Cookie": cookie},
            min_ratio=0.6,
            latency_spread=True,
        ),
        Row("GET /account", "/account", headers=browser | {"Cookie": cookie}, min_ratio=0.6),
        Row("POST /webhooks/stripe", "/webhooks/stripe", method="POST", min_ratio=0.25),
        Row(
            "GET /api/v1/subscriptions/current",
            "/api/v1/subscriptions/current",
            headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"},
            min_ratio=0.5,
            skip=api_skip,
        ),
    ]

    # Every row must answer as expected before it is timed: wrk alone cannot tell a page from a
    # redirect.
    for row in rows:
        if row.skip or row.method != "GET":
            continue
        status = fetch(port, "GET", row.path, row.headers).status
        if status != row.status:
            raise BenchError(f"{row.name} answered {status} before the run, not {row.status}")
    probe_ids = signed_events(workdir / "probe.txt", "probe", 1)
    probe_sql = f"SELECT count(*) FROM webhook_events WHERE id = '{probe_ids[0]}'"
    signature, body = (workdir / "probe.txt").read_text().rstrip("\n").split("\t", 1)
    for _ in range(2):  # the second delivery is a duplicate: it must be accepted too
        reply = fetch(
            port,
            "POST",
            "/webhooks/stripe",
            {"Content-Type": "application/json", "Stripe-Signature": signature},
            body.encode(),
        )
        if reply.status != 200:
            raise BenchError(
                f"webhook probe {probe_ids[0]} answered {reply.status}: {reply.text()}"
            )
    if query_database(url, probe_sql)[0][0] != 1:
        raise BenchError(f"webhook probe {probe_ids[0]} answered 200 but is not in the ledger")

    threads = min(args.threads, connections)
    measured = [row for row in rows if not row.skip]
    for row in rows:
        if row.skip:
            print(f"{row.name}: {row.skip}")
    ledger = {"sent": 0, "wrapped": 0}

    def measure(row: Row, seconds: float, label: str) -> dict:
        events = None
        if row.method == "POST":
            # Signed right before the run (Stripe's tolerance is 300 s): more events than wrk can
            # send, so none repeats; "run" events are counted in the ledger afterwards.
            fastest = max((rate(r) for r in baseline.rounds), default=2000.0)
            events = workdir / f"events-{label}.txt"
            signed_events(events, label, math.ceil(fastest * seconds * 1.5) + 1000)
        before = cpu_snapshot(server, url)
        result = wrk(port, row, seconds, threads, connections, events)
        # CPU per request (app workers + database) is what the throughput would be bound by on
        # an otherwise idle machine: a second view that other load on the machine barely moves.
        result["cpu_ms"] = (
            1000 * cpu_used(before, cpu_snapshot(server, url)) / max(1, result["requests"])
        )
        if row.method == "POST":
            events.unlink()
            if label.startswith("run"):
                ledger["sent"] += result["requests"]
                ledger["wrapped"] += result["wrapped"]
        return result

    # Rounds interleave the rows, and each row keeps its fastest round: on a shared machine a
    # burst of someone else's work slows whichever row it hits, and best-of-N filters that out
    # for every row alike, the baseline included.
    if args.warmup:
        for row in measured:
            measure(row, args.warmup, "warm")
    for round_number in range(1, args.rounds + 1):
        for row in measured:
            result = measure(row, args.seconds, f"run{round_number}")
            row.rounds.append(result)
            print(
                f"round {round_number} {row.name}: {rate(result):,.0f} req/s, "
                f"p50 {fmt_ms(result['p50_us'])} ms, p99 {fmt_ms(result['p99_us'])} ms, "
                f"CPU {result['cpu_ms']:.2f} ms/req, errors {error_count(result)}"
                + (f", event list wrapped {result['wrapped']}x" if result["wrapped"] else "")
            )
    for row in measured:
        row.result = max(row.rounds, key=rate)
    queue_row, queue_checks = webhook_queue_rows(server, port, url, workdir, threads, connections)
    rows.append(queue_row)

    rss = {pid: rss_kb(pid) for pid in server.worker_pids()}
    checks = row_checks(rows, baseline) + queue_checks
    if any(row.method == "POST" for row in measured):
        stored = query_database(
            url, "SELECT count(*) FROM webhook_events WHERE id LIKE 'evt_bench_run%'"
        )[0][0]
        checks.append(
            Check(
                "webhook events written to the ledger",
                "a row per event answered",
                f"{stored} rows for {ledger['sent']} answered events "
                f"(list wrapped {ledger['wrapped']}x)",
                # Requests still in flight when wrk stopped may add a few rows, never remove any.
                ledger["sent"] <= stored <= ledger["sent"] + args.rounds * connections
                and ledger["wrapped"] == 0,
            )
        )
    checks += page_checks(port, cookie)
    checks.append(cache_header_check(port, cookie))
    worst = max((kb for kb in rss.values() if kb), default=0)
    checks.append(
        Check(
            "worker RSS after the run",
            "≤ 120 MB each",
            ", ".join(f"{kb / 1024:.0f} MB" for kb in rss.values() if kb) or "no workers found",
            0 < worst <= RSS_LIMIT_KB,
        )
    )

    table = results_table(rows, baseline)
    check_lines = checks_table(checks)
    print()
    print("\n".join(table))
    print()
    print("\n".join(check_lines))
    missed = [check for check in checks if not check.passed]
    settings = (
        f"{machine_summary()}; gunicorn {workers} sync workers ({database}); "
        f"wrk {threads} threads, {connections} connections, "
        f"best of {args.rounds} interleaved {args.seconds:g} s rounds a row "
        f"after {args.warmup:g} s warm-up; "
        f"revision {git_revision()}"
    )
    print(f"\n{settings}")
    if args.output:
        write_report(args.output, table, check_lines, settings, missed)
        print(f"wrote {args.output}")
    if args.smoke:
        # No targets in a smoke run, but broken rows (errors instead of pages) still fail it.
        broken = [check for check in missed if check.name.endswith(": errors")]
        return 1 if broken else 0
    if missed:
        print(f"\n{len(missed)} target(s) missed: " + "; ".join(check.name for check in missed))
        return 1
    print("\nevery target met")
    return 0


def webhook_queue_rows(
    server: Server, port: int, url: str, workdir: Path, threads: int, connections: int
) -> tuple[Row, list[Check]]:
    """Ingestion of events we process with no queue worker running (Stripe +200 ms), then the
    backlog drained by one worker, then two; every event must end processed, its effects once.
    """
    row = Row(
        f"POST /webhooks/stripe (invoice.paid, subscription.updated; "
        f"Stripe +{webhook_queue.LATENCY_MS} ms)",
        "/webhooks/stripe",
        method="POST",
        min_ratio=0.4,
    )
    webhook_queue.subscribe(server.env)

    def query(sql: str) -> list[tuple]:
        return query_database(url, sql)

    objects = webhook_queue.stripe_objects(query)
    events = workdir / "queue-events.txt"
    seconds = webhook_queue.INGEST_SECONDS
    write = webhook_queue.event_writer(objects, stripe_signature)
    write(events, "queue", 20_000)
    before = cpu_snapshot(server, url)
    result = wrk(port, row, seconds, threads, connections, events)
    result["cpu_ms"] = (
        1000 * cpu_used(before, cpu_snapshot(server, url)) / max(1, result["requests"])
    )
    row.rounds.append(result)
    row.result = result
    print(
        f"{row.name}: {rate(result):,.0f} req/s, p50 {fmt_ms(result['p50_us'])} ms, "
        f"errors {error_count(result)}, list wrapped {result['wrapped']}x"
    )
    top_up_backlog(port, workdir, write, query)
    workers = webhook_queue.Workers(server.env, workdir)
    try:
        drained = webhook_queue.drain(workers, query, "queue")
    finally:
        workers.stop()
    one, two = drained.one_worker, drained.two_workers
    print(
        f"drain of {drained.backlog} events: one worker {_per_second(one)}, two "
        f"{_per_second(two)}, empty after {drained.seconds_to_empty:.0f} s"
    )
    ratio = two / one if one and two else 0.0
    problems = webhook_queue.ledger_problems(query, "queue", [i for _s, i in objects])
    answered = query("SELECT count(*) FROM webhook_events WHERE id LIKE 'evt_bench_queue%'")
    checks = [
        Check(
            "queued webhooks: two workers drain faster than one",
            "≥ 1.70 x one worker's events/s",
            f"{ratio:.2f} x ({_per_second(two)} / {_per_second(one)}, "
            f"backlog {drained.backlog}, {webhook_queue.WORKER_THREADS} threads a worker)",
            ratio >= 1.7,
        ),
        Check(
            "queued webhooks: every event processed once",
            "each answered event processed; one credit grant per invoice",
            f"{answered[0][0]} events for {result['requests']} answered; "
            + ("; ".join(problems) or f"all processed, 1 grant for each of {len(objects)}"),
            not problems and result["wrapped"] == 0 and answered[0][0] >= result["requests"],
        ),
    ]
    return row, checks


def _per_second(rate: float | None) -> str:
    return "backlog too small to measure" if rate is None else f"{rate:.1f} events/s"


def top_up_backlog(
    port: int,
    workdir: Path,
    write: Callable[[Path, str, int], list[str]],
    query: Callable[[str], list[tuple]],
) -> None:
    """Deliver more events, one at a time, until the backlog can show the drain rates: a slow
    machine's wrk run may have left too few."""
    sql = "SELECT count(*) FROM webhook_events WHERE id LIKE 'evt_bench_queue%'"
    missing = webhook_queue.MIN_BACKLOG - query(sql)[0][0]
    if missing <= 0:
        return
    events = workdir / "queue-top-up.txt"
    write(events, "queue_top_up", missing)
    for line in events.read_text().splitlines():
        signature, body = line.split("\t", 1)
        headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
        reply = fetch(port, "POST", "/webhooks/stripe", headers, body.encode())
        if reply.status != 200:
            raise BenchError(f"topping up the webhook backlog: {reply.status} {reply.body[:200]!r}")


def write_report(
    path: Path, table: list[str], checks: list[str], settings: str, missed: list[Check]
) -> None:
    verdict = (
        "Every target met."
        if not missed
        else f"{len(missed)} target(s) missed: " + "; ".join(check.name for check in missed) + "."
    )
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"`make bench`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. {settings}.",
            "",
            "Throughput and latency of each row, and their ratio to the baseline `/healthz` "
            "(same app, no database) measured in the same run. Every request carries "
            "`Accept-Encoding: gzip`, as a browser's would; the webhook row sends distinct "
            "signed events of a type the app only records. Rows run in interleaved rounds and "
            "each keeps its fastest round. *CPU ms/req* is the CPU the gunicorn workers and the "
            "PostgreSQL backends spent per request; *base/CPU* is the baseline's divided by the "
            "row's: the throughput ratio to expect when the machine runs nothing else, since "
            "the rows are CPU-bound there, whereas req/s also reflect whatever else the machine "
            "was doing.",
            "",
            *table,
            "",
            *checks,
            "",
            verdict,
            "",
        ]
    )
    path.write_text(text)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(2)
