"""Bounds on the JSON that people and programs hand RRM: nesting, size, duplicates.

Every JSON text RRM parses from a user (``--payload``, ``--set``, ``--file``, import
files, the console's import upload, the case service's request bodies) goes through
:func:`loads`, and every payload a host passes as Python objects through
:func:`check_tree`. Both check nesting *without recursion*, before anything that
would recurse (``json.loads`` recurses once per level and fails with
``RecursionError`` a few thousand levels down), and refuse with ``InvalidInput``
naming the input, the limit and what was found. Nothing is written.

The limits (documented in the README, "Input limits"):

* an event payload: nested at most :data:`MAX_PAYLOAD_DEPTH` levels (the payload
  object itself is level 1) and at most :data:`MAX_PAYLOAD_BYTES` as compact UTF-8
  JSON, the form the history hash covers;
* a document (an import file, a request body): nested at most
  :data:`MAX_DOCUMENT_DEPTH` levels, so a payload at its own limit still fits in
  every envelope RRM defines (the import body's list, the document, its history,
  an entry: four levels), and at most :data:`MAX_DOCUMENT_BYTES` per file;
* a request body of the case service: at most :data:`MAX_BODY_BYTES`, or
  :data:`MAX_IMPORT_BODY_BYTES` for ``POST /api/v1/imports``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from rrm.errors import InvalidInput

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCUMENT_DEPTH",
    "MAX_IMPORT_BODY_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_DEPTH",
    "NotJSON",
    "check_depth",
    "check_tree",
    "describe_bytes",
    "loads",
    "nesting",
    "too_large",
]

KIB = 1024
MIB = 1024 * KIB

#: Levels of objects and lists in one event payload (the payload itself is 1).
MAX_PAYLOAD_DEPTH = 32
#: Bytes of one event payload as compact UTF-8 JSON (what the history hash covers).
MAX_PAYLOAD_BYTES = 64 * KIB
#: Levels in a whole document or request body: a payload at its limit plus the
#: deepest envelope (import body list, document, history list, entry), with room.
MAX_DOCUMENT_DEPTH = 40
#: Bytes of one import document (file), as read.
MAX_DOCUMENT_BYTES = 16 * MIB
#: Bytes of one request body of the case service.
MAX_BODY_BYTES = 1 * MIB
#: Bytes of the body of ``POST /api/v1/imports`` (a list of documents).
MAX_IMPORT_BODY_BYTES = 16 * MIB


class NotJSON(InvalidInput):
    """Internal: the text is not JSON at all (a syntax error, not a limit).

    Callers that accept either JSON or plain text (``--set key=value``) take the
    text; everyone else reports it like any ``InvalidInput``.
    """


def describe_bytes(size: int) -> str:
    """Return a byte count as an officer reads it: ``65,536 bytes (64 KiB)``."""
    if size >= MIB and size % MIB == 0:
        return f"{size:,} bytes ({size // MIB} MiB)"
    if size >= KIB and size % KIB == 0:
        return f"{size:,} bytes ({size // KIB} KiB)"
    return f"{size:,} bytes"


def _subject(what: str) -> str:
    return f"{what} is" if what else "is"


def too_large(field: str, size: int, limit: int, what: str = "") -> InvalidInput:
    """Return the refusal of an input of *size* bytes over *limit*."""
    return InvalidInput(
        field,
        f"{_subject(what)} {size:,} bytes; at most {describe_bytes(limit)} are "
        "accepted",
    )


def _too_deep(field: str, found: int | None, limit: int, what: str) -> InvalidInput:
    depth = f"{found:,} levels deep" if found else f"more than {limit} levels deep"
    return InvalidInput(
        field,
        f"{_subject(what)} nested {depth}; at most {limit} levels of objects and "
        "lists are accepted",
    )


# A JSON string, escapes included; an unterminated one runs to the end of the
# text. Every alternative can always go on, so the match never backtracks and the
# scan stays linear whatever the text holds.
_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S]?[^"\\]*)*(?:"|\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting(text: str) -> int:
    """Return how deeply *text* nests ``[``/``{`` outside JSON strings (no recursion).

    The parser would fail on malformed text anyway; the count only needs to be
    right for text that parses.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _no_duplicates(field: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    shown = key if len(key) <= 80 else key[:77] + "..."  # noqa: PLR2004
                    raise InvalidInput(
                        field,
                        f"the key {shown!r} appears twice in one object; give each "
                        "key once",
                    )
                seen.add(key)
        return found

    return hook


def loads(
    text: str | bytes,
    *,
    field: str,
    what: str = "",
    max_depth: int = MAX_DOCUMENT_DEPTH,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Any:
    """Parse JSON from a user within the limits; refuse duplicate keys.

    Args:
        text: The JSON text (bytes are read as UTF-8).
        field: What to name in an error (an option, a file, ``body``).
        what: What to call the input in the message (``the file``), if the
            field does not say it.
        max_depth: Levels of objects and lists allowed.
        max_bytes: Bytes allowed (UTF-8).

    Raises:
        InvalidInput: Too large, too deep, or a key given twice in one object.
        NotJSON: Not JSON text (an ``InvalidInput`` too).
    """
    size = len(text) if isinstance(text, bytes) else _utf8_size(text)
    if size > max_bytes:
        raise too_large(field, size, max_bytes, what)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotJSON(
                field, f"{_subject(what)} not UTF-8 text ({exc.reason})"
            ) from None
    # No text with at most max_depth opening brackets can nest deeper: most
    # payloads and bodies skip the scan.
    opening = text.count("[") + text.count("{")
    depth = nesting(text) if opening > max_depth else 0
    if depth > max_depth:
        raise _too_deep(field, depth, max_depth, what)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates(field))
    except json.JSONDecodeError as exc:
        raise NotJSON(
            field,
            f"{_subject(what)} not valid JSON ({exc.msg}, line {exc.lineno} "
            f"column {exc.colno})",
        ) from None
    except RecursionError:  # pragma: no cover - the scan above refuses it first
        raise _too_deep(field, None, max_depth, what) from None


def _utf8_size(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def check_depth(field: str, value: object, *, max_depth: int, what: str = "") -> None:
    """Refuse Python data nested deeper than *max_depth* (iteratively; no recursion).

    Counts mappings, lists and tuples, one level at a time, each object once per
    level: a structure that contains itself is refused (it is infinitely deep), and
    one that shares a part many times is not walked once per path.
    """
    level: list[object] = [value]
    depth = 0
    while True:
        seen: set[int] = set()
        containers: list[Mapping[Any, Any] | list[Any] | tuple[Any, ...]] = []
        for item in level:
            if isinstance(item, Mapping | list | tuple) and id(item) not in seen:
                seen.add(id(item))
                containers.append(item)
        if not containers:
            return
        depth += 1
        if depth > max_depth:
            raise _too_deep(field, None, max_depth, what)
        level = []
        for c in containers:
            level.extend(c.values() if isinstance(c, Mapping) else c)


def _where(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top)"


def check_tree(field: str, value: object, *, max_depth: int) -> None:
    r"""Check every key and string of JSON-like data, iteratively.

    Refuses nesting past *max_depth*, keys that are not text, and any key or string
    holding a NUL character (which the JSON encoder would hide as ``\u0000``).
    The message names the place inside the data, never its text.
    """
    check_depth(field, value, max_depth=max_depth)
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, ())]
    visited: set[int] = set()
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidInput(
                    field, f"the text at {_where(path)} contains a NUL character"
                )
            continue
        if not isinstance(item, Mapping | list | tuple) or id(item) in visited:
            continue
        visited.add(id(item))
        if isinstance(item, Mapping):
            for key, child in item.items():
                _check_key(field, key, path)
                stack.append((child, (*path, key)))
        else:
            stack.extend((child, (*path, i)) for i, child in enumerate(item))


def _check_key(field: str, key: object, path: tuple[str | int, ...]) -> None:
    if not isinstance(key, str):
        raise InvalidInput(
            field,
            f"every key must be text; {_where(path)} has a key of type "
            f"{type(key).__name__}",
        )
    if "\x00" in key:
        raise InvalidInput(
            field, f"a key inside {_where(path)} contains a NUL character"
        )
