"""Probes for the load balancer and the orchestrator."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from webapp.extensions import db
from webapp.jobs.schedules import job_statuses

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers. Touches nothing else (also the benchmarks' baseline)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: the database answers and Stripe is configured for this environment."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        log.warning("readiness: database unavailable: %s", exc.__class__.__name__)
        checks["database"] = "unavailable"
    config = current_app.config
    sandbox = not config["STRIPE_SECRET_KEY"]
    checks["stripe"] = "sandbox" if sandbox else "configured"
    checks["webhook_secret"] = "ok" if config["STRIPE_WEBHOOK_SECRET"] else "missing"
    ready = checks["database"] == "ok" and checks["webhook_secret"] == "ok"
    if config["JOBS_BROKER_URL"] and checks["database"] == "ok":
        checks["jobs"] = _jobs_check()
        ready = ready and checks["jobs"] == "ok"
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


def _jobs_check() -> str:
    """The schedules' state: ok, or the overdue jobs (their workers or beat are down, or they
    keep failing). Only with a broker: without one the schedules run by `flask jobs run-due`,
    which nothing promises to keep running in development."""
    try:
        overdue = [status.job for status in job_statuses() if status.overdue]
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("readiness: job runs unreadable: %s", exc.__class__.__name__)
        return "unavailable"
    if overdue:
        log.warning("readiness: overdue jobs: %s", ", ".join(overdue))
        return "overdue: " + ", ".join(overdue)
    return "ok"
