"""Deliver rendered alerts over SMTP (``smtplib`` and ``email.message``).

One connection per :meth:`SmtpNotifier.send`, or one for a whole
``with notifier.session():`` block. Failures become :class:`NotificationError`
whose ``permanent`` flag says whether a retry can help; their messages name the kind
of failure and the SMTP code, never the recipient or any text of the message.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import threading
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import TYPE_CHECKING, Final, Literal, final

import structlog

from rrm.adapters.email.render import header_safe
from rrm.clock import SystemClock
from rrm.errors import InvalidInput, NotificationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from rrm.domain.alerts import AlertMessage

__all__ = ["Security", "SmtpNotifier", "SmtpSettings", "wire_message_id"]

log = structlog.get_logger(__name__)

Security = Literal["starttls", "ssl", "none"]
_SECURITIES: Final = ("starttls", "ssl", "none")
_MESSAGE_ID: Final = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_ENHANCED: Final = re.compile(rb"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_PERMANENT_FROM: Final = 500
# Headers go out unfolded (up to RFC 5322's hard limit of 998 octets): CPython's
# folder leaves a doubled space where it folds before an encoded word, which mail
# clients then show in the subject. Bodies are already encoded to 78 columns.
_WIRE: Final = SMTP.clone(max_line_length=998)
_MAX_PORT: Final = 65535
# Refusals that come before any recipient is named: they concern the server (or
# RRM's settings), never one alert.
_SERVER_WIDE: Final = (
    smtplib.SMTPConnectError,
    smtplib.SMTPHeloError,
    smtplib.SMTPAuthenticationError,  # a wrong password in the settings
    smtplib.SMTPSenderRefused,
)
# 552 to MAIL FROM with SIZE: this message is too large, whatever the server's mood.
_TOO_LARGE: Final = 552


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpSettings:
    """How to reach the mail server.

    Attributes:
        host: The server's host name or address.
        sender_address: The envelope sender and ``From`` address.
        port: 587 for STARTTLS, 465 for implicit TLS, 25 for a plain relay.
        security: ``"starttls"``, ``"ssl"`` (implicit TLS) or ``"none"``.
        username: Log in with this name when not empty (needs TLS).
        password: The password for ``username``; never shown in ``repr``.
        sender_name: The display name in ``From``.
        timeout: Seconds to wait on the network before giving up.
        local_hostname: The name sent in EHLO; ``None`` uses the machine's name.
        ssl_context: TLS settings; ``None`` uses the system's trusted roots with
            hostname checking.

    Raises:
        InvalidInput: A setting is out of range, or a login would go unencrypted.
    """

    host: str
    sender_address: str
    port: int = 587
    security: Security = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    sender_name: str = "RRM"
    timeout: float = 30.0
    local_hostname: str | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise InvalidInput("smtp.host", "must not be empty")
        if not 0 < self.port <= _MAX_PORT:
            raise InvalidInput("smtp.port", "must be a port number from 1 to 65535")
        if self.security not in _SECURITIES:
            raise InvalidInput("smtp.security", f"must be one of {_SECURITIES}")
        if self.timeout <= 0:
            raise InvalidInput("smtp.timeout", "must be a positive number of seconds")
        if self.username and self.security == "none":
            raise InvalidInput(
                "smtp.username", "a login needs security 'starttls' or 'ssl'"
            )
        try:
            _address(self.sender_address, "")
        except NotificationError:
            raise InvalidInput("smtp.sender_address", "is not an address") from None


def _address(addr_spec: str, display_name: str) -> Address:
    """Return a checked address; CR, LF, controls and bad syntax are refused."""
    if not addr_spec.isascii() or not addr_spec.isprintable() or " " in addr_spec:
        raise NotificationError("invalid recipient address", permanent=True)
    try:
        address = Address(header_safe(display_name, 80), addr_spec=addr_spec)
    except (ValueError, IndexError, TypeError, HeaderParseError):
        raise NotificationError("invalid recipient address", permanent=True) from None
    if address.addr_spec != addr_spec or not address.domain or not address.username:
        raise NotificationError("invalid recipient address", permanent=True)
    return address


def wire_message_id(message_id: str) -> str:
    """Return the Message-ID as sent: a valid RFC 5322 msg-id with one ``@``.

    Alert ids carry ``@`` in their step (``before-3@2025-01-16``), so a derived
    Message-ID may hold two. The ``email`` package's header parser then cuts the
    id at the second ``@`` and drops its domain (``<...@2025-01-16.ana>``); here
    every ``@`` but the last becomes ``.``, the same for every attempt, so a repeat
    still carries the same Message-ID. An id with a single ``@`` is unchanged.
    """
    left, _, right = message_id[1:-1].rpartition("@")
    return f"<{left.replace('@', '.')}@{right}>"


def _smtp_error(exc: smtplib.SMTPException) -> NotificationError:
    """Map a failure to an error without the server's text (it may name a person)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = max(exc.recipients.values(), default=(550, b""))
        return _coded("the server refused the recipient", code, reply)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return NotificationError("the SMTP server closed the connection")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return NotificationError(
            "the SMTP server lacks a required extension (STARTTLS or AUTH)",
            permanent=True,
        )
    if isinstance(exc, _SERVER_WIDE) and exc.smtp_code != _TOO_LARGE:
        # Refused before any recipient (the greeting, EHLO, the sender): the same
        # answer awaits every message, so it says nothing about this alert. Once
        # the operator fixes the relay the alert must still go out: a temporary
        # failure, retried with backoff (a permanent one would dead-letter every
        # alert, and the administrator's notice with them, for good).
        return _coded(_what(exc), exc.smtp_code, exc.smtp_error, server_wide=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _coded(_what(exc), exc.smtp_code, exc.smtp_error)
    return NotificationError(f"SMTP failure ({type(exc).__name__})")


def _what(exc: smtplib.SMTPResponseException) -> str:
    kinds: tuple[tuple[type[smtplib.SMTPResponseException], str], ...] = (
        (smtplib.SMTPAuthenticationError, "the SMTP login failed"),
        (smtplib.SMTPSenderRefused, "the server refused the sender"),
        (smtplib.SMTPDataError, "the server refused the message"),
        (smtplib.SMTPConnectError, "the server refused the connection"),
        (smtplib.SMTPHeloError, "the server refused the greeting"),
    )
    for kind, text in kinds:
        if isinstance(exc, kind):
            return text
    return "the SMTP server returned an error"


def _coded(
    what: str, code: int, reply: bytes | str, *, server_wide: bool = False
) -> NotificationError:
    raw = reply.encode("ascii", "replace") if isinstance(reply, str) else reply
    enhanced = _ENHANCED.match(raw)
    detail = f"{code} {enhanced.group(1).decode()}" if enhanced else str(code)
    permanent = code >= _PERMANENT_FROM and not server_wide
    if server_wide and code >= _PERMANENT_FROM:
        retry = "refused for every message; retried"
    else:
        retry = "permanent" if permanent else "temporary"
    return NotificationError(f"{what} (SMTP {detail}, {retry})", permanent=permanent)


def _network_error(exc: OSError) -> NotificationError:
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return NotificationError(f"TLS handshake with the SMTP server failed: {exc}")
    if isinstance(exc, TimeoutError):
        return NotificationError("the SMTP server did not answer in time (timeout)")
    if isinstance(exc, ConnectionRefusedError):
        return NotificationError("the SMTP server refused the connection")
    return NotificationError(f"network error reaching the SMTP server ({exc})")


@final
class SmtpNotifier:
    """Send alert messages through an SMTP server.

    Args:
        settings: Where and how to connect.
        now: Source of the ``Date`` header; defaults to the system clock.
    """

    def __init__(
        self, settings: SmtpSettings, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self._settings = settings
        self._now = now or SystemClock().now
        self._local = threading.local()
        # Loading the trust store costs ~30 ms; do it once, and only for TLS
        # (measured: it was 60 % of a catch-up tick's time when done per send).
        self._context = (
            settings.ssl_context or ssl.create_default_context()
            if settings.security != "none"
            else None
        )

    def build(self, message: AlertMessage) -> EmailMessage:
        """Return the MIME message for *message* (exposed for hosts and tests).

        Raises:
            NotificationError: The recipient address or Message-ID is unusable
                (permanent).
        """
        s = self._settings
        if not _MESSAGE_ID.fullmatch(message.message_id):
            raise NotificationError("invalid Message-ID", permanent=True)
        mail = EmailMessage(policy=SMTP)
        mail["From"] = Address(
            header_safe(s.sender_name, 80), addr_spec=s.sender_address
        )
        mail["To"] = _address(message.to_address, message.to_name)
        mail["Subject"] = header_safe(message.subject)
        mail["Date"] = format_datetime(self._now())
        mail["Message-ID"] = wire_message_id(message.message_id)
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Auto-Response-Suppress"] = "All"
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        if message.ics:
            mail.add_attachment(
                message.ics,
                maintype="text",
                subtype="calendar",
                filename="deadline.ics",
                params={"method": "PUBLISH", "charset": "utf-8"},
            )
        if message.language.isascii() and message.language.isalpha():
            # Set last: building the MIME tree moves Content-* headers into parts.
            mail["Content-Language"] = message.language
        return mail

    def send(self, message: AlertMessage) -> None:
        """Deliver one message.

        Raises:
            NotificationError: Delivery failed; ``permanent`` says whether a retry
                can help.
        """
        try:
            mail = self.build(message)
            recipient = mail["To"].addresses[0].addr_spec
            self._deliver(mail, recipient)
        except NotificationError as exc:
            log.warning(
                "alert_failed",
                alert_id=message.alert_id,
                permanent=exc.permanent,
                reason=exc.message,
            )
            raise
        log.info("alert_sent", alert_id=message.alert_id, smtp_host=self._settings.host)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Reuse one connection for every ``send`` in the block (this thread only)."""
        if getattr(self._local, "active", False):
            yield
            return
        self._local.active = True
        try:
            yield
        finally:
            self._local.active = False
            self._drop()

    def _deliver(self, mail: EmailMessage, recipient: str) -> None:
        sender = self._settings.sender_address
        try:
            client = self._client()
            client.sendmail(sender, [recipient], mail.as_bytes(policy=_WIRE))
        except smtplib.SMTPException as exc:
            self._drop()
            raise _smtp_error(exc) from None
        except OSError as exc:
            self._drop()
            raise _network_error(exc) from exc
        if not getattr(self._local, "active", False):
            self._drop()

    def _client(self) -> smtplib.SMTP:
        client: smtplib.SMTP | None = getattr(self._local, "client", None)
        if client is None:
            client = self._connect()
            self._local.client = client
        return client

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        context = self._context
        client: smtplib.SMTP
        if s.security == "ssl":
            client = smtplib.SMTP_SSL(
                s.host,
                s.port,
                local_hostname=s.local_hostname,
                timeout=s.timeout,
                context=context,
            )
        else:
            client = smtplib.SMTP(
                s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout
            )
        try:
            if s.security == "starttls":
                client.starttls(context=context)
            if s.username:
                client.login(s.username, s.password)
        except BaseException:
            client.close()
            raise
        return client

    def _drop(self) -> None:
        client: smtplib.SMTP | None = getattr(self._local, "client", None)
        self._local.client = None
        if client is None:
            return
        with suppress(smtplib.SMTPException, OSError):
            client.quit()
        client.close()
