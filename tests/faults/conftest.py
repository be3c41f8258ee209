"""Fixtures for the fault suite: a real SMTP server on loopback that can misbehave.

The server is aiosmtpd's threaded ``Controller`` bound to 127.0.0.1. Its handler
records every message it accepted (with the Message-ID), counts every attempt, and
can be switched between accepting, answering 4xx or 5xx at MAIL, RCPT or DATA, and
dropping the connection after the message's final dot, before its reply.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import TYPE_CHECKING, Any, Literal

import pytest
from aiosmtpd.controller import Controller

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

Mode = Literal["accept", "refuse_mail", "refuse_rcpt", "refuse_data", "drop"]


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One message that reached the server's DATA handler."""

    message_id: str
    to: tuple[str, ...]
    subject: str
    acknowledged: bool  # the server answered 250 (False: the connection was dropped)


@dataclass
class MailRecorder:
    """An aiosmtpd handler that records messages and misbehaves on demand.

    ``mode`` decides what the next sessions get; ``reply`` is the SMTP reply used by
    the refusing modes (a 4xx or 5xx line). ``only`` limits a refusal to one
    recipient address (None: every message).
    """

    mode: Mode = "accept"
    reply: str = "451 4.3.0 Try again later"
    only: str | None = None
    messages: list[Received] = field(default_factory=list)
    attempts: int = 0
    # Called (in the server's thread) when a message is accepted, before the 250.
    on_accept: Callable[[], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        with self._lock:
            self.attempts += 1
        if self.mode == "refuse_mail":
            return self.reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.mode == "refuse_rcpt" and self.only in {None, address}:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        targeted = self.only is None or self.only in envelope.rcpt_tos
        if self.mode == "refuse_data" and targeted:
            return self.reply
        # compat32: the headers exactly as sent (the default policy would "repair"
        # a Message-ID it finds malformed).
        headers = BytesHeaderParser(policy=compat32).parsebytes(envelope.content)
        dropped = self.mode == "drop" and targeted
        received = Received(
            message_id=str(headers["Message-ID"]).strip(),
            to=tuple(envelope.rcpt_tos),
            subject=str(headers["Subject"]),
            acknowledged=not dropped,
        )
        with self._lock:
            self.messages.append(received)
        if dropped:
            # The whole message has arrived; the client never hears the reply.
            server.transport.abort()
            return "421 4.4.2 connection dropped"
        if self.on_accept is not None:
            self.on_accept()
        return "250 Message accepted for delivery"

    def ids(self, *, acknowledged_only: bool = False) -> list[str]:
        with self._lock:
            return [
                m.message_id
                for m in self.messages
                if m.acknowledged or not acknowledged_only
            ]


@dataclass
class MailServer:
    """A running SMTP server on loopback."""

    port: int
    handler: MailRecorder
    controller: Controller | None = None

    def stop(self) -> None:
        """Stop listening: the port refuses connections until start()."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def start(self) -> None:
        """(Re)start on the same port."""
        if self.controller is None:
            self.controller = Controller(
                self.handler, hostname="127.0.0.1", port=self.port
            )
            self.controller.start()


def serve(handler: MailRecorder, port: int | None = None) -> MailServer:
    server = MailServer(port=port or free_port(), handler=handler)
    server.start()
    return server


@pytest.fixture(name="mail")
def _mail() -> Iterator[MailServer]:
    """An SMTP server on loopback recording every message; stopped afterwards."""
    server = serve(MailRecorder())
    try:
        yield server
    finally:
        server.stop()


class RawServer:
    """A listener on loopback that misbehaves below SMTP.

    ``slam`` accepts and closes at once; ``silent`` accepts and never says a word;
    ``greet554`` greets with a 5xx refusal (RFC 5321 "no SMTP service here") and
    closes.
    """

    def __init__(self, port: int, behaviour: str) -> None:
        self.port = port
        self.behaviour = behaviour
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            if self.behaviour == "greet554":
                conn.sendall(b"554 5.3.2 No SMTP service here\r\n")
                conn.close()
            elif self.behaviour == "slam":
                conn.close()
            else:
                self._open.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._open:
            conn.close()
        self._sock.close()
