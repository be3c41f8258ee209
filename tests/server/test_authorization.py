"""Who may call what: every endpoint against every kind of caller, on a live server.

The matrix crosses every route the app serves (read from ``app.routes``, so a new
route without an entry fails :class:`TestEveryRoute`) with eight callers: no
credential, a JWT with a forged signature, one from another issuer, an expired
one, a valid credential without the role the endpoint needs, one with the role
but not on the case, and the right caller with an API token and with an OIDC
JWT. Refused requests answer 401 or 403 as problem details and write nothing:
row counts, case versions and the in-place tables (alerts, tokens, feeds,
webhooks) are compared before and after each one.

Reads need any role, so a reader not on a case still reads it (the policy in
``rrm/service/access.py``); deployment-wide actions (alerts, webhooks, imports,
the audit) bind no case and have no "unassigned" column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from rrm.service import credentials as creds
from rrm.service.transfer import export_case

from .conftest import ISSUER, LiveServer, free_port

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx
    from fastapi import FastAPI

PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Call:
    """What to send: path parameters of the route, a JSON body, a query."""

    path: dict[str, str] = field(default_factory=dict)
    json: Any = None
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class Endpoint:
    """One route, how to call it, and who may.

    ``build`` receives the server and whether the call is expected to succeed
    (a successful retry or acknowledgement uses up its alert).
    """

    method: str
    route: str
    build: Callable[[LiveServer, bool], Call]
    allowed: str
    no_role: str
    unassigned: str | None = None
    unassigned_status: int = 403
    status: int = 200
    writes: bool = False


# -- how each endpoint is called ----------------------------------------------------


def _shared(live: LiveServer, _ok: bool) -> Call:
    return Call(path={"case": live.shared_case().case_id})


def _nothing(_live: LiveServer, _ok: bool) -> Call:
    return Call()


def open_body(live: LiveServer, prefix: str = "API") -> dict[str, Any]:
    """Return the body that opens a U.S. request for review with ana as ustr."""
    return {
        "workflow": "usmca-31a",
        "initiation": "request",
        "complainant": "US",
        "respondent": "MX",
        "external_ref": live.ref(prefix),
        "role": "ustr",
        "facility": {
            "facility_id": "MX-SRV-1",
            "name": "Planta Servicio",
            "owner": "Grupo Servicio",
            "country": "MX",
        },
        "claim": {
            "basis": "annex_23a_legislation",
            "sector_category": "manufacturing",
        },
        "petitioners": [{"name": "Local union", "confidential": True}],
        "officers": [{"officer_id": "ana", "role": "ustr", "email": "ana@ustr.gov"}],
    }


def _open(live: LiveServer, _ok: bool) -> Call:
    return Call(json=open_body(live))


def _fire(live: LiveServer, _ok: bool) -> Call:
    case = live.open_case("FIRE")
    return Call(
        path={"case": case.case_id},
        json={"event": "respondent_agrees", "role": "respondent"},
    )


def _extend(live: LiveServer, _ok: bool) -> Call:
    case = live.open_case("EXTEND")
    return Call(
        path={"case": case.case_id, "key": "respondent_answer"},
        json={"new_date": "2025-01-31", "reason": "agreed by both Parties"},
    )


def _pause(live: LiveServer, _ok: bool) -> Call:
    case = live.open_case("PAUSE")
    return Call(
        path={"case": case.case_id, "key": "respondent_answer"},
        json={"reason": "consultations"},
    )


def _resume(live: LiveServer, _ok: bool) -> Call:
    case = live.paused_case()
    return Call(
        path={"case": case.case_id, "key": "respondent_answer"},
        json={"reason": "consultations over"},
    )


def _assign(live: LiveServer, _ok: bool) -> Call:
    case = live.open_case("ASSIGN")
    return Call(
        path={"case": case.case_id},
        json={
            "assign": [
                {"officer_id": "eve", "role": "respondent", "email": "eve@se.example"}
            ],
            "remove": ["lupe"],
            "reason": "lupe moved to another unit",
        },
    )


def _own_case(live: LiveServer, _ok: bool) -> Call:
    return Call(path={"case": live.open_case("EXPORT").case_id})


def _import(live: LiveServer, _ok: bool) -> Call:
    doc = export_case(live.seed, live.open_case("SOURCE").case_id)
    doc["case"]["external_ref"] = live.ref("IMPORTED")
    return Call(json=[doc])


def _alert(recipient: str) -> Callable[[LiveServer, bool], Call]:
    def build(live: LiveServer, ok: bool) -> Call:
        alert_id = live.failed_alert(recipient) if ok else live.alert_pool["dana"][0]
        return Call(path={"alert_id": alert_id})

    return build


def _workflow(_live: LiveServer, _ok: bool) -> Call:
    return Call(path={"workflow_id": "usmca-31a"})


def _verify(live: LiveServer, _ok: bool) -> Call:
    return Call(params={"case": live.shared_case().case_id})


def _facility(_live: LiveServer, _ok: bool) -> Call:
    return Call(path={"facility_id": "MX-SRV-1"})


def _subscribe(_live: LiveServer, _ok: bool) -> Call:
    return Call(
        json={
            "url": f"http://127.0.0.1:{free_port()}/rrm",
            "event_types": ["deadline.met"],
        }
    )


def _delivery(live: LiveServer, ok: bool) -> Call:
    if ok:
        return Call(path={"delivery_id": live.dead_delivery()})
    if "delivery" not in live.memo:
        live.memo["delivery"] = live.dead_delivery()
    return Call(path={"delivery_id": live.memo["delivery"]})


def _subscription(live: LiveServer, _ok: bool) -> Call:
    if "subscription" not in live.memo:
        live.memo["subscription"] = live.subscription()
    return Call(path={"subscription_id": live.memo["subscription"]})


def _new_subscription(live: LiveServer, _ok: bool) -> Call:
    return Call(path={"subscription_id": live.subscription()})


def _feed_for_ana(_live: LiveServer, _ok: bool) -> Call:
    return Call(json={"officer_id": "ana"})


def _feeds_of_ana(_live: LiveServer, _ok: bool) -> Call:
    return Call(params={"officer_id": "ana"})


def _anas_feed(live: LiveServer, _ok: bool) -> Call:
    feed, _ = creds.create_feed(
        live.credentials, officer_id="ana", created_by="tests", now=live.clock.now()
    )
    return Call(path={"feed_id": feed.feed_id})


# Reads: any role; ana reads, nobody (no role at all) may not, bob (not on the
# case) may.
READ: dict[str, Any] = {
    "allowed": "ana",
    "no_role": "nobody",
    "unassigned": "bob",
    "unassigned_status": 200,
}
# Deployment-wide administration.
ADMIN: dict[str, Any] = {"allowed": "admin", "no_role": "sam"}
# A supervisor's acts on a case: sam supervises the seeded cases, sue does not.
SUPERVISE: dict[str, Any] = {
    "allowed": "sam",
    "no_role": "ana",
    "unassigned": "sue",
    "writes": True,
}
V1 = "/api/v1"
ENDPOINTS = (
    Endpoint("GET", f"{V1}/cases", _nothing, **READ),
    Endpoint(
        "POST",
        f"{V1}/cases",
        _open,
        allowed="ana",
        no_role="dana",
        unassigned="bob",
        status=201,
        writes=True,
    ),
    Endpoint("GET", f"{V1}/cases/{{case}}", _shared, **READ),
    Endpoint(
        "GET",
        f"{V1}/cases/{{case}}/events/available",
        _shared,
        allowed="lupe",
        no_role="nobody",
        unassigned="mallory",
        unassigned_status=200,
    ),
    Endpoint(
        "POST",
        f"{V1}/cases/{{case}}/events",
        _fire,
        allowed="lupe",
        no_role="dana",
        unassigned="mallory",
        writes=True,
    ),
    Endpoint("GET", f"{V1}/cases/{{case}}/history", _shared, **READ),
    Endpoint("GET", f"{V1}/cases/{{case}}/deadlines", _shared, **READ),
    Endpoint(
        "POST", f"{V1}/cases/{{case}}/deadlines/{{key}}/extend", _extend, **SUPERVISE
    ),
    Endpoint(
        "POST", f"{V1}/cases/{{case}}/deadlines/{{key}}/pause", _pause, **SUPERVISE
    ),
    Endpoint(
        "POST", f"{V1}/cases/{{case}}/deadlines/{{key}}/resume", _resume, **SUPERVISE
    ),
    Endpoint("POST", f"{V1}/cases/{{case}}/officers", _assign, **SUPERVISE),
    Endpoint("GET", f"{V1}/cases/{{case}}/timeline.svg", _shared, **READ),
    Endpoint(
        "GET",
        f"{V1}/cases/{{case}}/export",
        _own_case,
        allowed="sam",
        no_role="ana",
        unassigned="sue",
    ),
    Endpoint("POST", f"{V1}/imports", _import, **ADMIN, writes=True),
    Endpoint("GET", f"{V1}/deadlines", _nothing, **READ),
    Endpoint("GET", f"{V1}/deadlines/overdue", _nothing, **READ),
    Endpoint("GET", f"{V1}/alerts", _nothing, **READ),
    Endpoint(
        "POST", f"{V1}/alerts/{{alert_id}}/retry", _alert("lupe"), **ADMIN, writes=True
    ),
    Endpoint(
        "POST",
        f"{V1}/alerts/{{alert_id}}/acknowledge",
        _alert("ana"),
        allowed="ana",
        no_role="nobody",
        unassigned="bob",
        writes=True,
    ),
    Endpoint("GET", f"{V1}/workflows", _nothing, **READ),
    Endpoint("GET", f"{V1}/workflows/{{workflow_id}}", _workflow, **READ),
    Endpoint("GET", f"{V1}/workflows/{{workflow_id}}/diagram", _workflow, **READ),
    Endpoint("GET", f"{V1}/audit/verify", _verify, allowed="sam", no_role="ana"),
    Endpoint("GET", f"{V1}/audit/anchors", _nothing, allowed="sam", no_role="ana"),
    Endpoint("GET", f"{V1}/facilities", _nothing, **READ),
    Endpoint("GET", f"{V1}/facilities/{{facility_id}}", _facility, **READ),
    Endpoint("POST", f"{V1}/webhooks", _subscribe, **ADMIN, status=201, writes=True),
    Endpoint("GET", f"{V1}/webhooks", _nothing, **ADMIN),
    Endpoint("GET", f"{V1}/webhooks/deliveries", _nothing, **ADMIN),
    Endpoint(
        "POST",
        f"{V1}/webhooks/deliveries/{{delivery_id}}/retry",
        _delivery,
        **ADMIN,
        writes=True,
    ),
    Endpoint("GET", f"{V1}/webhooks/{{subscription_id}}", _subscription, **ADMIN),
    Endpoint(
        "DELETE",
        f"{V1}/webhooks/{{subscription_id}}",
        _new_subscription,
        **ADMIN,
        status=204,
        writes=True,
    ),
    # Another officer's feed: supervisors and administrators only.
    Endpoint(
        "POST",
        f"{V1}/feeds",
        _feed_for_ana,
        allowed="sam",
        no_role="bob",
        status=201,
        writes=True,
    ),
    Endpoint("GET", f"{V1}/feeds", _feeds_of_ana, allowed="sam", no_role="bob"),
    Endpoint(
        "DELETE",
        f"{V1}/feeds/{{feed_id}}",
        _anas_feed,
        allowed="sam",
        no_role="bob",
        status=204,
        writes=True,
    ),
)
# Served to anyone: no case data, no credential read.
PUBLIC = (
    ("GET", f"{V1}/openapi.json"),
    ("GET", f"{V1}/docs"),
    ("GET", f"{V1}/docs/oauth2-redirect"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
)
# The calendar feed: its secret address is the credential (see TestCalendarFeed).
FEED = ("GET", "/feeds/{secret}.ics")


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Return every (method, path template) the app answers, HEAD aside."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazy router inclusion: the list is flat
        routes: Any = app.routes
    else:
        routes = iter_route_contexts(app.routes)
    return {
        (method, route.path)
        for route in routes
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD" and not _console(route)
    }


def _console(route: Any) -> bool:
    """The officer console's pages and files: cookie sessions, tried in tests/console."""
    endpoint = getattr(route, "endpoint", None)
    module = getattr(endpoint, "__module__", "") or ""
    return module.startswith("rrm.server.console") or route.path.startswith("/static")


