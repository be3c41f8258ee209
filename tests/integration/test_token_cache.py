"""The case service's token cache: fast, yet revocation and expiry still hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rrm.adapters.sql import migrate
from rrm.adapters.sql.credentials import SqlCredentialStore
from rrm.adapters.sql.engine import make_engine
from rrm.errors import NotAuthenticated
from rrm.server.auth import Authenticator
from rrm.service.credentials import create_token

NOW = datetime(2025, 1, 6, 15, tzinfo=UTC)


@pytest.fixture(name="sql")
def _sql(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _issue(store, **extra):
    _, text = create_token(
        store, principal="ana", roles=["ustr"], created_by="t", now=NOW, **extra
    )
    return text


class TestTokenCache:
    def test_a_token_checked_once_is_proven_from_memory(self, sql):
        """After one database check, the same token is proven without I/O."""
        store = SqlCredentialStore(sql, token_cache_seconds=60)
        auth = Authenticator(store, None)
        header = f"Bearer {_issue(store)}"

        before = auth.from_memory(header, now=NOW)
        checked = auth.authenticate(header, now=NOW)
        after = auth.from_memory(header, now=NOW)

        assert before is None
        assert after == checked
        assert after is not None and after.via.startswith("token:")

    def test_a_revocation_through_the_same_store_is_immediate(self, sql):
        """A token revoked through the serving store is refused at once."""
        store = SqlCredentialStore(sql, token_cache_seconds=60)
        auth = Authenticator(store, None)
        text = _issue(store)
        auth.authenticate(f"Bearer {text}", now=NOW)

        store.revoke_token(text.split("_")[1], NOW)

        assert auth.from_memory(f"Bearer {text}", now=NOW) is None
        with pytest.raises(NotAuthenticated):
            auth.authenticate(f"Bearer {text}", now=NOW)

    def test_expiry_is_checked_on_every_request_even_from_memory(self, sql):
        """A held token is refused once the clock passes its expiry."""
        store = SqlCredentialStore(sql, token_cache_seconds=60)
        auth = Authenticator(store, None)
        text = _issue(store, expires_in=timedelta(hours=1))
        auth.authenticate(f"Bearer {text}", now=NOW)

        with pytest.raises(NotAuthenticated):
            auth.from_memory(f"Bearer {text}", now=NOW + timedelta(hours=2))

    def test_a_wrong_secret_for_a_held_token_is_refused(self, sql):
        """A held token id with another secret is refused, from memory too."""
        store = SqlCredentialStore(sql, token_cache_seconds=60)
        auth = Authenticator(store, None)
        text = _issue(store)
        auth.authenticate(f"Bearer {text}", now=NOW)
        # rrm_<16 hex>_<secret>: the secret itself may hold "_".
        forged = text[: len("rrm_") + 16 + 1] + "A" * 43
        assert forged != text

        with pytest.raises(NotAuthenticated):
            auth.from_memory(f"Bearer {forged}", now=NOW)

    def test_without_a_cache_every_request_reads_the_database(self, sql):
        """With no cache time, nothing is proven from memory."""
        store = SqlCredentialStore(sql)
        auth = Authenticator(store, None)
        header = f"Bearer {_issue(store)}"
        auth.authenticate(header, now=NOW)

        assert auth.from_memory(header, now=NOW) is None
