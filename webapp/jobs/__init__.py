"""Background jobs on Celery with a Redis broker: webhook processing and the schedules.

Jobs are plain functions registered with `@job("name")` in the modules of `JOB_MODULES`; each
app gets its own Celery instance (`app.extensions["celery"]`) with every registered job bound to
it, so several apps in one process (the tests) never share a queue by accident. Code queues a
job with `enqueue("name", …)`, never through a module-level task object.

With no `JOBS_BROKER_URL` (`make run`, the tests) a queued job runs in-process at once, inside
the caller's app context (Celery's eager mode), so the site needs no broker and behaves as a
single process would. With a broker, `celery -A webapp.jobs.worker worker` runs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, Task
from celery.result import AsyncResult
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from flask import Flask, current_app, has_app_context

from webapp.extensions import db

# The modules that define jobs; each is imported before any app binds the registry.
JOB_MODULES: tuple[str, ...] = ("webapp.jobs.scheduled", "webapp.webhooks.jobs")


@dataclass(frozen=True)
class JobSpec:
    function: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, JobSpec] = {}
# Started in every queue worker once it is ready, stopped when it shuts down: each takes the
# worker's Flask app and returns its stop function (e.g. the webhooks' relay).
WorkerService = Callable[[Flask], Callable[[], None]]
_SERVICES: list[WorkerService] = []


def job(name: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `function` as the job `name`; `options` are Celery task options (retries…)."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"two jobs named {name!r}")
        _REGISTRY[name] = JobSpec(function, options)
        return function

    return register


def registered_jobs() -> dict[str, JobSpec]:
    return dict(_REGISTRY)


def worker_service(start: WorkerService) -> WorkerService:
    """Register `start` to run in every queue worker of every app, beside the jobs."""
    if start not in _SERVICES:
        _SERVICES.append(start)
    return start


def runs_in_process() -> bool:
    """True without a broker: a queued job runs at once, in the caller's thread."""
    celery: Celery = current_app.extensions["celery"]
    return bool(celery.conf.task_always_eager)


def init_app(app: Flask) -> Celery:
    from webapp.jobs.cli import jobs_cli
    from webapp.jobs.schedules import beat_schedule

    for module in JOB_MODULES:
        importlib.import_module(module)
    celery = Celery(app.import_name, task_cls=_task_class(app), set_as_current=False)
    celery.conf.update(celery_settings(app.config))
    for name, spec in _REGISTRY.items():
        celery.task(name=name, **spec.options)(spec.function)
    # The schedules (webapp/jobs/schedules.py): run by a worker started with --beat.
    celery.conf.beat_schedule = beat_schedule()
    app.extensions["celery"] = celery
    _run_services_in_workers(app, celery)
    app.cli.add_command(jobs_cli)  # flask jobs status|run|run-due|worker
    return celery


def _run_services_in_workers(app: Flask, celery: Celery) -> None:
    """Start the registered services when a worker of this app is ready; stop them at its
    shutdown. Celery's signals are process-wide, so each app checks the worker is its own."""
    stops: list[Callable[[], None]] = []

    def start(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is celery and not stops:
            stops.extend(service(app) for service in _SERVICES)

    def stop(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is celery:
            while stops:
                stops.pop()()

    def forget_inherited_connections(**_: Any) -> None:
        """In a prefork pool's new child: the pooled connections are the parent's (where the
        relay uses them), never to be shared; the child opens its own."""
        with app.app_context():
            db.engine.dispose(close=False)

    # Weak receivers (the signals' default) die with the app: the app keeps them alive here.
    app.extensions["job_worker_hooks"] = (start, stop, forget_inherited_connections)
    worker_ready.connect(start)
    worker_shutdown.connect(stop)
    worker_process_init.connect(forget_inherited_connections)


def celery_settings(config: Any) -> dict[str, Any]:
    broker = config.get("JOBS_BROKER_URL") or ""
    return {
        "broker_url": broker or "memory://",
        # No broker: run each job where it is queued, and let its exception reach the caller.
        "task_always_eager": not broker,
        "task_eager_propagates": True,
        "task_ignore_result": True,
        # A job is acknowledged after it ran, and a worker killed mid-job hands it back, so a
        # crash re-delivers rather than loses it; jobs are written to be safe to run twice.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        # A broker that is down or unreachable must fail a publish fast, not hold its caller
        # (a request, a relay round) for Celery's default of several retries; the work is kept
        # where it came from (the ledger, the outbox) and queued again later.
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_max": 0},
        "broker_transport_options": {"socket_connect_timeout": 2},
        "task_default_queue": config.get("JOBS_QUEUE") or "llmgen",
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
    }


def _task_class(app: Flask) -> type[Task]:
    class FlaskTask(Task):
        """Runs inside an app context: the caller's in eager mode, else the worker's app's."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            if has_app_context():
                return self.run(*args, **kwargs)
            with app.app_context():
                return self.run(*args, **kwargs)

    return FlaskTask


def enqueue(name: str, *args: Any, **kwargs: Any) -> AsyncResult:
    """Queue the job `name` on the current app's engine (or run it now, without a broker)."""
    celery: Celery = current_app.extensions["celery"]
    return celery.tasks[name].apply_async(args=args, kwargs=kwargs)