# -- the matrix --------------------------------------------------------------------


def _token_or_jwt(live: LiveServer, name: str) -> str:
    return live.tokens.get(name) or live.jwt(name)


# Column: (expected status or None for the endpoint's own, the credential).
COLUMNS: dict[str, tuple[int | None, Callable[[LiveServer, Endpoint], str | None]]] = {
    "no credential": (401, lambda live, e: None),
    "bad signature": (401, lambda live, e: live.jwt(e.allowed, forged=True)),
    "wrong issuer": (
        401,
        lambda live, e: live.jwt(e.allowed, issuer="https://idp.evil.test/realms/rrm"),
    ),
    "expired": (401, lambda live, e: live.jwt(e.allowed, lifetime=-timedelta(hours=1))),
    "without the role": (403, lambda live, e: _token_or_jwt(live, e.no_role)),
    "unassigned": (None, lambda live, e: _token_or_jwt(live, e.unassigned or "")),
    "allowed, API token": (None, lambda live, e: live.token(e.allowed)),
    "allowed, OIDC": (None, lambda live, e: live.jwt(e.allowed)),
}


def _expected(endpoint: Endpoint, column: str) -> int:
    fixed = COLUMNS[column][0]
    if fixed is not None:
        return fixed
    return endpoint.unassigned_status if column == "unassigned" else endpoint.status


