"""Limits, reused checkouts, weak passwords, form targets: the smaller holes of issue 13."""

from __future__ import annotations

import pytest

from tests.conftest import create_user, sql
from tests.reliability.conftest import in_threads
from webapp.api import keys

GROUP = "limits, reused checkouts, weak passwords, form targets"


@pytest.mark.postgres
def test_the_api_key_limit_holds_under_concurrent_requests(app, figures):
    user_id = create_user(app)

    def create(index: int):
        def call() -> bool:
            with app.app_context():
                try:
                    keys.create_key(user_id, f"key {index}")
                except keys.TooManyKeys:
                    return False
                return True

        return call

    created = in_threads([create(index) for index in range(30)], workers=30)
    [(active,)] = sql(app, "select count(*) from api_keys where revoked_at is null")
    for _ in range(30 - keys.MAX_ACTIVE_KEYS_PER_USER):
        figures.attack(GROUP, refused=active <= keys.MAX_ACTIVE_KEYS_PER_USER)
    assert active == keys.MAX_ACTIVE_KEYS_PER_USER
    assert created.count(True) == keys.MAX_ACTIVE_KEYS_PER_USER
