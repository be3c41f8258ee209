"""Calendar feeds on a live server: made through the API, read by calendar clients.

A feed's secret address is its only credential, so it is fetched here without a
bearer token, as a calendar application would, and parsed with ``icalendar``.
Every test follows an officer of its own, so its feed shows only its own cases.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import icalendar
import pytest

import rrm
from rrm.adapters.email.ics import deadline_uid
from rrm.views.calendar import NOMINAL_NOTE

from .conftest import CLAIM, FACILITY, Person

if TYPE_CHECKING:
    from .conftest import LiveServer

V1 = "/api/v1"
_OFFICERS = itertools.count()


class Officer:
    """A USTR officer of one test: a token, cases, a feed."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.officer_id = f"officer-{next(_OFFICERS)}"
        self.token = live.issue(Person(self.officer_id, ("ustr",), ("OTLA",)))

    def open_31a(self) -> rrm.Case:
        """Open a U.S. request for review (deadlines of evidence S) on this officer."""
        return self.live.open_case(
            "FEED",
            officers=(
                rrm.Officer(officer_id=self.officer_id, role="ustr"),
                rrm.Officer(officer_id="lupe", role="respondent"),
                rrm.Officer(officer_id="sam", role="supervisor"),
            ),
        )

    def open_31b(self) -> rrm.Case:
        """Open a Canadian request (deadlines of evidence R, nominal) on this officer."""
        return self.live.seed.open_case(
            rrm.OpenCase(
                workflow="usmca-31b",
                initiation="request",
                complainant="CA",
                respondent="MX",
                facility=FACILITY,
                claim=CLAIM,
                officers=(rrm.Officer(officer_id=self.officer_id, role="complainant"),),
                external_ref=self.live.ref("FEED-CA"),
                actor="gac",
                role="complainant",
            )
        )

    def create_feed(self) -> dict[str, Any]:
        """Create this officer's feed through the API."""
        response = self.live.call("POST", f"{V1}/feeds", self.token, json={})
        assert response.status_code == 201, response.text
        found: dict[str, Any] = response.json()
        return found

    def fetch(self, feed: dict[str, Any]) -> Any:
        """Fetch the feed as a calendar client does: no bearer token."""
        return self.live.call("GET", urlsplit(feed["url"]).path)

    def events(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Return the feed's VEVENTs by UID."""
        response = self.fetch(feed)
        assert response.status_code == 200, response.text
        calendar = icalendar.Calendar.from_ical(response.content)
        return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


@pytest.fixture(name="officer")
def _officer(live: LiveServer) -> Officer:
    return Officer(live)


def uids(case: rrm.Case) -> set[str]:
    """Return the calendar UIDs of a case's open deadlines."""
    return {deadline_uid(d.deadline_id) for d in case.open_deadlines.values()}


class TestCreation:
    def test_creates_a_webcal_address_for_yourself(self, live, officer):
        """An officer's own feed is a webcal:// address on the service's host."""
        feed = officer.create_feed()

        assert feed["officer_id"] == officer.officer_id
        assert feed["url"].startswith(f"webcal://{urlsplit(live.url).netloc}/feeds/")
        assert feed["url"].endswith(".ics")

    def test_lists_feeds_without_their_secrets(self, live, officer):
        """The list names the feed but never shows its address again."""
        feed = officer.create_feed()

        listed = live.call("GET", f"{V1}/feeds", officer.token).json()["feeds"]

        assert [f["feed_id"] for f in listed] == [feed["feed_id"]]
        assert "url" not in listed[0]

    @pytest.mark.parametrize(
        ("who", "status"), [("bob", 403), ("sam", 201), ("admin", 201)]
    )
    def test_another_officers_feed_needs_a_supervisor(self, live, officer, who, status):
        """Only a supervisor or an administrator makes a feed of another's deadlines."""
        response = live.call(
            "POST",
            f"{V1}/feeds",
            live.token(who),
            json={"officer_id": officer.officer_id},
        )

        assert response.status_code == status

    def test_another_officers_feed_list_needs_a_supervisor(self, live, officer):
        """Bob may not list another officer's feeds."""
        officer.create_feed()

        response = live.call(
            "GET",
            f"{V1}/feeds",
            live.token("bob"),
            params={"officer_id": officer.officer_id},
        )

        assert response.status_code == 403


class TestContent:
    def test_serves_icalendar_without_a_bearer_token(self, officer):
        """The secret address alone gets the calendar."""
        officer.open_31a()

        response = officer.fetch(officer.create_feed())

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/calendar")

    def test_has_one_event_per_open_deadline(self, officer):
        """Each open deadline of the officer's cases is one event."""
        cases = [officer.open_31a(), officer.open_31b()]

        events = officer.events(officer.create_feed())

        assert set(events) == uids(cases[0]) | uids(cases[1])

    def test_gives_each_deadline_its_day_explanation_and_citation(self, officer):
        """An event falls on the due date and explains and cites the deadline."""
        case = officer.open_31a()
        answer = case.open_deadlines["respondent_answer"]

        event = officer.events(officer.create_feed())[deadline_uid(answer.deadline_id)]

        assert event.decoded("DTSTART") == answer.due_date
        assert answer.explanation in str(event["DESCRIPTION"])
        assert f"Citation: {answer.citation}" in str(event["DESCRIPTION"])

    def test_marks_a_recalled_deadline_nominal(self, officer):
        """A deadline of evidence R is marked NOMINAL, one of evidence S is not."""
        recalled = officer.open_31b().open_deadlines["respondent_answer"]
        sourced = officer.open_31a().open_deadlines["respondent_answer"]
        assert (recalled.evidence, sourced.evidence) == ("R", "S")

        events = officer.events(officer.create_feed())

        nominal = events[deadline_uid(recalled.deadline_id)]
        plain = events[deadline_uid(sourced.deadline_id)]
        assert "(NOMINAL)" in str(nominal["SUMMARY"])
        assert NOMINAL_NOTE in str(nominal["DESCRIPTION"])
        assert "NOMINAL" not in str(plain["SUMMARY"]) + str(plain["DESCRIPTION"])

    def test_makes_all_day_events(self, officer):
        """Deadlines are all-day events: DTSTART is a date, not a time."""
        officer.open_31a()

        events = officer.events(officer.create_feed())

        assert {type(e.decoded("DTSTART")) for e in events.values()} == {date}


class TestUpdates:
    def test_an_extension_moves_the_event_and_raises_its_sequence(self, live, officer):
        """After an extension the event falls on the new date with a higher SEQUENCE."""
        case = officer.open_31a()
        review = case.open_deadlines["respondent_review"]
        feed = officer.create_feed()
        before = officer.events(feed)[deadline_uid(review.deadline_id)]
        new_date = review.due_date + timedelta(days=10)

        extended = live.call(
            "POST",
            f"{V1}/cases/{case.case_id}/deadlines/respondent_review/extend",
            live.token("sam"),
            json={"new_date": new_date.isoformat(), "reason": "agreed by the Parties"},
        )

        assert extended.status_code == 200, extended.text
        after = officer.events(feed)[deadline_uid(review.deadline_id)]
        assert (after.decoded("DTSTART"), int(after["SEQUENCE"])) == (
            new_date,
            int(before["SEQUENCE"]) + 2,
        )

    def test_a_met_deadline_leaves_the_feed(self, live, officer):
        """Mexico's answer meets the answer deadline; its event is gone."""
        case = officer.open_31a()
        answer = case.open_deadlines["respondent_answer"]
        feed = officer.create_feed()
        assert deadline_uid(answer.deadline_id) in officer.events(feed)

        agreed = live.call(
            "POST",
            f"{V1}/cases/{case.case_id}/events",
            live.token("lupe"),
            json={"event": "respondent_agrees"},
        )

        assert agreed.status_code == 200, agreed.text
        assert set(officer.events(feed)) == uids(live.engine.get(case.case_id))
        assert deadline_uid(answer.deadline_id) not in officer.events(feed)

    def test_a_paused_deadline_says_so(self, live, officer):
        """A tolled deadline stays in the feed, marked paused."""
        case = officer.open_31a()
        answer = case.open_deadlines["respondent_answer"]
        feed = officer.create_feed()

        live.call(
            "POST",
            f"{V1}/cases/{case.case_id}/deadlines/respondent_answer/pause",
            live.token("sam"),
            json={"reason": "consultations"},
        )

        event = officer.events(feed)[deadline_uid(answer.deadline_id)]
        assert "(paused)" in str(event["SUMMARY"])


class TestRevocation:
    def test_a_revoked_feed_is_refused(self, live, officer):
        """Once its owner revokes it, the feed's address answers 401."""
        feed = officer.create_feed()

        revoked = live.call("DELETE", f"{V1}/feeds/{feed['feed_id']}", officer.token)

        assert revoked.status_code == 204
        assert officer.fetch(feed).status_code == 401

    def test_another_officer_cannot_revoke_a_feed(self, live, officer):
        """Bob may not revoke someone else's feed; it keeps working."""
        feed = officer.create_feed()

        refused = live.call(
            "DELETE", f"{V1}/feeds/{feed['feed_id']}", live.token("bob")
        )

        assert refused.status_code == 403
        assert officer.fetch(feed).status_code == 200

    def test_a_guessed_secret_is_refused(self, live, officer):
        """A feed id with the wrong secret answers 401."""
        feed = officer.create_feed()
        path = urlsplit(feed["url"]).path
        forged = path[: path.index(".") + 1] + "A" * 43 + ".ics"

        assert live.call("GET", forged).status_code == 401

    def test_revoking_an_unknown_feed_is_not_found(self, live, officer):
        """Revoking a feed id that does not exist answers 404 problem details."""
        missing = live.call("DELETE", f"{V1}/feeds/0123456789abcdef", officer.token)

        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["error"] == "FeedNotFound"