def matrix() -> list[Any]:
    """Return one parameter per endpoint and caller that applies to it."""
    return [
        pytest.param(e, column, id=f"{e.method} {e.route} | {column}")
        for e in ENDPOINTS
        for column in COLUMNS
        if column != "unassigned" or e.unassigned is not None
    ]


def send(live: LiveServer, endpoint: Endpoint, call: Call, credential: str | None):
    """Send *call* to *endpoint* with *credential*."""
    return live.call(
        endpoint.method,
        endpoint.route.format(**call.path),
        credential,
        json=call.json,
        params=call.params,
    )


class TestEveryRoute:
    def test_every_route_is_in_the_matrix(self, live):
        """Every route the app serves has a matrix entry, or is public, or is the feed."""
        listed = {(e.method, e.route) for e in ENDPOINTS} | set(PUBLIC) | {FEED}

        assert served_routes(live.app) == listed


class TestWriteDetection:
    def test_watches_every_table(self, live):
        """The before-and-after comparison covers every table of the schema."""
        watched = live.fingerprint()

        assert {
            "rrm_case",
            "rrm_case_event",
            "rrm_deadline",
            "rrm_case_officer",
            "rrm_alert",
            "rrm_api_token",
            "rrm_calendar_feed",
            "rrm_webhook_subscription",
            "rrm_webhook_delivery",
        } <= set(watched)
        assert watched["rrm_case"] > 0


