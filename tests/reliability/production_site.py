"""The site as production runs it, attacked as issue 13's reviewer did: `make attack-production`.

Starts, on this machine:

- a Stripe stand-in: the sandbox served over HTTP (`flask stripe-sandbox serve`), since the
  production app refuses the in-process sandbox and real Stripe is out of reach;
- the site under gunicorn with four sync workers and production settings: `APP_ENV=production`,
  secrets of its own, Redis for rate limits, PostgreSQL (a fresh database, dropped afterwards),
  `PUBLIC_BASE_URL=https://llmgen.example`, and one trusted reverse proxy
  (`TRUSTED_PROXY_COUNT=1`), which this script plays: it adds X-Forwarded-For/-Proto as nginx
  would, and forwards whatever Host header the client sent.

Then tries what an attacker would, prints one row per attack (tried / refused) and exits 1 if
any attack got through. tests/reliability/test_production_site.py runs the same attacks.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.reliability.gunicorn import ROOT, free_port

BIN = Path(sys.executable).parent
PUBLIC_HOST = "llmgen.example"
SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = os.environ.get("ATTACK_REDIS_URL", "redis://127.0.0.1:6379/0")
STRIPE_KEY = "sk_test_production_site_attacks"
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def strong_password() -> str:
    return "Pw-" + secrets.token_urlsafe(18)


@dataclass
class Attack:
    """One row of the report: what was tried, how often, how often it was refused."""

    group: str
    name: str
    tried: int = 0
    refused: int = 0
    notes: list[str] = field(default_factory=list)

    def count(self, refused: bool, note: str = "") -> None:
        self.tried += 1
        self.refused += int(refused)
        if not refused and note:
            self.notes.append(note)

    @property
    def held(self) -> bool:
        return self.tried > 0 and self.refused == self.tried


@dataclass
class Browser:
    """A visitor behind the reverse proxy: their address, their cookies (kept by hand, since
    the site's cookies are Secure and the proxy's hop to gunicorn is plain HTTP)."""

    site: ProductionSite
    address: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, host: str = PUBLIC_HOST, **kwargs: Any):
        headers = {
            "Host": host,
            "X-Forwarded-For": self.address,
            "X-Forwarded-Proto": "https",
            "Referer": f"https://{PUBLIC_HOST}{path}",
            **kwargs.pop("headers", {}),
        }
        response = requests.request(
            method,
            self.site.url + path,
            headers=headers,
            cookies=dict(self.cookies),
            allow_redirects=False,
            timeout=30,
            **kwargs,
        )
        self.cookies.update(response.cookies.get_dict())
        return response

    def login(self, email: str, password: str) -> int:
        page = self.request("GET", "/login")
        token = CSRF.search(page.text)
        if token is None:
            return page.status_code
        form = {"email": email, "password": password, "csrf_token": token.group(1)}
        return self.request("POST", "/login", data=form).status_code


class ProductionSite:
    """The processes and database behind the attacks; a context manager that cleans up."""

    def __init__(self, workdir: Path, workers: int = 4) -> None:
        self.workdir, self.workers = workdir, workers
        self.database = f"attack_{int(time.time())}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.port, self.stripe_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stripe_url = f"http://127.0.0.1:{self.stripe_port}"
        self.processes: list[subprocess.Popen] = []
        self.env = self._production_env()

    # --- set-up ---------------------------------------------------------------------------

    def _production_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "SANDBOX_"))}
        env.update(
            {
                "APP_ENV": "production",
                "SECRET_KEY": secrets.token_urlsafe(48),
                "JWT_SECRET": secrets.token_urlsafe(48),
                "DATABASE_URL": f"{SERVER}/{self.database}",
                "STRIPE_SECRET_KEY": STRIPE_KEY,
                "STRIPE_API_BASE": self.stripe_url,
                "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(16),
                "SESSION_COOKIE_SECURE": "true",
                "PREFERRED_URL_SCHEME": "https",
                "PUBLIC_BASE_URL": f"https://{PUBLIC_HOST}",
                "ALLOWED_REDIRECT_HOSTS": PUBLIC_HOST,
                "REDIS_URL": REDIS_URL,
                # Nothing listens there: the outbox keeps what it cannot send.
                "MAIL_URL": "smtp://127.0.0.1:1",
                "RATELIMIT_KEY_PREFIX": f"attack-{uuid.uuid4().hex}",
                "TRUSTED_PROXY_COUNT": "1",
                "FORWARDED_ALLOW_IPS": "127.0.0.1",
                "WEB_CONCURRENCY": str(self.workers),
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "GUNICORN_ACCESSLOG": "/dev/null",
                "LOG_LEVEL": "WARNING",
            }
        )
        return env

    def __enter__(self) -> ProductionSite:
        try:
            self._create_database()
            self._flask(self.env, "db", "upgrade")
            self._start_stripe()
            # As on a real deploy: prices and the portal configuration are made by the CLI.
            self._flask(self.env, "stripe", "sync-catalog")
            self.gunicorn = self._start_gunicorn(self.env, "gunicorn.log")
            proxied = {"Host": PUBLIC_HOST, "X-Forwarded-For": "192.0.2.1"}
            self._wait_until_up(self.url + "/healthz", self.gunicorn, "gunicorn", proxied)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def _create_database(self) -> None:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def _flask(self, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", *args],
            cwd=ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _start_stripe(self) -> None:
        """The sandbox as a separate HTTP server, with its own SQLite file: "Stripe"."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "SANDBOX_"))}
        env.update(
            {
                "APP_ENV": "development",
                "DATABASE_URL": f"sqlite:///{self.workdir / 'stripe.db'}",
                "SANDBOX_DELIVER_TO_SELF": "false",
                "LOG_LEVEL": "WARNING",
            }
        )
        self._flask(env, "db", "upgrade")
        log = (self.workdir / "stripe.log").open("w")
        process = subprocess.Popen(
            [
                str(BIN / "flask"),
                "--app",
                "wsgi",
                "stripe-sandbox",
                "serve",
                "--port",
                str(self.stripe_port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        self._wait_until_up(self.stripe_url + "/healthz", process, "the Stripe sandbox")

    def _start_gunicorn(self, env: dict[str, str], log_name: str) -> subprocess.Popen:
        log = (self.workdir / log_name).open("w")
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def _wait_until_up(
        self, url: str, process: subprocess.Popen, name: str, headers: dict[str, str] | None = None
    ) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: see {self.workdir}")
            try:
                if requests.get(url, headers=headers, timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not start within 60 s: see {self.workdir}")

    # --- helpers for the attacks ----------------------------------------------------------

    def create_user(self, email: str, password: str) -> None:
        # The password goes on stdin: `flask users` never takes one on the command line.
        self._flask(self.env, "users", "create", "--email", email, stdin=password + "\n")

    def browser(self, address: str) -> Browser:
        return Browser(self, address)

    def stripe_object(self, path: str) -> dict[str, Any]:
        response = requests.get(self.stripe_url + path, auth=(STRIPE_KEY, ""), timeout=10)
        response.raise_for_status()
        return response.json()

    def refuses_to_start(self, app_env: str) -> tuple[bool, str]:
        """Start gunicorn with APP_ENV=`app_env`: True if it exits at once, and its words."""
        env = {**self.env, "APP_ENV": app_env, "GUNICORN_BIND": f"127.0.0.1:{free_port()}"}
        log_name = f"gunicorn-{len(self.processes)}.log"
        process = self._start_gunicorn(env, log_name)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            return False, "still running after 60 s"
        return process.returncode != 0, (self.workdir / log_name).read_text()


# --- The attacks -----------------------------------------------------------------------------


def forged_hosts(site: ProductionSite) -> Attack:
    """Host and X-Forwarded-Host headers must not decide where a payer is sent."""
    attack = Attack("forged hosts and redirects", "forged Host / X-Forwarded-Host")
    email, password = "payer@example.com", strong_password()
    site.create_user(email, password)
    partner = site.browser("198.51.100.7")
    token = partner.request(
        "POST", "/api/v1/auth/token", json={"email": email, "password": password}
    ).json()["accessToken"]
    api = {"Authorization": f"Bearer {token}"}
    for host in ("evil.example", f"{PUBLIC_HOST}.evil.example", "127.0.0.1"):
        page = partner.request("GET", "/login", host=host)
        attack.count(page.status_code == 400, f"GET /login with Host {host}: {page.status_code}")
        started = partner.request(
            "POST",
            "/api/v1/subscriptions/checkout",
            host=host,
            headers=api,
            json={"planId": "starter"},
        )
        attack.count(
            started.status_code == 400, f"checkout with Host {host}: {started.status_code}"
        )
    # The proxy passes X-Forwarded-Host along; the site must not believe it.
    started = partner.request(
        "POST",
        "/api/v1/subscriptions/checkout",
        headers={**api, "X-Forwarded-Host": "evil.example"},
        json={"planId": "starter"},
    )
    if started.status_code == 200:
        session = site.stripe_object(f"/v1/checkout/sessions/{started.json()['sessionId']}")
        for url in (session["success_url"], session["cancel_url"]):
            on_site = url.startswith(f"https://{PUBLIC_HOST}/")
            attack.count(on_site, f"X-Forwarded-Host steered a redirect to {url}")
    else:
        attack.count(
            False, f"checkout through the proxy failed: {started.status_code} {started.text}"
        )
    steered = partner.request(
        "POST",
        "/api/v1/subscriptions/checkout",
        headers=api,
        json={"planId": "starter", "successUrl": "https://evil.example/thanks"},
    )
    attack.count(steered.status_code == 400, f"successUrl on evil.example: {steered.status_code}")
    return attack


def password_ceiling(site: ProductionSite) -> Attack:
    """Wrong passwords for one account from 40 addresses at once, over all workers."""
    attack = Attack("login guessing and lock-outs", "40 wrong passwords, 40 addresses, 1 minute")
    email = "target@example.com"
    site.create_user(email, strong_password())
    guessers = [site.browser(f"203.0.113.{n}") for n in range(1, 41)]
    for guesser in guessers:  # each fetches the form first, as a script driving a browser would
        guesser.request("GET", "/login")
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda g: g.login(email, "wrong-" + g.address), guessers))
    checked = sum(1 for status in answers if status == 400)  # "Incorrect email or password"
    for status in answers:
        attack.count(status == 429 or status == 400)
    over = max(0, checked - 10)
    for _ in range(over):
        attack.count(False, "a password was checked beyond the ceiling of 10 a minute")
    attack.name += f" ({checked} checked)"
    return attack


def owner_behind_the_same_proxy(site: ProductionSite) -> Attack:
    """The owner logs in from the address an attacker is being throttled at."""
    attack = Attack("login guessing and lock-outs", "owner at the attacker's address")
    email, password = "owner@example.com", strong_password()
    site.create_user(email, password)
    shared_address = "192.0.2.50"  # one office, or one carrier-grade NAT
    owner = site.browser(shared_address)
    first = owner.login(email, password)
    attack.count(first == 303, f"the owner's first log-in answered {first}")
    owner.request("POST", "/logout", data={"csrf_token": _token(owner, "/account")})
    attacker = site.browser(shared_address)
    statuses = [attacker.login(email, f"guess-{n}") for n in range(25)]
    throttled = statuses.count(429)
    attack.count(throttled > 0, f"the attacker was never throttled: {statuses}")
    again = owner.login(email, password)
    attack.count(again == 303, f"the owner was locked out: {again}")
    # A colleague at the same address, on a browser never used for their account before.
    colleague_email, colleague_password = "colleague@example.com", strong_password()
    site.create_user(colleague_email, colleague_password)
    colleague = site.browser(shared_address).login(colleague_email, colleague_password)
    attack.count(colleague == 303, f"a colleague at the address was locked out: {colleague}")
    return attack


def _token(browser: Browser, path: str) -> str:
    match = CSRF.search(browser.request("GET", path).text)
    return match.group(1) if match else ""


def unknown_environments(site: ProductionSite) -> Attack:
    attack = Attack("unknown environments and weak production settings", "APP_ENV spelt otherwise")
    for name in ("Production", "PRODUCTION", "prod"):
        refused, log = site.refuses_to_start(name)
        attack.count(refused and "APP_ENV" in log, f"APP_ENV={name} started")
    return attack


ATTACKS: tuple[Callable[[ProductionSite], Attack], ...] = (
    forged_hosts,
    password_ceiling,
    owner_behind_the_same_proxy,
    unknown_environments,
)


@contextmanager
def production_site(workers: int = 4) -> Iterator[ProductionSite]:
    with (
        tempfile.TemporaryDirectory(prefix="attack-production-") as tmp,
        ProductionSite(Path(tmp), workers) as site,
    ):
        yield site


def report(attacks: list[Attack]) -> str:
    width = max(len(a.name) for a in attacks)
    rows = [f"{'attack':<{width}}  {'tried':>5}  {'refused':>7}  check"]
    for a in attacks:
        rows.append(
            f"{a.name:<{width}}  {a.tried:>5}  {a.refused:>7}  {'ok' if a.held else 'FAIL'}"
        )
        rows.extend(f"    {note}" for note in a.notes[:5])
    return "\n".join(rows)


def main() -> int:
    started = time.monotonic()
    with production_site() as site:
        attacks = [run(site) for run in ATTACKS]
    print(
        f"Production site (gunicorn, {site.workers} workers, Redis limits, 1 trusted proxy), "
        f"{time.monotonic() - started:.0f} s"
    )
    print(report(attacks))
    print(json.dumps({a.name: [a.tried, a.refused] for a in attacks}))
    return 0 if all(a.held for a in attacks) else 1


if __name__ == "__main__":
    sys.exit(main())
