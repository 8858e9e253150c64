"""Configuration read from the environment, in one place.

Every variable is listed in `.env.example` and the README. Secrets have no usable default outside
development: `Config.validate()` refuses to start a production app that would run insecurely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"

# Development-only fallbacks. A production config that still uses one of them refuses to start.
DEV_SECRET_KEY = "dev-only-secret-key-change-me"
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me"
SANDBOX_WEBHOOK_SECRET = "whsec_sandbox_local_development_only"

# The only values APP_ENV may take, spelled exactly so: anything else refuses to start rather than
# quietly running a "Production" site on the development secrets.
APP_ENVIRONMENTS = ("development", "test", "production")
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:5000"  # `make run`

# What a request's Stripe budget must leave of gunicorn's worker timeout: time for the database,
# the page and the thread hand-offs around each Stripe attempt.
REQUEST_HEADROOM_SECONDS = 5


def load_env_file(path: str | os.PathLike[str] = ".env") -> bool:
    """Outside production, read `path` (the working directory's `.env`) into the environment;
    True if it was read.

    Development reads the file so `make run`, `flask --app wsgi …` and gunicorn see the same
    settings (Flask's CLI reads it too, by itself). Variables already in the environment win
    over the file. With APP_ENV=production in the environment nothing is read: there the
    environment, set by the service manager, is the one source of settings.
    """
    if os.environ.get("APP_ENV") == "production" or not os.path.isfile(path):
        return False
    from dotenv import load_dotenv  # a development convenience: production never imports it

    load_dotenv(path, override=False)
    return True


# Settings that hold a rate limit ("10 per minute; 100 per hour"), checked at start-up.
LIMIT_SETTINGS = (
    "LOGIN_RATE_LIMIT",
    "LOGIN_ACCOUNT_IP_RATE_LIMIT",
    "LOGIN_ACCOUNT_RATE_LIMIT",
    "LOGIN_DEVICE_RATE_LIMIT",
    "SIGNUP_RATE_LIMIT",
    "SIGNUP_GLOBAL_RATE_LIMIT",
    "PASSWORD_RESET_RATE_LIMIT",
    "PASSWORD_RESET_ACCOUNT_RATE_LIMIT",
    "VERIFY_EMAIL_RESEND_RATE_LIMIT",
    "API_RATE_LIMIT",
)


class ConfigError(RuntimeError):
    """The environment describes a configuration the app must not run with."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int_or_text(value: str) -> int | str:
    """An integer setting, or the text as given, for a start-up check to refuse by name."""
    try:
        return int(value)
    except ValueError:
        return value


def _list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _normalise_database_url(url: str) -> str:
    # Heroku-style URLs name the driver "postgres"; SQLAlchemy wants an explicit driver.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Config:
    """Flask settings built from an environment mapping (`os.environ` by default)."""

    TESTING = False

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.APP_ENV = env.get("APP_ENV", "development")
        # Werkzeug's memory-hard default (0.17 s a hash here); a setting only so that the test
        # suite, which hashes thousands of passwords, can choose a cheap one.
        self.PASSWORD_HASH_METHOD = "scrypt"
        # `CHECKOUT_<OPTION>=true|false` overrides an option of catalog.toml's `[checkout]` for
        # this deployment (webapp/checkout_options.py reads and checks them).
        self.CHECKOUT_OVERRIDES = {k: v for k, v in env.items() if k.startswith("CHECKOUT_")}
        # The site's origin as visitors reach it (`https://llmgen.example`): every absolute URL we
        # hand out (Stripe's success, cancel and return URLs) is built on it, never on the
        # request's Host header, which anyone can forge.
        self.PUBLIC_BASE_URL = (env.get("PUBLIC_BASE_URL") or DEFAULT_PUBLIC_BASE_URL).rstrip("/")
        # Host names the site answers for (Flask's TRUSTED_HOSTS; `.example.com` for all of its
        # subdomains); any other Host header gets a 400. Production defaults to the public host.
        self.TRUSTED_HOSTS: list[str] | None = _list(env.get("TRUSTED_HOSTS")) or (
            [urlsplit(self.PUBLIC_BASE_URL).hostname or ""]
            if self.APP_ENV == "production"
            else None
        )
        self.SECRET_KEY = env.get("SECRET_KEY") or DEV_SECRET_KEY
        self.SQLALCHEMY_DATABASE_URI = _normalise_database_url(
            env.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'app.db'}"
        )
        # A pooled connection idle for longer than DATABASE_PING_AFTER_IDLE_SECONDS is tested
        # before use (one round trip); one used within that window is not, so a database
        # restart fails at most the requests that reuse such a connection (webapp/database.py).
        # DATABASE_POOL_PRE_PING=false turns the test off; 0 tests every checkout, as
        # SQLAlchemy's pool_pre_ping does.
        self.DATABASE_PING_AFTER_IDLE_SECONDS: float | None = (
            float(env.get("DATABASE_PING_AFTER_IDLE_SECONDS", "0.5"))
            if _bool(env.get("DATABASE_POOL_PRE_PING"), default=True)
            else None
        )
        self.SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {
            "pool_recycle": int(env.get("DATABASE_POOL_RECYCLE_SECONDS", "1800")),
        }

        # Sessions and cookies.
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = _bool(env.get("SESSION_COOKIE_SECURE"))
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.WTF_CSRF_TIME_LIMIT = None  # tied to the session instead of a wall clock
        self.MAX_CONTENT_LENGTH = 1024 * 1024
        self.PREFERRED_URL_SCHEME = env.get("PREFERRED_URL_SCHEME", "http")

        # The plan catalog file (default: webapp/catalog.toml, reviewed with the code).
        self.CATALOG_PATH = env.get("CATALOG_PATH", "")

        # Stripe. No secret key means sandbox mode (see DESIGN.md, "Two Stripe modes").
        self.STRIPE_SECRET_KEY = env.get("STRIPE_SECRET_KEY", "")
        self.STRIPE_API_BASE = env.get("STRIPE_API_BASE", "")
        self.STRIPE_WEBHOOK_SECRET = env.get("STRIPE_WEBHOOK_SECRET") or (
            "" if self.STRIPE_SECRET_KEY else SANDBOX_WEBHOOK_SECRET
        )
        # The longest one HTTP attempt to Stripe may take, wall-clock (Stripe answers in well
        # under a second; a slow call is retried, with the same idempotency key).
        self.STRIPE_TIMEOUT_SECONDS = float(env.get("STRIPE_TIMEOUT_SECONDS", "8"))
        self.STRIPE_MAX_NETWORK_RETRIES = int(env.get("STRIPE_MAX_NETWORK_RETRIES", "2"))
        # All the Stripe work of one web request (every call, retry and backoff) ends this long
        # after the request began, so a page answers before gunicorn kills its worker
        # (webapp/stripe_budget.py). CLI commands and background work have per-call limits only.
        self.STRIPE_REQUEST_BUDGET_SECONDS = float(env.get("STRIPE_REQUEST_BUDGET_SECONDS", "15"))
        # gunicorn.conf.py reads the same variable; here only to check the budget against it.
        self.GUNICORN_TIMEOUT = int(env.get("GUNICORN_TIMEOUT", "30"))
        # Sandbox only: extra webhook endpoints (comma-separated URLs) besides this site's own.
        self.SANDBOX_WEBHOOK_URLS = _list(env.get("SANDBOX_WEBHOOK_URLS"))
        # "thread": deliver webhooks in the background, as Stripe does; "sync": before the
        # triggering request returns (deterministic, for tests).
        self.SANDBOX_WEBHOOK_DELIVERY = env.get("SANDBOX_WEBHOOK_DELIVERY", "thread")
        # Sandbox only: deliver to our own /webhooks/stripe (off: only to SANDBOX_WEBHOOK_URLS).
        self.SANDBOX_DELIVER_TO_SELF = _bool(env.get("SANDBOX_DELIVER_TO_SELF"), default=True)
        # Sandbox only: milliseconds the sandbox waits before answering each API call, to see
        # the site as real Stripe's 100-300 ms per call would make it (0: answer at once).
        self.SANDBOX_LATENCY_MS = int(env.get("SANDBOX_LATENCY_MS", "0"))
        # Sandbox only: the base URL of hosted pages when no request names the host (CLI, serve).
        self.SANDBOX_PUBLIC_URL = env.get("SANDBOX_PUBLIC_URL", "")
        # Sandbox only: days before a renewal that `invoice.upcoming` is sent (Stripe's
        # "Upcoming renewal events" setting: 3, 7, 15, 30 or 45).
        self.SANDBOX_UPCOMING_INVOICE_DAYS = _int_or_text(
            env.get("SANDBOX_UPCOMING_INVOICE_DAYS", "7")
        )

        # Billing rules.
        self.PAST_DUE_GRACE_DAYS = int(env.get("PAST_DUE_GRACE_DAYS", "7"))
        # Billing mail (README "Billing emails"): Stripe's own receipts are on (Dashboard,
        # "Successful payments"), so ours are not sent; the balance under which a member is told
        # their credits run low, unless they set their own (0: never).
        self.STRIPE_SENDS_RECEIPTS = _bool(env.get("STRIPE_SENDS_RECEIPTS"))
        self.CREDITS_LOW_THRESHOLD = int(env.get("CREDITS_LOW_THRESHOLD", "100"))

        # Mail (see README "Mail"). MAIL_URL (smtp://user:pass@host:587?starttls=true, or
        # smtps://… for TLS from the first byte) or the MAIL_HOST/… settings name the SMTP server;
        # with neither, mail is kept: logged and shown on the dev mailbox, never sent.
        self._read_mail_settings(env)
        self.MAIL_FROM = env.get("MAIL_FROM") or (
            f"LLMGen <no-reply@{urlsplit(self.PUBLIC_BASE_URL).hostname}>"
        )
        # Send each message right after the transaction that queued it commits (development:
        # `make run` shows mail at once). Production leaves it to `flask mail deliver --loop`.
        self.MAIL_DELIVER_AFTER_COMMIT = _bool(
            env.get("MAIL_DELIVER_AFTER_COMMIT"), default=self.APP_ENV != "production"
        )

        # Links mailed for account recovery (webapp/auth/tokens.py), seconds they stay valid:
        # a password reset (also single-use), an address verification, an address change.
        self.PASSWORD_RESET_MAX_AGE = int(env.get("PASSWORD_RESET_MAX_AGE", "3600"))
        self.EMAIL_VERIFY_MAX_AGE = int(env.get("EMAIL_VERIFY_MAX_AGE", str(7 * 86400)))
        self.EMAIL_CHANGE_MAX_AGE = int(env.get("EMAIL_CHANGE_MAX_AGE", str(86400)))

        # The JSON API.
        self.JWT_SECRET = env.get("JWT_SECRET") or DEV_JWT_SECRET
        self.JWT_LIFETIME_SECONDS = int(env.get("JWT_LIFETIME_SECONDS", "3600"))
        # `POST /auth/login` and `/auth/refresh` (webapp/api/refresh_tokens.py): a short-lived
        # access token and a refresh token that rotates at every use.
        self.ACCESS_TOKEN_LIFETIME_SECONDS = int(env.get("ACCESS_TOKEN_LIFETIME_SECONDS", "900"))
        self.REFRESH_TOKEN_LIFETIME_SECONDS = int(
            env.get("REFRESH_TOKEN_LIFETIME_SECONDS", str(7 * 86400))
        )
        self.ALLOWED_REDIRECT_HOSTS = _list(env.get("ALLOWED_REDIRECT_HOSTS"))
        # The credential of our generation service for POST /credits/usage (two, comma-separated,
        # while rotating). Unset: the usage endpoints refuse every request.
        self.CREDITS_SERVICE_TOKEN = env.get("CREDITS_SERVICE_TOKEN", "")

        # Rate limits and caches: in process by default, Redis when REDIS_URL is set (required
        # in production, where every worker must count against the same limits).
        self.REDIS_URL = env.get("REDIS_URL", "")
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        # Background jobs (webapp/jobs): a Redis URL for Celery's broker. Unset: every job runs
        # in-process when it is queued, as a single process would (make run, the tests).
        self.JOBS_BROKER_URL = env.get("JOBS_BROKER_URL", "")
        self.JOBS_QUEUE = env.get("JOBS_QUEUE", "llmgen")
        # Webhook processing in workers (README "Deploying"): a failed event is retried this
        # many times, after base·2^n seconds (capped at 30 minutes), then left `failed` for
        # `flask webhooks replay`; one still `received` this long is queued again by the sweeper.
        self.WEBHOOK_MAX_RETRIES = int(env.get("WEBHOOK_MAX_RETRIES", "8"))
        self.WEBHOOK_RETRY_BASE_SECONDS = float(env.get("WEBHOOK_RETRY_BASE_SECONDS", "15"))
        self.WEBHOOK_SWEEP_AFTER_SECONDS = float(env.get("WEBHOOK_SWEEP_AFTER_SECONDS", "300"))
        # How often each queue worker's relay queues the events the endpoint recorded.
        self.WEBHOOK_DISPATCH_SECONDS = float(env.get("WEBHOOK_DISPATCH_SECONDS", "0.5"))
        self.RATELIMIT_KEY_PREFIX = env.get("RATELIMIT_KEY_PREFIX", "")
        self.RATELIMIT_ENABLED = _bool(env.get("RATELIMIT_ENABLED"), default=True)
        self.RATELIMIT_HEADERS_ENABLED = True
        # With Redis unreachable, the API's request limits let calls through (Flask-Limiter logs
        # it) rather than answer 500; password checks and sign-ups refuse with 503 instead
        # (webapp/throttle.py), since unlimited guessing is worse than a short outage.
        self.RATELIMIT_SWALLOW_ERRORS = True
        # How many reverse proxies in front append to X-Forwarded-For (and set -Proto); the
        # client address is the one the outermost of them saw. 0: the socket's address.
        self.TRUSTED_PROXY_COUNT = int(env.get("TRUSTED_PROXY_COUNT", "0"))
        # Password checks (log-in and API token), see README "Log-in and sign-up limits": per
        # client address over all accounts, per account and address, per account over all
        # addresses (the ceiling), and per browser that has logged in to the account before.
        self.LOGIN_RATE_LIMIT = env.get("LOGIN_RATE_LIMIT", "30 per minute")
        self.LOGIN_ACCOUNT_IP_RATE_LIMIT = env.get(
            "LOGIN_ACCOUNT_IP_RATE_LIMIT", "5 per minute; 20 per hour"
        )
        self.LOGIN_ACCOUNT_RATE_LIMIT = env.get("LOGIN_ACCOUNT_RATE_LIMIT", "10 per minute")
        self.LOGIN_DEVICE_RATE_LIMIT = env.get("LOGIN_DEVICE_RATE_LIMIT", "10 per minute")
        # Sign-ups (each hashes a password): per client address, and for the whole site.
        self.SIGNUP_RATE_LIMIT = env.get("SIGNUP_RATE_LIMIT", "3 per minute; 10 per hour")
        self.SIGNUP_GLOBAL_RATE_LIMIT = env.get(
            "SIGNUP_GLOBAL_RATE_LIMIT", "2 per second; 60 per minute"
        )
        # "Forgot password" mails: per client address, and per address typed (known or not).
        self.PASSWORD_RESET_RATE_LIMIT = env.get(
            "PASSWORD_RESET_RATE_LIMIT", "5 per minute; 20 per hour"
        )
        self.PASSWORD_RESET_ACCOUNT_RATE_LIMIT = env.get(
            "PASSWORD_RESET_ACCOUNT_RATE_LIMIT", "3 per 15 minutes; 10 per day"
        )
        # "Resend the verification mail", per account.
        self.VERIFY_EMAIL_RESEND_RATE_LIMIT = env.get(
            "VERIFY_EMAIL_RESEND_RATE_LIMIT", "3 per 15 minutes; 10 per day"
        )
        self.API_RATE_LIMIT = env.get("API_RATE_LIMIT", "120 per minute")

        # Compress text responses (HTML, CSS, JSON) for clients that accept it.
        self.COMPRESS_MIMETYPES = [
            "text/html",
            "text/css",
            "text/plain",
            "application/json",
            "image/svg+xml",
        ]
        self.COMPRESS_MIN_SIZE = 500
        self.COMPRESS_ALGORITHM = ["gzip"]
        # Static files are streamed from disk; Flask-Compress's default for streams omits gzip.
        self.COMPRESS_ALGORITHM_STREAMING = ["gzip"]
        # Flask-Compress would re-evaluate If-None-Match on every compressed answer; only the
        # public pages have validators, and they answer 304 themselves before rendering.
        self.COMPRESS_EVALUATE_CONDITIONAL_REQUEST = False

        # How long a worker serves its cached anonymous pricing page before asking the database
        # whether new copy was published (0: ask on every request).
        self.PRICING_CACHE_SECONDS = float(env.get("PRICING_CACHE_SECONDS", "1"))
        # What anonymous pricing and legal pages tell shared caches (a CDN) and browsers
        # (webapp/public_pages.py): keep the page this long, then serve it stale this much
        # longer while fetching a fresh one (cheaply: a 304 unless copy or catalog changed).
        self.PUBLIC_PAGE_MAX_AGE = int(env.get("PUBLIC_PAGE_MAX_AGE", "60"))
        self.PUBLIC_PAGE_STALE_SECONDS = int(env.get("PUBLIC_PAGE_STALE_SECONDS", "600"))
        # How long a worker may keep what logged-in pages read about a member (their row, plan,
        # rendered account page); the database's change feed drops entries sooner when their
        # rows change (see webapp/member_cache.py). 0: no cache, every page asks the database.
        self.MEMBER_CACHE_SECONDS = float(env.get("MEMBER_CACHE_SECONDS", "60"))

        self.LOG_LEVEL = env.get("LOG_LEVEL", "INFO")
        self.LOG_FORMAT = env.get("LOG_FORMAT", "text")  # "json" in production

    def _read_mail_settings(self, env: Mapping[str, str]) -> None:
        self.MAIL_URL = env.get("MAIL_URL", "")
        url = urlsplit(self.MAIL_URL)
        query = parse_qs(url.query)
        self.MAIL_HOST = url.hostname or env.get("MAIL_HOST", "")
        self.MAIL_USE_SSL = url.scheme == "smtps" if url.scheme else _bool(env.get("MAIL_USE_SSL"))
        self.MAIL_USE_TLS = (
            _bool(query.get("starttls", [""])[0]) if url.scheme else _bool(env.get("MAIL_USE_TLS"))
        )
        default_port = "465" if self.MAIL_USE_SSL else "587" if self.MAIL_USE_TLS else "25"
        self.MAIL_PORT = url.port or int(env.get("MAIL_PORT") or default_port)
        self.MAIL_USERNAME = unquote(url.username or "") or env.get("MAIL_USERNAME", "")
        self.MAIL_PASSWORD = unquote(url.password or "") or env.get("MAIL_PASSWORD", "")

    @property
    def mail_is_smtp(self) -> bool:
        """An SMTP server is configured; otherwise mail is kept on the dev mailbox."""
        return bool(self.MAIL_HOST)

    @property
    def sandbox_mode(self) -> bool:
        return not self.STRIPE_SECRET_KEY

    @property
    def public_site_is_https(self) -> bool:
        return self.PUBLIC_BASE_URL.startswith("https://")

    def validate(self) -> None:
        """Refuse timeouts that contradict each other, and settings unsafe in production."""
        if self.APP_ENV not in APP_ENVIRONMENTS:
            raise ConfigError(
                f"Refusing to start: APP_ENV is {self.APP_ENV!r}; it must be exactly one of "
                + ", ".join(APP_ENVIRONMENTS)
            )
        self._validate_timeouts()
        if not self.WEBHOOK_DISPATCH_SECONDS > 0:
            raise ConfigError("Refusing to start: WEBHOOK_DISPATCH_SECONDS must be above 0")
        self._validate_public_base_url()
        self._validate_limits()
        if self.MAIL_URL and urlsplit(self.MAIL_URL).scheme not in ("smtp", "smtps"):
            raise ConfigError(
                "Refusing to start: MAIL_URL must be smtp://user:password@host:port"
                "[?starttls=true] or smtps://…"
            )
        if self.APP_ENV != "production":
            return
        problems = self._production_problems()
        if problems:
            raise ConfigError("Refusing to start in production: " + "; ".join(problems))

    def warnings(self) -> list[str]:
        """Settings that may be meant, but must not pass unnoticed: logged at start-up."""
        found = []
        if self.APP_ENV == "production" and self.STRIPE_SECRET_KEY.startswith(
            ("sk_test_", "rk_test_")
        ):
            found.append(
                "STRIPE TEST MODE IN PRODUCTION: STRIPE_SECRET_KEY is a test key "
                f"({self.STRIPE_SECRET_KEY[:8]}…); no real payment will be taken"
            )
        return found

    def _validate_public_base_url(self) -> None:
        parts = urlsplit(self.PUBLIC_BASE_URL)
        origin_only = parts.path in ("", "/") and not parts.query and not parts.fragment
        if parts.scheme not in ("http", "https") or not parts.hostname or not origin_only:
            raise ConfigError(
                "Refusing to start: PUBLIC_BASE_URL must be the site's origin, such as "
                f"https://llmgen.example (no path, query or fragment); got {self.PUBLIC_BASE_URL!r}"
            )

    def _production_problems(self) -> list[str]:
        problems = []
        if self.SECRET_KEY == DEV_SECRET_KEY or len(self.SECRET_KEY) < 32:
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        if self.JWT_SECRET == DEV_JWT_SECRET or len(self.JWT_SECRET) < 32:
            problems.append("JWT_SECRET must be set to a random value of at least 32 characters")
        if self.sandbox_mode:
            problems.append(
                "STRIPE_SECRET_KEY must be set: the Stripe sandbox is not for production"
            )
        if self.SECRET_KEY == self.JWT_SECRET:
            problems.append("JWT_SECRET must differ from SECRET_KEY")
        if not self.STRIPE_WEBHOOK_SECRET or self.STRIPE_WEBHOOK_SECRET == SANDBOX_WEBHOOK_SECRET:
            problems.append("STRIPE_WEBHOOK_SECRET must be set")
        elif not all(s.startswith("whsec_") for s in self.STRIPE_WEBHOOK_SECRET.split(",")):
            problems.append(
                "STRIPE_WEBHOOK_SECRET must be Stripe's signing secret (whsec_…), or two of "
                "them separated by a comma while rotating"
            )
        if not self.SESSION_COOKIE_SECURE:
            problems.append("SESSION_COOKIE_SECURE must be true: cookies travel over HTTPS only")
        if not self.public_site_is_https:
            problems.append("PUBLIC_BASE_URL must be set to the site's https:// origin")
        if not self.ALLOWED_REDIRECT_HOSTS:
            problems.append(
                "ALLOWED_REDIRECT_HOSTS must list the hosts API callers may send payers back to"
            )
        service_tokens = [t for t in self.CREDITS_SERVICE_TOKEN.split(",") if t]
        if any(len(t) < 32 or t in (self.SECRET_KEY, self.JWT_SECRET) for t in service_tokens):
            problems.append(
                "CREDITS_SERVICE_TOKEN must be random values of at least 32 characters, "
                "different from SECRET_KEY and JWT_SECRET (or unset: no usage endpoint)"
            )
        if not self.mail_is_smtp:
            problems.append("MAIL_URL (or MAIL_HOST) must name the SMTP server that sends mail")
        problems.extend(self._shared_limit_problems())
        return problems

    def _shared_limit_problems(self) -> list[str]:
        """Production runs several workers (and hosts): limits must be counted in one place."""
        problems = []
        if not self.REDIS_URL:
            problems.append(
                "REDIS_URL must be set: without shared storage every worker counts log-in and "
                "sign-up limits on its own, multiplying them by the number of workers"
            )
        if not self.RATELIMIT_ENABLED:
            problems.append("RATELIMIT_ENABLED must stay on: log-in limits stop password guessing")
        return problems

    def _validate_limits(self) -> None:
        from limits import parse_many

        problems = []
        if self.TRUSTED_PROXY_COUNT < 0:
            problems.append("TRUSTED_PROXY_COUNT must be 0 or more")
        for name in LIMIT_SETTINGS:
            try:
                parse_many(getattr(self, name))
            except ValueError:
                problems.append(f"{name} must read like '10 per minute; 100 per hour'")
        if problems:
            raise ConfigError("Refusing to start: " + "; ".join(problems))

    def _validate_timeouts(self) -> None:
        budget, worker = self.STRIPE_REQUEST_BUDGET_SECONDS, self.GUNICORN_TIMEOUT
        problems = []
        if self.STRIPE_TIMEOUT_SECONDS <= 0:
            problems.append("STRIPE_TIMEOUT_SECONDS must be positive")
        if self.STRIPE_MAX_NETWORK_RETRIES < 0:
            problems.append("STRIPE_MAX_NETWORK_RETRIES must be 0 or more")
        if budget <= 0:
            problems.append("STRIPE_REQUEST_BUDGET_SECONDS must be positive")
        # 0 turns gunicorn's timeout off: nothing to stay under.
        elif worker > 0 and budget > worker - REQUEST_HEADROOM_SECONDS:
            problems.append(
                f"STRIPE_REQUEST_BUDGET_SECONDS ({budget:g}) must leave at least "
                f"{REQUEST_HEADROOM_SECONDS} s of GUNICORN_TIMEOUT ({worker}) for the rest of "
                "the request, or a hung Stripe gets the worker killed mid-request"
            )
        if problems:
            raise ConfigError("Refusing to start: " + "; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in dir(self) if key.isupper()}


class TestConfig(Config):
    """Settings for the test suite: its own database, synchronous webhooks, no rate limits."""

    TESTING = True
    # Answer crashes with the real 500 page (the log keeps the traceback), as users would see.
    PROPAGATE_EXCEPTIONS = False
    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, environ: Mapping[str, str] | None = None, **overrides: Any) -> None:
        super().__init__(environ)
        self.APP_ENV = "test"
        self.PUBLIC_BASE_URL = "http://localhost"  # the test client's default host
        # Secrets of the suite's own, not the development ones: those serve loopback requests
        # only, and tests act for clients at many addresses (tests that check that refusal
        # set the development secrets back).
        self.SECRET_KEY = "test-only-secret-key-not-for-any-deployment"
        self.JWT_SECRET = "test-only-jwt-secret-not-for-any-deployment"
        self.SANDBOX_WEBHOOK_DELIVERY = "sync"
        # Fast, and still a salted KDF: scrypt cost a fifth of the suite's time (a log-in is a
        # hash check). tests/test_auth.py checks that the real setting stores scrypt.
        self.PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"
        self.PRICING_CACHE_SECONDS = 0  # a publish shows at once, even across app instances
        self.RATELIMIT_ENABLED = False
        self.SERVER_NAME = None
        for key, value in overrides.items():
            setattr(self, key, value)