class TestMatrix:
    @pytest.mark.parametrize(("endpoint", "column"), matrix())
    def test_answers_and_writes_only_when_allowed(self, live, endpoint, column):
        """The caller gets the expected status; a refused request writes nothing."""
        expected = _expected(endpoint, column)
        call = endpoint.build(live, expected < 300)
        credential = COLUMNS[column][1](live, endpoint)
        before = live.fingerprint()

        response = send(live, endpoint, call, credential)

        assert response.status_code == expected, response.text
        if expected >= 400:
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["status"] == expected
        assert (live.fingerprint() != before) == (endpoint.writes and expected < 300)


class TestPublicRoutes:
    @pytest.mark.parametrize(("method", "path"), PUBLIC)
    @pytest.mark.parametrize("forged", [False, True], ids=["anonymous", "forged"])
    def test_answers_anyone_and_writes_nothing(self, live, method, path, forged):
        """Health, readiness, metrics and the API description need no credential."""
        credential = live.jwt("admin", forged=True) if forged else None
        before = live.fingerprint()

        response = live.call(method, path, credential)

        assert response.status_code == 200
        assert live.fingerprint() == before


class TestCalendarFeed:
    def test_a_bearer_token_does_not_open_a_feed(self, live):
        """An unknown feed address is refused whatever bearer token comes with it."""
        before = live.fingerprint()

        response = live.call(
            "GET", f"/feeds/{'0' * 16}.{'A' * 43}.ics", live.token("admin")
        )

        assert response.status_code == 401
        assert live.fingerprint() == before

    def test_the_secret_alone_opens_a_feed(self, live):
        """A live feed address answers without any bearer token."""
        _, secret = creds.create_feed(
            live.credentials, officer_id="ana", created_by="tests", now=live.clock.now()
        )

        response = live.call("GET", f"/feeds/{secret}.ics")

        assert response.status_code == 200


# -- particular refusals -----------------------------------------------------------


def history_length(live: LiveServer, case_id: str) -> int:
    """Return how many history entries the case has."""
    return len(live.engine.history(case_id))


