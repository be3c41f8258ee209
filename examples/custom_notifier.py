"""Deliver alerts through the host's own channel instead of SMTP.

Any object with ``send(message: rrm.AlertMessage) -> None`` is a notifier. This one
stands in for a webhook or a case system's inbox: it appends each alert, as JSON, to
a file (an HTTP POST would go in the same place). Raising ``rrm.NotificationError``
makes RRM retry with backoff, or dead-letter the alert when ``permanent=True``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import structlog

import rrm
from rrm.testing import FakeClock, skip


class InboxNotifier:
    """Writes every alert to a JSON-lines inbox the host's application reads."""

    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox

    def send(self, message: rrm.AlertMessage) -> None:
        view = message.view
        if not isinstance(view, rrm.AlertView):
            return  # this host has no use for daily digests
        record = {
            "message_id": message.message_id,
            "to": message.to_address,
            "subject": message.subject,
            "case": view.case_ref,
            "deadline": view.deadline_label,
            "due": view.due_date.isoformat(),
            "nominal": view.nominal,
            "kind": view.kind.value,
        }
        try:
            with self.inbox.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:  # the host's channel is down: RRM retries later
            raise rrm.NotificationError("inbox not writable") from exc


def main(folder: Path) -> int:
    # The host decides what RRM's structured logs do; here: warnings and above only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    clock = FakeClock(datetime(2025, 1, 6, 15, tzinfo=UTC))
    inbox = folder / "inbox.jsonl"
    engine = rrm.bootstrap(
        f"sqlite:///{folder / 'rrm.sqlite'}",
        clock=clock,
        upgrade=True,
        notifier=InboxNotifier(inbox),
    )
    engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="MX-7",
                name="Planta Siete",
                owner="Grupo",
                country=rrm.Party.MX,
            ),
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            external_ref="HOST-7",
            actor="officer:ana",
            role="ustr",
            officers=(
                rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example"),
            ),
        )
    )
    skip(engine, clock, to=datetime(2025, 1, 17, 12, tzinfo=UTC))
    lines = [json.loads(line) for line in inbox.read_text().splitlines()]
    for item in lines:
        print(f"{item['kind']:9} {item['deadline'][:50]:50} due {item['due']}")
    assert [i["kind"] for i in lines] == [
        "reminder",
        "reminder",
        "reminder",
        "due",
        "overdue",
    ]
    return 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(Path(tmp)))
