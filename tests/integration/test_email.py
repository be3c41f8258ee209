"""The e-mail adapter end to end: render an alert, send it to a real SMTP server."""

from __future__ import annotations

import dataclasses
import email
import re
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from typing import Any

import icalendar
import pytest
from structlog.testing import capture_logs

from rrm.adapters.email import JinjaAlertRenderer, SmtpNotifier, SmtpSettings
from rrm.adapters.email.ics import deadline_uid
from rrm.adapters.email.render import format_date, header_safe
from rrm.domain.alerts import AlertKind, AlertMessage, AlertView
from rrm.errors import InvalidInput, NotificationError

from .conftest import PASSWORD, SENT_AT, USER, Certificate, Server, free_port, make_view

LINK = "https://rrm.example.gov/cases/{case_id}/d/{deadline_key}?ref={case_ref}&a={alert_id}"
SENDER = "alerts@rrm.example.gov"
INJECTION = "\r\nBcc: evil@example.com"


def renderer(link_template: str = LINK, **kwargs: Any) -> JinjaAlertRenderer:
    return JinjaAlertRenderer(link_template, now=lambda: SENT_AT, **kwargs)


def notifier(port: int, **changes: Any) -> SmtpNotifier:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security="none",
        sender_address=SENDER,
        sender_name="RRM alerts",
        timeout=5,
        local_hostname="rrm.test",
    )
    return SmtpNotifier(dataclasses.replace(settings, **changes), now=lambda: SENT_AT)


def render(view: AlertView | None = None, **kwargs: Any) -> AlertMessage:
    return renderer(**kwargs).render(view or make_view())


