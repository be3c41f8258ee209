"""An alert's Message-ID is a valid msg-id with one ``@``, the one sent on the wire."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from rrm.adapters.email.smtp import wire_message_id
from rrm.domain.alerts import Alert, AlertKind

T = datetime(2025, 1, 13, 14, tzinfo=UTC)


def alert(alert_id: str) -> Alert:
    return Alert(
        alert_id=alert_id,
        deadline_id="dl-1",
        case_id="c-1",
        step="before-3@2025-01-16",
        kind=AlertKind.REMINDER,
        recipient_id="ana",
        recipient_email="ana@example.gov",
        recipient_role="officer",
        language="en",
        timezone="UTC",
        owed_at=T,
        created_at=T,
        late=False,
    )


def test_step_at_sign_does_not_make_a_second_one():
    """Found by the fault suite: ids like ``...before-3@2025-01-16:ana`` gave a
    Message-ID with two ``@``, which mail software cuts at the second."""
    mid = alert("alert:c-1:dl-1:before-3@2025-01-16:ana").message_id
    assert mid == "<alert.c-1.dl-1.before-3.2025-01-16.ana@rrm.invalid>"
    assert mid.count("@") == 1


@given(st.text(alphabet="abc-:@0123456789", min_size=1, max_size=40))
def test_stored_message_id_is_the_one_on_the_wire(alert_id: str):
    mid = alert(alert_id).message_id
    assert mid.count("@") == 1
    assert wire_message_id(mid) == mid
