"""A real OpenID Connect provider for the console's tests, on loopback.

The officer console signs officers in with the authorization code flow and PKCE
(RFC 6749, RFC 7636, OpenID Connect Core). This provider speaks that flow over
HTTP from a background thread (stdlib ``ThreadingHTTPServer``), so the console's
OIDC client is exercised end to end, by httpx or by a browser:

- ``GET /.well-known/openid-configuration``: discovery; the issuer is the base URL.
- ``GET /authorize``: checks the client, the redirect URI (one registered, exactly),
  ``response_type=code``, the ``openid`` scope and a PKCE ``S256`` challenge (400
  otherwise), then approves at once as ``provider.user`` (403 when it is None) and
  redirects to the redirect URI with a one-time ``code`` and the ``state`` as sent.
- ``POST /token``: the client authenticates with ``client_secret_post`` or HTTP
  Basic (401 ``invalid_client`` otherwise); the code must be known, unused, less than
  ten minutes old, issued to this client for this redirect URI, and the verifier
  must hash to the challenge, or the answer is 400 ``invalid_grant``. A code is
  spent by its first redemption, right or wrong. The answer holds an access token
  and an RS256 ID token (``kid`` in the header) with ``iss``, ``aud``, ``azp``,
  ``sub``, ``iat``, ``exp`` (an hour), ``auth_time``, ``at_hash``, the ``nonce`` if
  one was sent, and the user's claims as they were at authorization.
- ``GET /userinfo``: the user's claims, for a bearer access token.
- ``GET /jwks.json``: the public key.

Every request is recorded in ``provider.requests`` (method, path, parameters,
headers), so a test can check that PKCE was used or that a code was refused the
second time. The provider's time is the ``now`` callable it is given (a
``FakeClock``'s ``now`` in the suite): ``iat``/``exp`` and the codes' age follow it,
never the wall clock. A relying party that checks ``exp`` against the wall clock
will therefore refuse tokens minted at the suite's 2025 start.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import functools
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

KID = "rrm-console-test-key-1"
TOKEN_LIFETIME = timedelta(hours=1)
CODE_LIFETIME = timedelta(minutes=10)
SCOPES = ("openid", "profile", "email", "roles")
# RFC 7636 section 4.1/4.2: 43 to 128 characters of the unreserved set.
_PKCE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_MAX_BODY = 64 * 1024


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _key() -> rsa.RSAPrivateKey:
    """The signing key of providers not given one (made once: RSA is slow to make)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def s256(verifier: str) -> str:
    """Return the PKCE S256 challenge of *verifier*: BASE64URL(SHA256(verifier))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the provider received.

    *params* holds the query string's parameters for a GET and the form's for a
    POST (the last value when a name repeats); *headers* has lower-case names.
    """

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class _Grant:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str
    claims: dict[str, Any]
    issued_at: datetime


