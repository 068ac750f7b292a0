"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests of
rix's email: share links, lockout alerts, opinions, turnaround alerts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from threading import Lock
from typing import Any

from aiosmtpd.controller import Controller

from tests.peers.server import free_port


@dataclass
class Mailbox:
    """Messages received, in order; ``wait_for`` polls until one to an address arrives."""

    messages: list[EmailMessage] = field(default_factory=list)
    lock: Lock = field(default_factory=Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def wait_for(
        self, address: str, *, count: int = 1, timeout: float = 30.0
    ) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise TimeoutError(f"{count} message(s) to {address} did not arrive: {self.to(address)}")


class SmtpServer:
    """``with SmtpServer() as smtp:`` — listening on 127.0.0.1:``smtp.port``."""

    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    @property
    def env(self) -> dict[str, str]:
        """What a rix server needs to send here."""
        return {"RIX_SMTP_HOST": "127.0.0.1", "RIX_SMTP_PORT": str(self.port)}


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())
