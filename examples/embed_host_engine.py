"""Embed RRM in a host application that owns its SQLAlchemy engine and transactions.

The host runs RRM's migrations inside its own transaction (with RRM's own version
table, so they never touch the host's tables), hands its engine to rrm.bootstrap,
and subscribes to domain events that arrive after each commit.
"""

from __future__ import annotations

import sqlalchemy as sa

import rrm

host = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
with host.begin() as conn:
    conn.execute(
        sa.text("CREATE TABLE host_tickets (id INTEGER PRIMARY KEY, note TEXT)")
    )
    rrm.upgrade_schema(conn)  # in the host's transaction

received: list[rrm.DomainEvent] = []
engine = rrm.bootstrap(host, subscribers=[received.append])

case = engine.open_case(
    rrm.OpenCase(
        workflow="usmca-31b",
        initiation="claim",
        complainant="CA",
        respondent="MX",
        facility=rrm.Facility(
            facility_id="MX-AUTO-3",
            name="Planta Tres",
            owner="Autopartes SA",
            country=rrm.Party.MX,
        ),
        claim=rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing"),
        external_ref="HOST-TICKET-42",
        payload={"submitter_category": "organization_in_canada"},
        actor="officer:nao-1",
        role="nao",
    )
)
with host.begin() as conn:
    conn.execute(
        sa.text("INSERT INTO host_tickets (note) VALUES (:n)"),
        {"n": f"RRM case {case.case_id}"},
    )

print("opened", case.external_ref, "in state", case.state)
for event in received:
    print(" event:", type(event).__name__, getattr(event, "key", ""))
nao = case.open_deadlines["nao_review"]
print(" NAO decision due", nao.due_date, "-", nao.explanation)
with host.connect() as conn:
    tables = sorted(
        r[0]
        for r in conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type='table'")
        )
    )
print(" tables:", ", ".join(tables))
assert "host_tickets" in tables
assert "rrm_case" in tables
