"""A real SMTP server (aiosmtpd) on a free local port, and an app that sends through it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


class RecordingHandler:
    """Accepts every message, except that it answers the next `refusals` with a 451."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.refusals = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it by this name
        with self.lock:
            if self.refusals > 0:
                self.refusals -= 1
                return "451 4.3.0 Try again later"
            message = message_from_bytes(envelope.content, policy=policy.default)
            self.received.append(message)  # type: ignore[arg-type]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, RecordingHandler]]:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def smtp(smtp_server) -> RecordingHandler:
    return smtp_server[1]


@pytest.fixture
def config_overrides(smtp_server) -> dict[str, Any]:
    """Send through the local server, and only when a test runs the worker."""
    controller, _handler = smtp_server
    return {
        "MAIL_HOST": controller.hostname,
        "MAIL_PORT": controller.port,
        "MAIL_DELIVER_AFTER_COMMIT": False,
        "PUBLIC_BASE_URL": "https://llmgen.example",
    }
