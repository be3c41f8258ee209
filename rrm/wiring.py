"""Composition root: ``rrm.bootstrap()`` wires storage, workflows and the clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rrm.adapters.email import JinjaAlertRenderer
from rrm.adapters.sql import migrate
from rrm.adapters.sql.engine import make_engine
from rrm.adapters.sql.uow import SqlUnitOfWorkFactory
from rrm.clock import Clock, SystemClock
from rrm.service.engine import CaseEngine, Subscriber
from rrm.workflow.registry import Workflows, load_workflows

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    import sqlalchemy as sa

    from rrm.service.access import Authorizer
    from rrm.service.alerting import AlertSettings
    from rrm.service.ports import AlertRenderer, Notifier, WebhookSender

__all__ = ["DEFAULT_DB", "bootstrap", "upgrade_schema"]

DEFAULT_DB = "sqlite:///rrm.sqlite"


def upgrade_schema(db: str | sa.Engine | sa.Connection) -> None:
    """Create or upgrade RRM's tables to the newest revision (never automatic).

    Args:
        db: A database URL, an engine, or a connection whose transaction the host
            controls.

    .. versionadded:: 0.1.0
    """
    if isinstance(db, str):
        engine = make_engine(db)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
    else:
        migrate.upgrade(db)


def bootstrap(
    db: str | sa.Engine = DEFAULT_DB,
    *,
    clock: Clock | None = None,
    workflows: Workflows | Path | str | None = None,
    subscribers: Iterable[Subscriber] = (),
    id_factory: Callable[[], str] | None = None,
    upgrade: bool = False,
    notifier: Notifier | None = None,
    renderer: AlertRenderer | None = None,
    alert_settings: AlertSettings | None = None,
    link_template: str = "",
    authorizer: Authorizer | None = None,
    webhooks: WebhookSender | None = None,
) -> CaseEngine:
    """Build a ready ``CaseEngine`` on a database.

    Args:
        db: A database URL (SQLite file by default, or PostgreSQL) or the host's
            own SQLAlchemy engine.
        clock: Where "now" comes from; the system clock by default.
        workflows: Loaded workflows, or a folder of definitions; the bundled
            definitions by default.
        subscribers: Callbacks receiving domain events after each commit.
        id_factory: Makes new case ids (random UUIDs by default).
        upgrade: Upgrade the schema first. Off by default: RRM never migrates a
            database unless asked.
        notifier: Delivers alerts (``SmtpNotifier``, a host's mail service, a
            webhook); without one, ``tick()`` queues alerts but sends nothing.
        renderer: Renders alerts; the bundled Jinja renderer by default.
        alert_settings: Retries, fallback, supervisor and administrator addresses.
        link_template: Link to a case in the host's application, for e-mails,
            e.g. ``https://cases.example.gov/rrm/{case_id}``.
        authorizer: Who may do what. By default the host's own check
            (``HostCheck``: every command is allowed, the host has authorized
            its user); ``rrm serve`` passes an ``AccessPolicy``.
        webhooks: Sends the webhook outbox during ``tick()``
            (``HttpWebhookSender``); without one, messages stay queued.

    Raises:
        SchemaOutOfDate: If the schema is not at the revision this RRM needs.
        InvalidInput: If *db* is not a usable database URL.

    .. versionadded:: 0.1.0
    """
    engine = make_engine(db) if isinstance(db, str) else db
    if upgrade:
        migrate.upgrade(engine)
    migrate.check(engine)
    loaded = (
        workflows if isinstance(workflows, Workflows) else load_workflows(workflows)
    )
    clock = clock or SystemClock()
    if notifier is not None and renderer is None:
        renderer = JinjaAlertRenderer(link_template, now=clock.now)
    return CaseEngine(
        uow_factory=SqlUnitOfWorkFactory(engine),
        workflows=loaded,
        clock=clock,
        subscribers=subscribers,
        id_factory=id_factory,
        notifier=notifier,
        renderer=renderer,
        alert_settings=alert_settings,
        authorizer=authorizer,
        health_check=lambda: migrate.check(engine),
        webhook_sender=webhooks,
    )