def deliver(server: Server, message: AlertMessage, **changes: Any) -> EmailMessage:
    """Send *message* to *server* and return the one message it received."""
    notifier(server.port, **changes).send(message)
    (envelope,) = server.handler.envelopes
    parsed = email.message_from_bytes(envelope.content, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def raw(server: Server) -> bytes:
    (envelope,) = server.handler.envelopes
    return bytes(envelope.content)


def header_block(data: bytes) -> str:
    return data.split(b"\r\n\r\n", 1)[0].decode("ascii")


def text_of(mail: EmailMessage, subtype: str = "plain") -> str:
    part = mail.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


def calendar_of(mail: EmailMessage) -> tuple[EmailMessage, icalendar.Calendar]:
    (part,) = list(mail.iter_attachments())
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return part, icalendar.Calendar.from_ical(payload)


class TestDelivery:
    def test_message_arrives_with_its_headers(self, smtp_server: Server) -> None:
        """A sent alert arrives with its Message-ID, Subject, From, To and Date."""
        mail = deliver(smtp_server, render())
        assert mail["Message-ID"] == "<alert.c-1.dl-42.before-3@rrm.invalid>"
        assert mail["Subject"] == (
            "[RRM] Reminder: Panelists selected by lot due 2025-01-16 (nominal) "
            "— RRM-2025-001"
        )
        assert mail["From"] == f"RRM alerts <{SENDER}>"
        assert mail["To"] == "Ana Ruiz <ana.ruiz@dol.example>"
        assert mail["Date"] == format_datetime(SENT_AT)
        assert mail["Auto-Submitted"] == "auto-generated"
        assert smtp_server.handler.envelopes[0].rcpt_tos == ["ana.ruiz@dol.example"]
        assert smtp_server.handler.envelopes[0].mail_from == SENDER

    def test_message_has_text_html_and_calendar(self, smtp_server: Server) -> None:
        """The message carries a text part, an HTML alternative and the .ics file."""
        mail = deliver(smtp_server, render())
        assert mail.get_content_type() == "multipart/mixed"
        assert "Panelists selected by lot" in text_of(mail)
        assert "<strong>Panelists selected by lot</strong>" in text_of(mail, "html")
        part, _ = calendar_of(mail)
        assert part.get_content_type() == "text/calendar"
        assert part.get_param("method") == "PUBLISH"
        assert part.get_filename() == "deadline.ics"

    def test_calendar_event_is_all_day_and_stable(self, smtp_server: Server) -> None:
        """The .ics event is all-day on the due date, with a UID and SEQUENCE."""
        _, cal = calendar_of(deliver(smtp_server, render()))
        assert str(cal["METHOD"]) == "PUBLISH"
        (event,) = cal.walk("VEVENT")
        assert event["UID"] == deadline_uid("dl-42")
        assert event.decoded("DTSTART") == date(2025, 1, 16)
        assert not isinstance(event.decoded("DTSTART"), datetime)
        assert event["SEQUENCE"] == 2
        assert "RRM-2025-001" in event["SUMMARY"]
        assert "NOMINAL" in event["DESCRIPTION"]
        assert len(event.walk("VALARM")) == 1

    def test_calendar_uid_is_the_same_for_every_alert(self) -> None:
        """Two alerts about one deadline share the UID, so calendars update."""
        first = render(make_view(alert_id="a1", calendar_sequence=0))
        second = render(make_view(alert_id="a2", calendar_sequence=1))
        uids = [
            icalendar.Calendar.from_ical(m.ics or b"").walk("VEVENT")[0]["UID"]
            for m in (first, second)
        ]
        assert uids[0] == uids[1]

    def test_session_reuses_one_connection(self, smtp_server: Server) -> None:
        """Several sends inside a session all arrive."""
        sender = notifier(smtp_server.port)
        with sender.session():
            for n in range(3):
                sender.send(render(make_view(alert_id=f"a{n}")))
        assert len(smtp_server.handler.envelopes) == 3

    def test_logs_name_the_alert_only(self, smtp_server: Server) -> None:
        """The sent event is logged with the alert id and no address or name."""
        with capture_logs() as logs:
            notifier(smtp_server.port).send(render())
        assert [e["event"] for e in logs] == ["alert_sent"]
        assert logs[0]["alert_id"] == "alert:c-1:dl-42:before-3"
        assert "ana" not in repr(logs).lower()


LOCALIZED = [
    ("en", "Thursday, January 16, 2025", "NOMINAL DEADLINE", "[RRM] Reminder:"),
    ("es", "jueves, 16 de enero de 2025", "PLAZO NOMINAL", "[RRM] Recordatorio:"),
    ("fr", "jeudi 16 janvier 2025", "DÉLAI NOMINAL", "[RRM] Rappel :"),
]


class TestLanguages:
    @pytest.mark.parametrize(("lang", "day", "nominal", "subject"), LOCALIZED)
    def test_body_is_localized(
        self, smtp_server: Server, lang: str, day: str, nominal: str, subject: str
    ) -> None:
        """Each language writes the due date and the NOMINAL warning its own way."""
        mail = deliver(smtp_server, render(make_view(language=lang)))
        assert mail["Subject"].startswith(subject)
        assert mail["Content-Language"] == lang
        for body in (text_of(mail), text_of(mail, "html")):
            assert day in body
            assert nominal in body
            assert "America/Mexico_City, UTC-06:00" in body

    def test_recipient_zone_is_shown_when_it_differs(self) -> None:
        """A recipient in another zone also sees the deadline in local time."""
        text = render(make_view(timezone="America/Toronto")).text
        assert "Thursday, January 16, 2025, until the end of the day" in text
        assert (
            "before Friday, January 17, 2025, 1:00 AM (America/Toronto, UTC-05:00)"
            in text
        )

    def test_unknown_language_falls_back(self) -> None:
        """An unknown language uses the default; a regional tag uses its language."""
        assert render(make_view(language="de")).language == "en"
        assert render(make_view(language="de"), default_language="fr").language == "fr"
        assert render(make_view(language="es-MX")).language == "es"

    def test_french_first_of_month(self) -> None:
        """French writes the first day of a month as 1er."""
        assert format_date(date(2025, 2, 1), "fr") == "samedi 1er février 2025"

    def test_verified_deadline_is_not_nominal(self) -> None:
        """A verified (V) deadline carries no NOMINAL wording."""
        message = render(make_view(evidence="V", nominal=False))
        assert "NOMINAL" not in message.text
        assert "nominal" not in message.subject
        assert "Verified in a primary or official text" in message.text

    def test_late_and_overdue_are_said(self) -> None:
        """An overdue repeat sent late says both, in the subject and the body."""
        view = make_view(kind=AlertKind.OVERDUE, repeat=2, days_before=None, late=True)
        message = render(view, default_language="en")
        assert message.subject.startswith("[RRM] (sent late) OVERDUE:")
        assert "OVERDUE (reminder 2)" in message.text
        assert "This alert is late" in message.text

    def test_case_data_is_escaped_in_html(self) -> None:
        """Markup in case data is shown as text in the HTML body."""
        message = render(make_view(facility_name="<script>alert(1)</script>"))
        assert "<script>" not in message.html
        assert "&lt;script&gt;" in message.html


class TestHeaderInjection:
    @pytest.mark.parametrize(
        "field", ["facility_name", "deadline_label", "recipient_name", "case_ref"]
    )
    def test_newlines_add_no_header_or_recipient(
        self, smtp_server: Server, field: str
    ) -> None:
        """Case data with CR/LF adds no header and no recipient."""
        view = make_view(**{field: getattr(make_view(), field) + INJECTION})
        deliver(smtp_server, render(view))
        headers = header_block(raw(smtp_server))
        assert not re.search(r"^bcc:", headers, re.IGNORECASE | re.MULTILINE)
        assert smtp_server.handler.envelopes[0].rcpt_tos == ["ana.ruiz@dol.example"]

    def test_subject_is_one_capped_line(self) -> None:
        """Control and separator characters leave the subject; its length is capped."""
        label = "A\u2028B\u0085C\x00D\u202eE" + "x" * 500
        subject = render(make_view(deadline_label=label)).subject
        assert subject.isprintable()
        assert len(subject) <= 200
        assert subject.endswith("— RRM-2025-001")
        assert header_safe("a\r\n\tb  c") == "a b c"

    @pytest.mark.parametrize(
        "address",
        [f"ana@dol.example{INJECTION}", "not-an-address", "a@b@c", "ana@", ""],
    )
    def test_bad_recipient_address_is_permanent(
        self, smtp_server: Server, address: str
    ) -> None:
        """An address with CR/LF or bad syntax is refused before any connection."""
        message = render(make_view(recipient_email=address))
        with pytest.raises(NotificationError) as info:
            notifier(smtp_server.port).send(message)
        assert info.value.permanent
        assert smtp_server.handler.envelopes == []


class TestPrivacy:
    def test_petitioner_never_appears(self, smtp_server: Server) -> None:
        """A petitioner's name that is nowhere in the view never reaches the message."""
        sentinel = "Xochitl Petitioner-Sentinel"
        fields = {f.name for f in dataclasses.fields(AlertView)}
        assert not any("petition" in name for name in fields)
        deliver(smtp_server, render())
        assert sentinel.encode() not in raw(smtp_server)
        assert b"Petitioner" not in raw(smtp_server)

    def test_error_message_names_no_recipient(self, smtp_server: Server) -> None:
        """A refused recipient's address appears neither in the error nor the log."""
        smtp_server.handler.rcpt_replies["ana.ruiz@dol.example"] = (
            "550 5.1.1 <ana.ruiz@dol.example>: Recipient address rejected"
        )
        with capture_logs() as logs, pytest.raises(NotificationError) as info:
            notifier(smtp_server.port).send(render())
        assert "ana" not in str(info.value).lower()
        assert info.value.__cause__ is None
        assert "ana" not in repr(logs).lower()
        assert [e["event"] for e in logs] == ["alert_failed"]


class TestLink:
    def test_link_is_built_and_quoted(self) -> None:
        """The link fills the template with URL-quoted values in both bodies."""
        view = make_view(case_ref="RRM 2025/001&x=1", alert_id="al:1")
        message = render(view)
        expected = "https://rrm.example.gov/cases/c-1/d/panel_composition?ref=RRM%202025%2F001%26x%3D1&a=al%3A1"
        assert expected in message.text
        assert f'href="{expected.replace("&", "&amp;")}"' in message.html

    def test_no_template_means_no_link(self) -> None:
        """An empty template and no link in the view give a message without a link."""
        message = render(link_template="")
        assert "Open the case" not in message.text
        assert "href" not in message.html

    @pytest.mark.parametrize(
        "template",
        [
            "javascript:alert({case_id})",
            "https://x.example/{petitioner}",
            "https://x.example/{case_id.__class__}",
            "https://x.example/{case_id!r}",
            "https://x.example/{",
        ],
    )
    def test_bad_template_is_refused(self, template: str) -> None:
        """A template with another scheme or other fields is refused at construction."""
        with pytest.raises(InvalidInput):
            JinjaAlertRenderer(template)


class TestFailures:
    def test_server_down_is_temporary(self) -> None:
        """Nothing listening on the port is a temporary failure."""
        with pytest.raises(NotificationError) as info:
            notifier(free_port()).send(render())
        assert not info.value.permanent

    def test_recipient_refused_with_550_is_permanent(self, smtp_server: Server) -> None:
        """A 550 reply to RCPT is a permanent failure that names the code."""
        smtp_server.handler.rcpt_replies["ana.ruiz@dol.example"] = (
            "550 5.1.1 No such user"
        )
        with pytest.raises(NotificationError) as info:
            notifier(smtp_server.port).send(render())
        assert info.value.permanent
        assert "550 5.1.1" in str(info.value)

    def test_recipient_deferred_with_451_is_temporary(
        self, smtp_server: Server
    ) -> None:
        """A 451 reply to RCPT is a temporary failure."""
        smtp_server.handler.rcpt_replies["ana.ruiz@dol.example"] = "451 4.3.0 Try later"
        with pytest.raises(NotificationError) as info:
            notifier(smtp_server.port).send(render())
        assert not info.value.permanent
        assert "451" in str(info.value)

    def test_data_refused_with_554_is_permanent(self, smtp_server: Server) -> None:
        """A 554 reply to DATA is a permanent failure."""
        smtp_server.handler.data_reply = "554 5.6.0 Message refused"
        with pytest.raises(NotificationError) as info:
            notifier(smtp_server.port).send(render())
        assert info.value.permanent

    def test_bad_message_id_is_permanent(self, smtp_server: Server) -> None:
        """A Message-ID that is not an angle-bracketed id is refused."""
        message = dataclasses.replace(render(), message_id="<a b>\r\nX: y")
        with pytest.raises(NotificationError) as info:
            notifier(smtp_server.port).send(message)
        assert info.value.permanent

    def test_login_without_tls_is_refused(self) -> None:
        """Settings that would send a password unencrypted are refused."""
        with pytest.raises(InvalidInput):
            SmtpSettings(host="h", sender_address=SENDER, security="none", username="u")

    def test_password_is_not_in_repr(self) -> None:
        """The settings' repr never shows the password."""
        settings = SmtpSettings(
            host="h", sender_address=SENDER, username="u", password="pw-42"
        )
        assert "pw-42" not in repr(settings)


class TestTls:
    def test_starttls_with_login_delivers(
        self, starttls_server: Server, certificate: Certificate
    ) -> None:
        """STARTTLS with a trusted certificate and a login delivers the message."""
        mail = deliver(
            starttls_server,
            render(),
            security="starttls",
            username=USER,
            password=PASSWORD,
            ssl_context=certificate.client_context(),
        )
        assert mail["Message-ID"] == "<alert.c-1.dl-42.before-3@rrm.invalid>"
        assert starttls_server.handler.logins == [USER.encode()]

    def test_wrong_password_is_retried(
        self, starttls_server: Server, certificate: Certificate
    ) -> None:
        """A refused login (535) is refused for every message: a setting to fix,
        not a fault of this alert. It is retried with backoff (as an untrusted
        certificate is), so the alerts go out once the password is corrected
        instead of all being dead-lettered for good (found by the fault suite)."""
        with pytest.raises(NotificationError) as info:
            notifier(
                starttls_server.port,
                security="starttls",
                username=USER,
                password="wrong",
                ssl_context=certificate.client_context(),
            ).send(render())
        assert not info.value.permanent
        assert "535" in str(info.value)

    def test_untrusted_certificate_is_temporary(self, starttls_server: Server) -> None:
        """A certificate the client does not trust fails the TLS handshake."""
        with pytest.raises(NotificationError) as info:
            notifier(starttls_server.port, security="starttls").send(render())
        assert not info.value.permanent
        assert "TLS" in str(info.value)
        assert starttls_server.handler.envelopes == []

    def test_implicit_tls_delivers(
        self, smtps_server: Server, certificate: Certificate
    ) -> None:
        """SMTPS (TLS from the first byte) delivers the message."""
        mail = deliver(
            smtps_server,
            render(),
            security="ssl",
            ssl_context=certificate.client_context(),
        )
        assert mail["Auto-Submitted"] == "auto-generated"
