"""Posts webhook messages over HTTP, signed per the Standard Webhooks specification.

The only module that imports ``httpx`` and ``standardwebhooks``. Each message is
one POST of the JSON body with ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` headers; redirects are not followed (a moved endpoint is a
failure an administrator must see), and every phase of the request has a
timeout. Errors name the failure's type only, never the URL, which may carry a
token in its query string.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final, Self, final

import httpx
from standardwebhooks import Webhook

from rrm.errors import NotificationError

if TYPE_CHECKING:
    import ssl
    from datetime import datetime
    from types import TracebackType

__all__ = ["HttpWebhookSender"]

# An answer's body is read only to keep the connection reusable, up to this size.
_MAX_ANSWER: Final = 64 * 1024


@final
class HttpWebhookSender:
    """Sends signed webhook messages with one pooled ``httpx`` client.

    Safe to share between threads. Close it (or use it as a context manager)
    when done; a closed sender opens a new client on its next send.

    Args:
        timeout: Seconds allowed to connect, and to wait for each read or write.
        user_agent: The ``user-agent`` header.
        verify: TLS verification: True (the system's certificate authorities),
            an ``ssl.SSLContext`` for a private authority, or False (tests only).
        proxy: An egress proxy URL. The environment's proxy settings are not
            read (configuration comes only through :mod:`rrm.wiring`).

    .. versionadded:: 0.3.0
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        user_agent: str = "usmca-rrm-webhooks",
        verify: ssl.SSLContext | bool = True,
        proxy: str | None = None,
    ) -> None:
        self._timeout = httpx.Timeout(timeout)
        self._user_agent = user_agent
        self._verify = verify
        self._proxy = proxy
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._timeout,
                    follow_redirects=False,
                    verify=self._verify,
                    headers={"user-agent": self._user_agent},
                    proxy=self._proxy,
                    trust_env=False,
                )
            return self._client

    def send(
        self,
        url: str,
        *,
        msg_id: str,
        timestamp: datetime,
        body: bytes,
        secret: str,
    ) -> int:
        """Post one signed message; return the endpoint's HTTP status code.

        Args:
            url: The subscription's endpoint.
            msg_id: The ``webhook-id``, the same on every attempt.
            timestamp: When this attempt is made (``webhook-timestamp``).
            body: The JSON body, sent exactly as signed.
            secret: The subscription's ``whsec_...`` signing secret.

        Raises:
            NotificationError: The endpoint could not be reached, or did not
                answer in time; ``permanent`` for a URL that can never work.
        """
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, timestamp, body),
        }
        try:
            with self._http().stream("POST", url, content=body, headers=headers) as r:
                _drain(r)
                return r.status_code
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise NotificationError(
                f"webhook URL unusable ({type(exc).__name__})", permanent=True
            ) from None
        except httpx.TimeoutException as exc:
            raise NotificationError(
                f"webhook endpoint did not answer in time ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise NotificationError(
                f"webhook endpoint unreachable ({type(exc).__name__})"
            ) from None

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _drain(response: httpx.Response) -> None:
    """Read a short answer so its connection can be reused; drop a long one."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > _MAX_ANSWER:
            return  # closing the stream drops the connection