@dataclass
class OidcProvider:
    """A running provider: where it is, whom it knows, and what it was asked.

    Set ``user`` (a dict of claims with at least ``sub``) before a sign-in; the
    provider approves every authorization request as that user. ``requests`` lists
    every request in arrival order; ``codes_used`` the codes presented at the token
    endpoint, each once, in order.
    """

    issuer: str
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    now: Callable[[], datetime]
    key: rsa.RSAPrivateKey
    kid: str = KID
    user: dict[str, Any] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    codes_used: list[str] = field(default_factory=list)
    _codes: dict[str, _Grant] = field(default_factory=dict, repr=False)
    _access: dict[str, tuple[dict[str, Any], datetime]] = field(
        default_factory=dict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def url(self) -> str:
        """The provider's base URL (the issuer)."""
        return self.issuer

    @property
    def discovery_url(self) -> str:
        """The URL of the discovery document."""
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        """The authorization endpoint's URL."""
        return f"{self.issuer}/authorize"

    @property
    def token_endpoint(self) -> str:
        """The token endpoint's URL."""
        return f"{self.issuer}/token"

    @property
    def userinfo_endpoint(self) -> str:
        """The userinfo endpoint's URL."""
        return f"{self.issuer}/userinfo"

    @property
    def jwks_uri(self) -> str:
        """The JWKS URL."""
        return f"{self.issuer}/jwks.json"

    def discovery(self) -> dict[str, Any]:
        """Return the discovery document."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "userinfo_endpoint": self.userinfo_endpoint,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "scopes_supported": list(SCOPES),
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "claims_supported": [
                "iss",
                "aud",
                "sub",
                "iat",
                "exp",
                "auth_time",
                "nonce",
                "name",
                "email",
                "realm_access",
                "agency",
            ],
        }

    def jwks(self) -> dict[str, Any]:
        """Return the JSON Web Key Set with the provider's public key."""
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Return a snapshot of the recorded requests to *path*."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- the endpoints' logic (the handler does the HTTP) -------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _authorization_error(self, params: dict[str, str]) -> tuple[str, str] | None:
        """Return what is wrong with an authorization request (error, why), if any."""
        if params.get("client_id") != self.client_id:
            return "invalid_request", "unknown client_id"
        if params.get("redirect_uri", "") not in self.redirect_uris:
            return "invalid_request", "redirect_uri is not registered"
        if params.get("response_type") != "code":
            return "unsupported_response_type", "response_type=code only"
        if "openid" not in params.get("scope", "").split():
            return "invalid_scope", "the openid scope is required"
        if params.get("code_challenge_method") != "S256" or not _PKCE.fullmatch(
            params.get("code_challenge", "")
        ):
            return "invalid_request", "PKCE with S256 is required"
        return None

    def _authorize(self, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        # Nothing is redirected until the client and its redirect URI are known good;
        # every refusal here is a 400 to the browser (RFC 6749 4.1.2.1 would send
        # the last three back to the client; a test provider need not).
        wrong = self._authorization_error(params)
        if wrong is not None:
            return _error(400, *wrong)
        with self._lock:
            user = copy.deepcopy(self.user)
        if user is None:
            return 403, {"Content-Type": "text/plain; charset=utf-8"}, b"no user"
        code = secrets.token_urlsafe(32)
        grant = _Grant(
            client_id=self.client_id,
            redirect_uri=params["redirect_uri"],
            code_challenge=params["code_challenge"],
            nonce=params.get("nonce"),
            scope=params["scope"],
            claims=user,
            issued_at=self.now(),
        )
        with self._lock:
            self._codes[code] = grant
        answer = {"code": code}
        if "state" in params:
            answer["state"] = params["state"]
        return 302, {"Location": _with_query(params["redirect_uri"], answer)}, b""

    def _client(self, params: dict[str, str], authorization: str | None) -> bool:
        """Tell whether the request authenticates the registered client."""
        if authorization is not None:
            if "client_secret" in params:
                return False  # RFC 6749 2.3: one method per request
            scheme, _, blob = authorization.partition(" ")
            if scheme.lower() != "basic":
                return False
            try:
                pair = base64.b64decode(blob, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, sep, password = pair.partition(":")
            if not sep:
                return False
            client_id, secret = unquote(user), unquote(password)
            if params.get("client_id", client_id) != client_id:
                return False
        else:
            client_id = params.get("client_id", "")
            secret = params.get("client_secret", "")
        return hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(
            secret, self.client_secret
        )

    def _token(
        self, params: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        if not self._client(params, authorization):
            status, headers, body = _error(401, "invalid_client", "bad client")
            if authorization is not None:
                headers["WWW-Authenticate"] = 'Basic realm="rrm-test-idp"'
            return status, headers, body
        if params.get("grant_type") != "authorization_code":
            return _error(400, "unsupported_grant_type", "authorization_code only")
        code = params.get("code", "")
        now = self.now()
        with self._lock:
            grant = self._codes.pop(code, None)
            if grant is not None:
                self.codes_used.append(code)
        verifier = params.get("code_verifier", "")
        if (
            grant is None
            or grant.client_id != self.client_id
            or params.get("redirect_uri") != grant.redirect_uri
            or now >= grant.issued_at + CODE_LIFETIME
            or not _PKCE.fullmatch(verifier)
            or not hmac.compare_digest(s256(verifier), grant.code_challenge)
        ):
            return _error(400, "invalid_grant", "the code cannot be redeemed")
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._access[access_token] = (grant.claims, now + TOKEN_LIFETIME)
        half = hashlib.sha256(access_token.encode("ascii")).digest()[:16]
        claims = {
            **grant.claims,
            "iss": self.issuer,
            "aud": self.client_id,
            "azp": self.client_id,
            "iat": int(now.timestamp()),
            "exp": int((now + TOKEN_LIFETIME).timestamp()),
            "auth_time": int(grant.issued_at.timestamp()),
            "at_hash": base64.urlsafe_b64encode(half).rstrip(b"=").decode("ascii"),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        id_token = jwt.encode(
            claims, self.key, algorithm="RS256", headers={"kid": self.kid}
        )
        return _json(
            200,
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": int(TOKEN_LIFETIME.total_seconds()),
                "scope": grant.scope,
                "id_token": id_token,
            },
        )

    def _userinfo(self, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            found = self._access.get(token) if scheme.lower() == "bearer" else None
        if found is None or self.now() >= found[1]:
            status, headers, body = _error(401, "invalid_token", "bad access token")
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return status, headers, body
        return _json(200, found[0])


def _json(status: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    headers = {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }
    return status, headers, json.dumps(payload).encode()


def _error(
    status: int, error: str, description: str
) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": error, "error_description": description})


def _with_query(url: str, params: dict[str, str]) -> str:
    """Return *url* with *params* added to its query string."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def _pairs(text: str) -> list[tuple[str, str]] | None:
    """Parse a query string or form body; None when a parameter repeats."""
    pairs = parse_qsl(text, keep_blank_values=True)
    names = [name for name, _ in pairs]
    return None if len(set(names)) != len(names) else pairs


def _handler(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            self._record(parts.path, parts.query)
            pairs = _pairs(parts.query)
            if pairs is None:
                self._send(*_error(400, "invalid_request", "repeated parameter"))
            elif parts.path == "/.well-known/openid-configuration":
                self._send(*_json(200, provider.discovery()))
            elif parts.path == "/jwks.json":
                self._send(*_json(200, provider.jwks()))
            elif parts.path == "/authorize":
                self._send(*provider._authorize(dict(pairs)))
            elif parts.path == "/userinfo":
                self._send(*provider._userinfo(self.headers.get("Authorization")))
            else:
                self._send(*_error(404, "not_found", parts.path))

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._record(parts.path, "")
                self._send(*_error(413, "invalid_request", "body too large"))
                return
            body = self.rfile.read(length).decode("utf-8", "replace")
            form = self.headers.get_content_type() == (
                "application/x-www-form-urlencoded"
            )
            self._record(parts.path, body if form else "")
            pairs = _pairs(body) if form else []
            if parts.path != "/token":
                self._send(*_error(404, "not_found", parts.path))
            elif not form:
                self._send(*_error(400, "invalid_request", "send a form"))
            elif pairs is None:
                self._send(*_error(400, "invalid_request", "repeated parameter"))
            else:
                self._send(
                    *provider._token(dict(pairs), self.headers.get("Authorization"))
                )

        def _record(self, path: str, query: str) -> None:
            provider._record(
                RecordedRequest(
                    method=self.command,
                    path=path,
                    params=dict(parse_qsl(query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                )
            )

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Keep the test output quiet."""

    return Handler


@contextlib.contextmanager
def start_provider(
    *,
    client_id: str,
    client_secret: str,
    redirect_uris: tuple[str, ...] | list[str],
    now: Callable[[], datetime] = _wall_clock,
    user: dict[str, Any] | None = None,
    key: rsa.RSAPrivateKey | None = None,
) -> Iterator[OidcProvider]:
    """Run a provider on 127.0.0.1 (a free port) for the ``with`` block.

    *redirect_uris* are the client's registered redirect URIs, compared exactly.
    *now* is the provider's only clock; pass a ``FakeClock``'s ``now``. *key* signs
    the ID tokens (by default one RSA key made once per test process).
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    provider = OidcProvider(
        issuer=f"http://127.0.0.1:{port}",
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=tuple(redirect_uris),
        now=now,
        key=key or _key(),
        user=user,
    )
    # The issuer names the port, so the handler comes once the socket is bound.
    server.RequestHandlerClass = _handler(provider)
    # A short poll so that shutdown() returns promptly at teardown.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
