"""The console suite's OpenID provider, driven directly with httpx.

Its answers are checked the way a relying party checks them: discovery, the
authorization redirect, the code exchange with PKCE, and the ID token verified with
PyJWT against the provider's JWKS, at the provider's (fake) time.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from rrm.testing import FakeClock

from .oidc_provider import OidcProvider, s256, start_provider

if TYPE_CHECKING:
    from collections.abc import Iterator

START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
CLIENT_ID = "rrm-console"
CLIENT_SECRET = "console-secret"
REDIRECT = "http://127.0.0.1:9/auth/callback"
ANA = {
    "sub": "ana",
    "name": "Ana",
    "email": "ana@ustr.example",
    "realm_access": {"roles": ["rrm-ustr"]},
    "agency": ["OTLA"],
}


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture(name="idp")
def _idp(clock: FakeClock) -> Iterator[OidcProvider]:
    with start_provider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[REDIRECT, "http://127.0.0.1:9/other?x=1"],
        now=clock.now,
    ) as provider:
        provider.user = ANA
        yield provider


@pytest.fixture(name="http")
def _http(idp: OidcProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=idp.url, follow_redirects=False, timeout=10) as client:
        yield client


def authorize(
    http: httpx.Client, verifier: str, **changes: str | None
) -> httpx.Response:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "st/ate=1&x",
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    params.update(changes)
    return http.get("/authorize", params={k: v for k, v in params.items() if v})


def code_of(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return query["code"][0]


def exchange(
    http: httpx.Client,
    code: str,
    verifier: str,
    *,
    basic: bool = False,
    redirect_uri: str = REDIRECT,
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    if basic:
        return http.post("/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET))
    return http.post(
        "/token",
        data={**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )


def verify(idp: OidcProvider, id_token: str, now: datetime) -> dict[str, Any]:
    """Verify an ID token as a relying party would, by the JWKS, at *now*."""
    jwks = jwt.PyJWKSet.from_dict(httpx.get(idp.jwks_uri).json())
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key,
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=idp.issuer,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iat"] <= now.timestamp() < claims["exp"]
    return claims


def test_discovery_names_the_endpoints(idp: OidcProvider, http: httpx.Client) -> None:
    doc = http.get("/.well-known/openid-configuration").json()
    assert doc["issuer"] == idp.issuer == idp.url
    assert idp.issuer.startswith("http://127.0.0.1:")
    assert doc["authorization_endpoint"] == f"{idp.issuer}/authorize"
    assert doc["token_endpoint"] == f"{idp.issuer}/token"
    assert doc["jwks_uri"] == f"{idp.issuer}/jwks.json"
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["subject_types_supported"] == ["public"]
    assert "openid" in doc["scopes_supported"]
    keys = http.get("/jwks.json").json()["keys"]
    assert [(k["kid"], k["kty"], k["alg"]) for k in keys] == [(idp.kid, "RSA", "RS256")]


@pytest.mark.parametrize(
    "changes",
    [
        {"code_challenge": None},
        {"code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"code_challenge": "too-short"},
        {"response_type": "token"},
        {"client_id": "someone-else"},
        {"redirect_uri": "http://127.0.0.1:9/auth/callback/"},
        {"redirect_uri": "https://evil.example/cb"},
        {"scope": "profile"},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_authorize_refuses_a_bad_request_without_redirecting(
    idp: OidcProvider, http: httpx.Client, changes: dict[str, str | None]
) -> None:
    response = authorize(http, secrets.token_urlsafe(32), **changes)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.json()["error"]
    assert idp.codes_used == []


def test_authorize_without_a_user_is_forbidden(
    idp: OidcProvider, http: httpx.Client
) -> None:
    idp.user = None
    response = authorize(http, secrets.token_urlsafe(32))
    assert response.status_code == 403
    assert response.text == "no user"


def test_the_code_flow_with_pkce(
    idp: OidcProvider, http: httpx.Client, clock: FakeClock
) -> None:
    verifier = secrets.token_urlsafe(48)
    response = authorize(http, verifier)
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st/ate=1&x"]
    code = code_of(response)
    # What the user was at authorization is what the token says, not what follows.
    idp.user = {"sub": "bob"}
    clock.advance(timedelta(minutes=3))

    answer = exchange(http, code, verifier)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"]
    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] == idp.kid

    claims = verify(idp, body["id_token"], clock.now())
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == CLIENT_ID
    assert claims["sub"] == "ana"
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["iat"] == int(clock.now().timestamp())
    assert claims["exp"] == int((clock.now() + timedelta(hours=1)).timestamp())
    assert claims["realm_access"] == {"roles": ["rrm-ustr"]}
    assert claims["agency"] == ["OTLA"]
    assert claims["name"] == "Ana"
    assert idp.codes_used == [code]

    userinfo = http.get(
        "/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert userinfo.json()["sub"] == "ana"

    # The provider saw PKCE on the way in and the verifier on the way out.
    (auth,) = idp.requests_to("/authorize")
    assert auth.params["code_challenge_method"] == "S256"
    assert auth.params["code_challenge"] == s256(verifier)
    (token,) = idp.requests_to("/token")
    assert token.method == "POST"
    assert token.params["code_verifier"] == verifier


def test_http_basic_client_authentication(
    idp: OidcProvider, http: httpx.Client, clock: FakeClock
) -> None:
    verifier = secrets.token_urlsafe(32)
    code = code_of(authorize(http, verifier, nonce=None))
    answer = exchange(http, code, verifier, basic=True)
    assert answer.status_code == 200, answer.text
    claims = verify(idp, answer.json()["id_token"], clock.now())
    assert "nonce" not in claims
    assert idp.requests_to("/token")[0].headers["authorization"].startswith("Basic ")


def test_a_redirect_uri_with_a_query_keeps_it(
    idp: OidcProvider, http: httpx.Client
) -> None:
    other = "http://127.0.0.1:9/other?x=1"
    response = authorize(http, secrets.token_urlsafe(32), redirect_uri=other)
    location = response.headers["location"]
    assert location.startswith(other + "&code=")


def test_a_wrong_verifier_is_refused(idp: OidcProvider, http: httpx.Client) -> None:
    verifier = secrets.token_urlsafe(32)
    code = code_of(authorize(http, verifier))
    answer = exchange(http, code, secrets.token_urlsafe(32))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    # The failed attempt spent the code: the right verifier comes too late.
    assert exchange(http, code, verifier).json()["error"] == "invalid_grant"


def test_a_missing_verifier_is_refused(idp: OidcProvider, http: httpx.Client) -> None:
    verifier = secrets.token_urlsafe(32)
    code = code_of(authorize(http, verifier))
    answer = exchange(http, code, "")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_a_code_is_good_once(idp: OidcProvider, http: httpx.Client) -> None:
    verifier = secrets.token_urlsafe(32)
    code = code_of(authorize(http, verifier))
    assert exchange(http, code, verifier).status_code == 200
    again = exchange(http, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert [r.params["code"] for r in idp.requests_to("/token")] == [code, code]
    assert idp.codes_used == [code]


def test_the_redirect_uri_must_match_the_authorization(
    idp: OidcProvider, http: httpx.Client
) -> None:
    verifier = secrets.token_urlsafe(32)
    code = code_of(authorize(http, verifier))
    answer = exchange(http, code, verifier, redirect_uri="http://127.0.0.1:9/other?x=1")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_an_unknown_code_is_refused(http: httpx.Client) -> None:
    answer = exchange(http, "made-up", secrets.token_urlsafe(32))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_a_code_expires_by_the_providers_clock(
    http: httpx.Client, clock: FakeClock
) -> None:
    verifier = secrets.token_urlsafe(32)
    code = code_of(authorize(http, verifier))
    clock.advance(timedelta(minutes=10))
    assert exchange(http, code, verifier).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_id": CLIENT_ID, "client_secret": "wrong"},
        {"client_id": "someone-else", "client_secret": CLIENT_SECRET},
        {"client_id": CLIENT_ID},
    ],
    ids=["wrong-secret", "wrong-client", "no-secret"],
)
def test_the_client_must_authenticate(
    idp: OidcProvider, http: httpx.Client, credentials: dict[str, str]
) -> None:
    verifier = secrets.token_urlsafe(32)
    code = code_of(authorize(http, verifier))
    answer = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            **credentials,
        },
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    # A stranger's attempt does not spend the client's code.
    assert exchange(http, code, verifier).status_code == 200


def test_wrong_basic_credentials_are_refused(http: httpx.Client) -> None:
    verifier = secrets.token_urlsafe(32)
    code = code_of(authorize(http, verifier))
    blob = base64.b64encode(f"{CLIENT_ID}:wrong".encode()).decode()
    answer = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        headers={"Authorization": f"Basic {blob}"},
    )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")


def test_the_token_endpoint_takes_a_form(http: httpx.Client) -> None:
    answer = http.post("/token", json={"grant_type": "authorization_code"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


def test_every_request_is_recorded(idp: OidcProvider, http: httpx.Client) -> None:
    http.get("/.well-known/openid-configuration")
    http.get("/nowhere", params={"a": "1"})
    assert [(r.method, r.path, r.params) for r in idp.requests] == [
        ("GET", "/.well-known/openid-configuration", {}),
        ("GET", "/nowhere", {"a": "1"}),
    ]
