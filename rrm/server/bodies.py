"""Request bodies of the API, bounded once for every route: size, nesting, duplicates.

A plain ASGI middleware in front of the API's routes reads each request body
(counting its bytes as they arrive), and refuses, as RFC 9457 problem details:

* a body larger than ``inputs.MAX_BODY_BYTES`` (``inputs.MAX_IMPORT_BODY_BYTES``
  for ``POST /api/v1/imports``) with 413, before reading past the limit when
  ``Content-Length`` says so;
* JSON nested deeper than ``inputs.MAX_DOCUMENT_DEPTH`` levels, or with a key
  given twice in one object, with 422 naming the limit or the key.

A body that is not JSON at all passes on unchanged: the route's own parsing answers
it (400), as before. The body read here is handed on to the route, so it is read
from the client once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rrm import errors
from rrm.server.problems import problem
from rrm.service import inputs

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimits"]

# Of a refused body, read at most this much more (and discard it) before
# answering, so a client still sending can read the 413; past it, the
# connection is closed.
_DRAIN = 4 * inputs.MIB
_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


class BodyLimits:
    """Bound the request bodies under *prefix*; the import route gets its own size."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self._prefix = prefix
        self._imports = f"{prefix}/imports"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read and check an API body, then hand it to the app (or refuse it)."""
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] in {"GET", "HEAD", "OPTIONS"}
            or not path.startswith(self._prefix)
        ):
            await self.app(scope, receive, send)
            return
        limit = (
            inputs.MAX_IMPORT_BODY_BYTES
            if path.rstrip("/") == self._imports
            else inputs.MAX_BODY_BYTES
        )
        headers = dict(scope.get("headers") or ())
        declared = _length(headers.get(b"content-length"))
        if declared is not None and declared > limit:
            # Too large by its own account; read a little of it so the client
            # sees the answer, unless it is very large.
            if declared <= limit + _DRAIN:
                await _discard(receive, declared)
            await _too_large(scope, send, declared, limit)
            return
        body, more = await _read(receive, limit)
        if more:
            await _discard(receive, _DRAIN)
            await _too_large(scope, send, None, limit)
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        if body and not content_type.startswith(_FORMS):
            refusal = _check_json(body)
            if refusal is not None:
                await _refuse(scope, send, 422, refusal)
                return
        await self.app(scope, _replay(body, receive), send)


def _length(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """Read the body up to *limit* bytes; say whether more was sent."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # The client went away: the route will find out for itself.
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


async def _discard(receive: Receive, budget: int) -> None:
    """Read and drop what the client is still sending, up to *budget* bytes."""
    seen = 0
    while seen <= budget:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the route the body already read, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _check_json(body: bytes) -> errors.InvalidInput | None:
    try:
        inputs.loads(
            body,
            field="body",
            what="the request body",
            max_depth=inputs.MAX_DOCUMENT_DEPTH,
            max_bytes=len(body),
        )
    except inputs.NotJSON:
        return None  # the route's parser answers it, as for any body
    except errors.InvalidInput as exc:
        return exc
    return None


async def _too_large(scope: Scope, send: Send, size: int | None, limit: int) -> None:
    found = f"of {size:,} bytes " if size is not None else ""
    refusal = errors.InvalidInput(
        "body",
        f"the request body {found}is larger than {inputs.describe_bytes(limit)}, "
        "the most this request may send",
    )
    await _refuse(scope, send, 413, refusal, close=True)


async def _refuse(
    scope: Scope,
    send: Send,
    status: int,
    exc: errors.InvalidInput,
    *,
    close: bool = False,
) -> None:
    response = problem(
        status,
        "Content too large" if status == 413 else "Invalid input",  # noqa: PLR2004
        exc.message,
        instance=scope.get("path", ""),
        kind="ContentTooLarge" if status == 413 else "InvalidInput",  # noqa: PLR2004
        extra={
            "error": "InvalidInput",
            "field": exc.field,
            "errors": [{"field": exc.field, "reason": exc.reason}],
        },
        headers={"Connection": "close"} if close else None,
    )

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
