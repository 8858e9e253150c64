"""`flask stripe create-coupon` and `create-promotion-code`, against the sandbox through the
gateway (the same calls work against real Stripe)."""

from __future__ import annotations

import pytest
from flask import Flask

from webapp.stripe_gateway import get_gateway


def run(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["stripe", *args])


def test_coupon_and_code_from_the_command_line(app: Flask) -> None:
    made = run(app, "create-coupon", "--percent-off", "20", "--name", "Spring", "--id", "SPRING")
    assert made.exit_code == 0, made.output
    assert made.output.strip() == "SPRING"
    coded = run(
        app,
        "create-promotion-code",
        "--coupon",
        "SPRING",
        "--code",
        "SPRING20",
        "--max-redemptions",
        "50",
        "--expires",
        "2099-01-01",
        "--first-time-only",
    )
    assert coded.exit_code == 0, coded.output
    with app.app_context():
        gateway = get_gateway()
        coupon = gateway.retrieve_coupon("SPRING")
        (code,) = gateway.find_promotion_codes("spring20")
    assert (coupon.percent_off, coupon.duration, coupon.name) == (20, "once", "Spring")
    assert code.id == coded.output.strip() and code.promotion.coupon == "SPRING"
    assert code.max_redemptions == 50 and code.restrictions.first_time_transaction
    assert code.expires_at == 4070908800  # 2099-01-01T00:00:00Z


def test_amount_off_repeating(app: Flask) -> None:
    made = run(
        app, "create-coupon", "--amount-off", "500", "--duration", "repeating", "--months", "3"
    )
    assert made.exit_code == 0, made.output
    with app.app_context():
        coupon = get_gateway().retrieve_coupon(made.output.strip())
    assert (coupon.amount_off, coupon.currency, coupon.duration_in_months) == (500, "usd", 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create-coupon"], "exactly one of --percent-off or --amount-off"),
        (["create-coupon", "--percent-off", "10", "--amount-off", "5"], "exactly one"),
        (["create-coupon", "--percent-off", "10", "--duration", "repeating"], "--months"),
        (["create-coupon", "--percent-off", "10", "--months", "2"], "--months"),
        (["create-coupon", "--percent-off", "10", "--currency", "usd"], "--currency"),
        (["create-coupon", "--percent-off", "150"], "150"),
        (["create-promotion-code", "--coupon", "NOPE", "--code", "X"], "Stripe refused"),
    ],
)
def test_refusals(app: Flask, args: list[str], message: str) -> None:
    result = run(app, *args)
    assert result.exit_code != 0 and message in result.output, result.output
