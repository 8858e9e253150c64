"""Shared fixtures: a fresh app per test on a real database (SQLite, or PostgreSQL in CI)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import URL, create_engine, make_url, text

from webapp import create_app
from webapp.config import TestConfig
from webapp.extensions import db
from webapp.models import User
from webapp.models.base import utcnow


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DATABASE_URL when it names PostgreSQL (CI's second run), else a throwaway SQLite file.

    Under pytest-xdist every worker gets a PostgreSQL database of its own beside DATABASE_URL's,
    uniquely named (the server is shared: two runs, or two engineers, with the same
    DATABASE_URL must not drop each other's), created here and dropped here.
    """
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgresql", "postgres://")):
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        yield url
        return
    base = make_url(url.replace("postgres://", "postgresql+psycopg://", 1))
    name = f"{base.database}_{worker}_{secrets.token_hex(3)}"
    _run_on_server(base, f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    _run_on_server(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_on_server(url: URL, *statements: str) -> None:
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


@pytest.fixture(scope="session")
def _schema(database_url: str) -> Iterator[None]:
    """Create every table once per session; drop them at the end."""
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database_url))
    with app.app_context():
        db.drop_all()
        db.create_all()
    yield
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def _empty_all_tables(database_url: str) -> None:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


# Production settings that pass every start-up check; tests change one at a time.
SAFE_PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "JWT_SECRET": "j" * 40,
    "STRIPE_SECRET_KEY": "sk_live_example",
    "STRIPE_WEBHOOK_SECRET": "whsec_example",
    "SESSION_COOKIE_SECURE": "true",
    "PUBLIC_BASE_URL": "https://llmgen.example",
    "ALLOWED_REDIRECT_HOSTS": "llmgen.example",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "MAIL_URL": "smtp://mailer:secret@smtp.llmgen.example:587?starttls=true",
}


def make_app(database_url: str, **overrides: Any) -> Flask:
    return create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database_url, **overrides))


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module (or with parametrize) to change the app's settings."""
    return {}


@pytest.fixture
def app(_schema: None, database_url: str, config_overrides: dict[str, Any]) -> Iterator[Flask]:
    app = make_app(database_url, **config_overrides)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    _empty_all_tables(database_url)


@pytest.fixture
def other_worker(app: Flask, database_url: str) -> Iterator[Flask]:
    """A second app on the same database (and secret key), like another gunicorn worker."""
    other = make_app(database_url)
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


CSRF_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


def csrf_token(client: FlaskClient, path: str) -> str:
    """GET `path` and read the CSRF token from its form, as a browser would."""
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def create_user(
    app: Flask,
    email: str = "ada@example.com",
    password: str = "correct horse battery",
    role: str = "user",
    verified: bool = True,
) -> int:
    """An established account (its address verified, as `flask users create` makes them);
    `verified=False` for one fresh from sign-up."""
    with app.app_context():
        user = User(email=email, role=role, email_verified_at=utcnow() if verified else None)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        return user.id


class AuthActions:
    """Logs a test client in and out through the real forms, CSRF included."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app, self.client = app, client

    def signup(
        self, email: str = "ada@example.com", password: str = "correct horse battery", **extra: str
    ):
        token = csrf_token(self.client, "/signup")
        data = {"email": email, "password": password, "csrf_token": token, **extra}
        return self.client.post("/signup", data=data)

    def login(
        self, email: str = "ada@example.com", password: str = "correct horse battery", **extra: str
    ):
        token = csrf_token(self.client, "/login")
        data = {"email": email, "password": password, "csrf_token": token, **extra}
        return self.client.post("/login", data=data)

    def logout(self):
        token = csrf_token(self.client, "/account")
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(app: Flask, client: FlaskClient) -> AuthActions:
    return AuthActions(app, client)


@pytest.fixture
def user_id(app: Flask) -> int:
    return create_user(app)


def sql(app: Flask, statement: str, **params: Any) -> list[Any]:
    """Run raw SQL against the test database (for assertions about rows)."""
    with app.app_context():
        return list(db.session.execute(text(statement), params))