def fire(
    live: LiveServer, case_id: str, credential: str, **body: Any
) -> httpx.Response:
    """Record an event through the API."""
    return live.call("POST", f"{V1}/cases/{case_id}/events", credential, json=body)


class TestRoles:
    def test_refuses_an_event_under_a_role_not_held(self, live):
        """Ana, assigned as ustr, cannot record Mexico's answer as the respondent."""
        case = live.open_case("ROLE")
        before = live.fingerprint()

        response = fire(
            live,
            case.case_id,
            live.token("ana"),
            event="respondent_agrees",
            role="respondent",
        )

        assert response.status_code == 403
        assert response.json()["error"] == "NotPermitted"
        assert live.fingerprint() == before

    @pytest.mark.parametrize("who", ["ana", "admin"])
    def test_refuses_the_system_role(self, live, who):
        """No caller may act as ``system``, the engine's own role."""
        case = live.open_case("SYSTEM")
        before = live.fingerprint()

        response = fire(
            live,
            case.case_id,
            live.token(who),
            event="respondent_answer_lapsed",
            role="system",
        )

        assert response.status_code == 403
        assert "system" in response.json()["detail"]
        assert live.fingerprint() == before

    def test_refuses_an_actor_named_in_the_body(self, live):
        """The actor is the authenticated principal; a body naming one is refused."""
        case = live.open_case("ACTOR")
        before = live.fingerprint()

        response = fire(
            live,
            case.case_id,
            live.token("ana"),
            event="respondent_agrees",
            role="ustr",
            actor="lupe",
        )

        assert response.status_code == 422
        assert live.fingerprint() == before

    def test_records_the_principal_as_actor(self, live):
        """The history names the authenticated principal and its token."""
        case = live.open_case("ACTED")
        token = live.token("lupe")

        fire(live, case.case_id, token, event="respondent_agrees", role="respondent")

        last = live.engine.history(case.case_id)[-1]
        assert (last.actor, last.role, last.via) == (
            "lupe",
            "respondent",
            f"token:{token.split('_')[1]}",
        )


class TestTheIssuesAttack:
    """An unassigned principal tries to take a case over (the issue's "Why")."""

    @pytest.mark.parametrize("role", ["supervisor", "respondent", "ustr"])
    def test_cannot_reassign_officers_or_redirect_mail(self, live, role):
        """Mallory cannot replace the officers or send ana's alerts to herself."""
        case = live.open_case("TAKEOVER")
        before = live.fingerprint()

        response = live.call(
            "POST",
            f"{V1}/cases/{case.case_id}/officers",
            live.token("mallory"),
            json={
                "assign": [
                    {"officer_id": "ana", "role": "ustr", "email": "ana@evil.test"},
                    {"officer_id": "mallory", "role": "respondent"},
                ],
                "remove": ["lupe"],
                "role": role,
            },
        )

        assert response.status_code == 403
        assert live.fingerprint() == before
        assert set(live.engine.get(case.case_id).officers) == set(case.officers)

    def test_cannot_record_an_event(self, live):
        """Mallory, a respondent officer not on this case, cannot record its events."""
        case = live.open_case("TAKEOVER")

        response = fire(
            live,
            case.case_id,
            live.token("mallory"),
            event="respondent_agrees",
            role="respondent",
        )

        assert response.status_code == 403
        assert history_length(live, case.case_id) == 1

    def test_sees_no_event_to_record(self, live):
        """Mallory is offered no event to record on a case she is not on."""
        case = live.open_case("TAKEOVER")

        response = live.call(
            "GET",
            f"{V1}/cases/{case.case_id}/events/available",
            live.token("mallory"),
        )

        assert response.json()["events"] == []

    def test_cannot_export_confidential_petitioners(self, live):
        """A supervisor of another Party, not on the case, cannot export it."""
        case = live.open_case("TAKEOVER")

        response = live.call(
            "GET", f"{V1}/cases/{case.case_id}/export", live.token("sue")
        )

        assert response.status_code == 403
        assert "Confidencial" not in response.text


