"""The job engine: jobs bound to each app's own Celery, run in-process without a broker."""

from __future__ import annotations

from flask import current_app, g

from webapp import create_app, jobs
from webapp.config import TestConfig

CALLS: list[tuple[str, int]] = []


@jobs.job("tests.record_call")
def record_call(value: int) -> int:
    # Runs inside an app context: in eager mode, the caller's own.
    CALLS.append((current_app.import_name, value + g.get("offset", 0)))
    return value


def test_without_a_broker_a_queued_job_runs_at_once_in_the_callers_context(app):
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"]))
    CALLS.clear()
    with app.app_context():
        g.offset = 100
        jobs.enqueue("tests.record_call", 1)
    assert CALLS == [("webapp", 101)]


def test_each_app_has_its_own_engine_with_every_registered_job(app):
    other = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"]))
    first = app.extensions["celery"]
    second = other.extensions["celery"]
    assert first is not second
    assert "tests.record_call" in first.tasks and "tests.record_call" in second.tasks
    assert first.conf.task_always_eager and second.conf.task_always_eager


def test_a_broker_url_turns_eager_mode_off():
    settings = jobs.celery_settings({"JOBS_BROKER_URL": "redis://127.0.0.1:6379/9"})
    assert settings["broker_url"] == "redis://127.0.0.1:6379/9"
    assert settings["task_always_eager"] is False
    assert settings["task_acks_late"] is True
