"""Daily digests end to end: render an officer's digest, send it to a real SMTP server."""

from __future__ import annotations

import dataclasses
import email
import html
import re
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest

from rrm.adapters.email import JinjaAlertRenderer, SmtpNotifier, SmtpSettings
from rrm.domain.alerts import AlertMessage, DigestView

from .conftest import SENT_AT, Server, make_digest_view

LINK = "https://rrm.example.gov/cases/{case_id}/d/{deadline_key}?ref={case_ref}&a={alert_id}"
SENDER = "alerts@rrm.example.gov"
INJECTION = "\r\nBcc: evil@example.com"


def render(view: DigestView | None = None, **kwargs: Any) -> AlertMessage:
    renderer = JinjaAlertRenderer(kwargs.pop("link_template", LINK), **kwargs)
    return renderer.render_digest(view or make_digest_view())


def replace_item(view: DigestView, index: int, **changes: Any) -> DigestView:
    """Return *view* with item *index* changed."""
    items = list(view.items)
    items[index] = dataclasses.replace(items[index], **changes)
    return dataclasses.replace(view, items=tuple(items))


def deliver(server: Server, message: AlertMessage) -> EmailMessage:
    """Send *message* to *server* and return the one message it received."""
    settings = SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        security="none",
        sender_address=SENDER,
        timeout=5,
        local_hostname="rrm.test",
    )
    SmtpNotifier(settings, now=lambda: SENT_AT).send(message)
    (envelope,) = server.handler.envelopes
    parsed = email.message_from_bytes(envelope.content, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def raw(server: Server) -> bytes:
    (envelope,) = server.handler.envelopes
    return bytes(envelope.content)


def text_of(mail: EmailMessage, subtype: str = "plain") -> str:
    part = mail.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


LOCALIZED = [
    (
        "en",
        (
            "[RRM] Deadlines for Thursday, January 16, 2025: 2 overdue, 1 due today, "
            "2 upcoming"
        ),
        ("Overdue (2)", "Due today (1)", "Upcoming within 14 days (2)"),
        ("Friday, January 10, 2025", "Tuesday, January 21, 2025"),
        "NOMINAL DEADLINE",
    ),
    (
        "es",
        (
            "[RRM] Plazos del jueves, 16 de enero de 2025: 2 vencidos, 1 vence hoy, "
            "2 por vencer"
        ),
        ("Vencidos (2)", "Vencen hoy (1)", "Por vencer en los próximos 14 días (2)"),
        ("viernes, 10 de enero de 2025", "martes, 21 de enero de 2025"),
        "PLAZO NOMINAL",
    ),
    (
        "fr",
        (
            "[RRM] Échéances du jeudi 16 janvier 2025 : 2 en retard, "
            "1 pour aujourd'hui, 2 à venir"
        ),
        ("En retard (2)", "Échéance aujourd'hui (1)", "À venir dans les 14 prochains "),
        ("vendredi 10 janvier 2025", "mardi 21 janvier 2025"),
        "DÉLAI NOMINAL",
    ),
]


class TestDigestLanguages:
    @pytest.mark.parametrize(
        ("lang", "subject", "headings", "days", "nominal"), LOCALIZED
    )
    def test_digest_is_localized(
        self,
        lang: str,
        subject: str,
        headings: tuple[str, ...],
        days: tuple[str, ...],
        nominal: str,
    ) -> None:
        """Each language writes the subject, group headings and dates its own way."""
        message = render(make_digest_view(language=lang))
        assert message.subject == subject
        assert message.language == lang
        for body in (message.text, html.unescape(message.html)):
            for heading in headings:
                assert heading in body
            for day in days:
                assert day in body
            assert nominal in body
            assert "America/Mexico_City, UTC-06:00" in body

    def test_groups_are_in_order_and_sorted_by_due_date(self) -> None:
        """Overdue comes first, then due today, then upcoming; oldest first within."""
        text = render().text
        order = [
            text.index(s)
            for s in (
                "Overdue (2)",
                "RRM-2024-017",
                "Request response",
                "Due today (1)",
                "Panel composition",
                "Upcoming within 14 days (2)",
                "Panel verification",
                "Determination",
            )
        ]
        assert order == sorted(order)

    def test_recipient_zone_is_shown_when_it_differs(self) -> None:
        """An item due in another zone also shows its end in the recipient's zone."""
        text = render().text
        assert (
            "Friday, January 24, 2025, until the end of the day "
            "(America/Toronto, UTC-05:00)" in text
        )
        assert (
            "before Friday, January 24, 2025, 11:00 PM (America/Mexico_City, "
            "UTC-06:00)" in text
        )

    def test_unknown_language_falls_back(self) -> None:
        """An unknown language uses the default; a regional tag uses its language."""
        assert render(make_digest_view(language="de")).language == "en"
        view = make_digest_view(language="de")
        assert render(view, default_language="fr").language == "fr"
        assert render(make_digest_view(language="es-MX")).language == "es"


class TestDigestNominal:
    def test_nominal_item_is_marked(self) -> None:
        """Only the nominal item carries the NOMINAL warning, in both bodies."""
        message = render()
        for body in (message.text, message.html):
            assert body.count("NOMINAL DEADLINE") == 1
            block = body[body.index("Panel composition") :]
            assert block.index("NOMINAL DEADLINE") < block.index("Panel verification")

    def test_no_nominal_item_means_no_marker(self) -> None:
        """A digest without nominal items says nothing about nominal deadlines."""
        view = replace_item(make_digest_view(), 2, nominal=False)
        message = render(view)
        assert "NOMINAL" not in message.text
        assert "NOMINAL" not in message.html


class TestDigestCaseData:
    @pytest.mark.parametrize("field", ["case_ref", "deadline_label", "facility_name"])
    def test_newlines_add_no_header_or_recipient(
        self, smtp_server: Server, field: str
    ) -> None:
        """Case data with CR/LF adds no header and no recipient, and stays one line."""
        view = make_digest_view()
        value = getattr(view.items[0], field) + INJECTION
        message = render(replace_item(view, 0, **{field: value}))
        assert "\n" not in message.subject
        assert "\r" not in message.subject
        mail = deliver(smtp_server, message)
        headers = raw(smtp_server).split(b"\r\n\r\n", 1)[0].decode("ascii")
        assert not re.search(r"^bcc:", headers, re.IGNORECASE | re.MULTILINE)
        assert mail["Bcc"] is None
        assert smtp_server.handler.envelopes[0].rcpt_tos == ["ana.ruiz@dol.example"]
        assert f"{getattr(view.items[0], field)} Bcc: evil@example.com" in text_of(mail)

    def test_markup_is_escaped_in_html(self) -> None:
        """Markup in case data is shown as text in the HTML body."""
        view = replace_item(make_digest_view(), 0, facility_name="<script>x</script>")
        body = render(view).html
        assert "<script>" not in body
        assert "&lt;script&gt;" in body

    def test_link_is_built_per_item_and_quoted(self) -> None:
        """Each item links to its case and deadline; the alert id is left empty."""
        view = replace_item(make_digest_view(), 1, case_ref="RRM 2024/017&x=1")
        message = render(view)
        expected = (
            "https://rrm.example.gov/cases/c-2/d/remediation_plan"
            "?ref=RRM%202024%2F017%26x%3D1&a="
        )
        assert expected in message.text
        assert f'href="{expected.replace("&", "&amp;")}"' in message.html
        assert message.text.count("Open the case") == 5

    def test_no_template_means_no_link(self) -> None:
        """Without a link template the digest has no links."""
        message = render(link_template="")
        assert "Open the case" not in message.text
        assert "href" not in message.html


class TestEmptyDigest:
    def test_empty_digest_renders(self) -> None:
        """A digest with no items says there is nothing within the horizon."""
        message = render(make_digest_view(items=(), horizon_days=7))
        assert message.subject == (
            "[RRM] Deadlines for Thursday, January 16, 2025: "
            "no open deadlines within 7 days"
        )
        for body in (message.text, message.html):
            assert "You have no open deadlines within 7 days." in body
            assert "Overdue" not in body

    @pytest.mark.parametrize(
        ("lang", "phrase"),
        [
            ("en", "no open deadlines within 1 day"),
            ("es", "ningún plazo abierto hasta mañana"),
            ("fr", "aucune échéance ouverte d'ici demain"),
        ],
    )
    def test_one_day_horizon_is_singular(self, lang: str, phrase: str) -> None:
        """A one-day horizon is worded in the singular."""
        view = make_digest_view(items=(), horizon_days=1, language=lang)
        assert render(view).subject.endswith(phrase)


class TestDigestDelivery:
    def test_digest_arrives_without_calendar(self, smtp_server: Server) -> None:
        """A sent digest keeps its Message-ID and has text and HTML but no .ics."""
        message = render()
        assert message.ics is None
        assert message.alert_id == "digest:off-7:2025-01-16"
        mail = deliver(smtp_server, message)
        assert mail["Message-ID"] == "<digest.off-7.2025-01-16@rrm.invalid>"
        assert mail["Subject"] == message.subject
        assert mail["Content-Language"] == "en"
        assert mail.get_content_type() == "multipart/alternative"
        assert list(mail.iter_attachments()) == []
        assert b"text/calendar" not in raw(smtp_server)
        assert "Overdue (2)" in text_of(mail)
        assert "Overdue (2)" in text_of(mail, "html")

    def test_only_the_recipient_address_is_personal_data(
        self, smtp_server: Server
    ) -> None:
        """The digest is addressed to the bare address and never names its officer."""
        mail = deliver(smtp_server, render())
        assert mail["To"] == "ana.ruiz@dol.example"
        assert b"off-7" not in raw(smtp_server).split(b"\r\n\r\n", 1)[1]
        assert b"Ana Ruiz" not in raw(smtp_server)