class TestCredentials:
    def test_refuses_a_revoked_token(self, live):
        """A token works until it is revoked, then it is refused."""
        token = live.new_token("ana")
        works = live.call("GET", f"{V1}/cases", token).status_code

        live.credentials.revoke_token(token.split("_")[1], live.clock.now())

        assert (works, live.call("GET", f"{V1}/cases", token).status_code) == (
            200,
            401,
        )

    def test_refuses_an_expired_token(self, live):
        """A token with a lifetime is refused once the clock passes its expiry."""
        token = live.new_token("ana", expires_in=timedelta(hours=1))
        works = live.call("GET", f"{V1}/cases", token).status_code

        live.clock.advance(timedelta(hours=1, seconds=1))

        assert (works, live.call("GET", f"{V1}/cases", token).status_code) == (
            200,
            401,
        )

    @pytest.mark.parametrize(
        "header",
        ["Basic YW5hOnNlY3JldA==", "Bearer", "Bearer rrm_0123456789abcdef_short"],
    )
    def test_refuses_malformed_credentials(self, live, header):
        """Another scheme, an empty bearer or a malformed token is 401 with a challenge."""
        response = live.call("GET", f"{V1}/cases", headers={"Authorization": header})

        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_refuses_another_audience(self, live):
        """A JWT the provider issued for another service is refused."""
        import jwt

        claims = jwt.decode(live.jwt("ana"), options={"verify_signature": False})
        other = jwt.encode(
            {**claims, "aud": "another-service"},
            live.idp.key,
            algorithm="RS256",
            headers={"kid": "rrm-test-key-1"},
        )

        assert live.call("GET", f"{V1}/cases", other).status_code == 401

    def test_refuses_an_unsigned_jwt(self, live):
        """A JWT with ``alg: none`` is refused."""
        import jwt

        claims = jwt.decode(live.jwt("admin"), options={"verify_signature": False})
        unsigned = jwt.encode(claims, None, algorithm="none")

        assert live.call("GET", f"{V1}/cases", unsigned).status_code == 401


class TestOidcRoles:
    def test_maps_provider_roles_through_the_role_map(self, live):
        """Lupe's provider role ``rrm-mexico`` makes her the respondent."""
        case = live.open_case("OIDC")

        response = fire(
            live,
            case.case_id,
            live.jwt("lupe", provider_roles=["rrm-mexico"]),
            event="respondent_agrees",
        )

        assert response.status_code == 200
        last = live.engine.history(case.case_id)[-1]
        assert (last.actor, last.role, last.via) == (
            "lupe",
            "respondent",
            f"oidc:{ISSUER}",
        )

    def test_ignores_provider_roles_outside_the_map(self, live):
        """A role claim the map does not name gives no role at all."""
        response = live.call(
            "GET", f"{V1}/cases", live.jwt("lupe", provider_roles=["respondent"])
        )

        assert response.status_code == 403


class TestAgencyGrant:
    @pytest.mark.parametrize("kind", ["token", "oidc"])
    def test_lets_an_unassigned_ustr_officer_act(self, live, kind):
        """Gus of USTR records an event on a U.S. case he is not assigned to."""
        case = live.open_case("GRANT")
        credential = live.token("gus") if kind == "token" else live.jwt("gus")

        response = fire(
            live, case.case_id, credential, event="respondent_agrees", role="ustr"
        )

        assert response.status_code == 200
        assert live.engine.history(case.case_id)[-1].actor == "gus"

    def test_does_not_cover_another_agency(self, live):
        """Bob holds ustr too but is of another agency, so the grant does not cover him."""
        case = live.open_case("GRANT")

        response = fire(
            live,
            case.case_id,
            live.token("bob"),
            event="respondent_agrees",
            role="ustr",
        )

        assert response.status_code == 403

    def test_does_not_grant_a_supervisors_acts(self, live):
        """The grant covers the role ustr, not the assignment of officers."""
        case = live.open_case("GRANT")

        response = live.call(
            "POST",
            f"{V1}/cases/{case.case_id}/officers",
            live.token("gus"),
            json={"assign": [{"officer_id": "gus", "role": "ustr"}], "role": "ustr"},
        )

        assert response.status_code == 403


class TestAcknowledgement:
    def test_a_supervisor_not_on_the_case_cannot_acknowledge(self, live):
        """Sue supervises other cases; dana's alert is not hers to acknowledge."""
        alert_id = live.alert_pool["dana"][0]
        before = live.fingerprint()

        response = live.call(
            "POST", f"{V1}/alerts/{alert_id}/acknowledge", live.token("sue")
        )

        assert response.status_code == 403
        assert live.fingerprint() == before
