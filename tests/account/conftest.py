"""A member on Professional, monthly, paid through the sandbox's hosted checkout."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.billing.member import Member


@pytest.fixture
def member(app: Flask, user_id: int) -> Member:
    with app.app_context():
        member = Member(app, user_id)
        member.subscribe("professional", "monthly")
    return member
