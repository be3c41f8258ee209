"""``rrm demo``: the whole engine at work in one command, offline, in under 30 seconds.

It builds an embedded database in a folder, opens three sample cases modelled on real
public cases, moves simulated time through the review, remediation and panel paths,
runs the worker's ticks against a local SMTP server that captures every alert
e-mail, and prints the timelines, the deadlines and the e-mails sent.
"""

from __future__ import annotations

import email
import shutil
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller
from rich.panel import Panel
from rich.table import Table

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.cli import pictures
from rrm.views import timeline_svg

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["run_demo"]

START = datetime(2025, 3, 3, 15, tzinfo=UTC)  # a Monday


class SimulatedClock:
    """The demo's clock: it moves only when the demo says so."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        """Return the simulated instant."""
        return self._now

    def move_to(self, instant: datetime) -> None:
        """Move forward to *instant* (never back)."""
        self._now = max(self._now, instant)


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message it receives."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: Any,  # noqa: ARG002 - aiosmtpd passes it
        session: Any,  # noqa: ARG002 - aiosmtpd passes it
        envelope: Any,
    ) -> str:
        """Store the message."""
        parsed = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(parsed)
        return "250 Message accepted"


@dataclass(frozen=True)
class Step:
    """One thing an officer records in a sample case."""

    after_days: float
    event: str
    role: str
    payload: dict[str, Any] = field(default_factory=dict)


OFFICERS = {
    "usmca-31a": (
        rrm.Officer(
            officer_id="ana",
            role="ustr",
            name="Ana (USTR)",
            email="ana@ustr.example",
            language="en",
        ),
        rrm.Officer(
            officer_id="luis",
            role="ustr",
            name="Luis (USTR)",
            email="luis@ustr.example",
            language="es",
            timezone="America/Mexico_City",
        ),
        rrm.Officer(officer_id="sam", role="supervisor", email="sam@ustr.example"),
    ),
    "usmca-31b": (
        rrm.Officer(
            officer_id="claire",
            role="complainant",
            email="claire@esdc.example",
            language="fr",
            timezone="America/Toronto",
        ),
        rrm.Officer(officer_id="noah", role="nao", email="noah@esdc.example"),
        rrm.Officer(officer_id="sam", role="supervisor", email="sam@esdc.example"),
    ),
}


@dataclass(frozen=True)
class Sample:
    """A sample case and the steps it goes through."""

    ref: str
    modelled_on: str
    workflow: str
    initiation: str
    role: str
    complainant: str
    facility: rrm.Facility
    steps: tuple[Step, ...]
    payload: dict[str, Any] = field(default_factory=dict)


def _facility(fid: str, name: str, city: str, region: str, sector: str) -> rrm.Facility:
    return rrm.Facility(
        facility_id=fid,
        name=name,
        owner=f"{name} (owner)",
        country=rrm.Party.MX,
        city=city,
        region=region,
        sector=sector,
    )


SAMPLES = (
    Sample(
        ref="DEMO-REMEDIATION",
        modelled_on="GM Silao, 2021 (US-MX-2021-01)",
        workflow="usmca-31a",
        initiation="self_initiated",
        role="ilc",
        complainant="US",
        facility=_facility(
            "DEMO-F1", "Light-truck plant", "Silao", "Guanajuato", "autos"
        ),
        steps=(
            Step(0, "ustr_initiates", "ustr"),
            Step(0, "request_for_review", "ustr"),
            Step(0, "suspend_liquidation", "ustr"),
            Step(2, "respondent_agrees", "respondent"),
            Step(40, "respondent_finds_denial", "respondent"),
            Step(
                13,
                "remediation_plan_agreed",
                "ustr",
                {
                    "due": "2025-07-31",
                    "milestones": [
                        {"label": "new legitimation vote", "due": "2025-06-20"}
                    ],
                },
            ),
            Step(40, "milestone_met", "ustr", {"milestone": 1}),
            Step(30, "remediation_reported_complete", "respondent"),
            Step(5, "remediation_verified", "ustr"),
        ),
    ),
    Sample(
        ref="DEMO-PANEL",
        modelled_on="San Martin mine, 2023 (US-MX-2023-06)",
        workflow="usmca-31a",
        initiation="petition",
        role="dol",
        complainant="US",
        facility=_facility(
            "DEMO-F2", "Copper mine", "Sombrerete", "Zacatecas", "mining"
        ),
        steps=(
            Step(25, "ilc_affirmative", "ilc"),
            Step(4, "request_for_review", "ustr"),
            Step(0, "suspend_liquidation", "ustr"),
            Step(
                45,
                "respondent_finds_no_denial",
                "respondent",
                {"grounds": "outside the Mechanism's scope"},
            ),
            Step(20, "complainant_disputes_no_denial", "ustr"),
            Step(1, "panel_requested", "ustr"),
            Step(8, "panel_constituted", "secretariat", {"panelists": ["A", "B", "C"]}),
            Step(4, "verification_requested", "panel"),
            Step(5, "verification_agreed", "respondent"),
            Step(25, "verification_completed", "panel"),
        ),
    ),
    Sample(
        ref="DEMO-LAPSE",
        modelled_on="Canada's first claim, 2023 (CA-MX-2023-01)",
        workflow="usmca-31b",
        initiation="claim",
        role="nao",
        complainant="CA",
        facility=_facility(
            "DEMO-F3", "Auto parts plant", "Monterrey", "Nuevo Leon", "auto parts"
        ),
        payload={"submitter_category": "organization_in_canada"},
        steps=(
            Step(12, "nao_finds_basis", "nao"),
            Step(1, "request_for_review", "complainant"),
            # Mexico stays silent: the engine records the lapse after 10 days.
        ),
    ),
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _advance(engine: rrm.CaseEngine, clock: SimulatedClock, to: datetime) -> int:
    """Move time to *to*, ticking at every wake-up the engine asks for."""
    ticks = 0
    while (wake := engine.next_wakeup()) is not None and wake <= to:
        clock.move_to(wake)
        engine.tick()
        ticks += 1
    clock.move_to(to)
    engine.tick()
    return ticks + 1


def _open(engine: rrm.CaseEngine, sample: Sample, at: datetime) -> rrm.Case:
    return engine.open_case(
        rrm.OpenCase(
            workflow=sample.workflow,
            initiation=sample.initiation,
            complainant=sample.complainant,
            respondent="MX",
            facility=sample.facility,
            claim=rrm.Claim(
                basis="annex_23a_legislation",
                sector_category="mining"
                if "mine" in sample.facility.name.lower()
                else "manufacturing",
            ),
            petitioners=(
                rrm.Petitioner(name="(a confidential petitioner)", confidential=True),
            ),
            officers=OFFICERS[sample.workflow],
            external_ref=sample.ref,
            actor=f"demo:{sample.role}",
            role=sample.role,
            payload=sample.payload,
            at=at,
        )
    )


def _play(engine: rrm.CaseEngine, clock: SimulatedClock) -> dict[str, rrm.Case]:
    """Run the three samples side by side on one simulated calendar."""
    plans = []
    for offset, sample in enumerate(SAMPLES):
        at = START + timedelta(days=offset)
        _advance(engine, clock, at)
        case = _open(engine, sample, at)
        when = at
        for step in sample.steps:
            when += timedelta(days=step.after_days)
            plans.append((when, case.case_id, step))
    for when, case_id, step in sorted(plans, key=lambda p: p[0]):
        _advance(engine, clock, when)
        current = engine.get(case_id)
        if step.event not in {
            t.event
            for t in engine.workflows.get(
                current.workflow_id, current.workflow_version
            ).transitions_from(current.state)
        }:
            continue  # the engine already moved the case (a lapse action)
        engine.fire(
            rrm.FireEvent(
                case_id=case_id,
                event=step.event,
                actor=f"demo:{step.role}",
                role=step.role,
                payload=step.payload,
            )
        )
    _advance(engine, clock, max(p[0] for p in plans) + timedelta(days=3))
    return {s.ref: engine.get(s.ref) for s in SAMPLES}


def _print_case(
    console: Console,
    engine: rrm.CaseEngine,
    case: rrm.Case,
    *,
    sample: Sample,
    folder: Path,
    now: datetime,
) -> None:
    spec = engine.workflows.get(case.workflow_id, case.workflow_version)
    console.rule(f"[bold]{case.external_ref}[/bold] — modelled on {sample.modelled_on}")
    console.print(
        f"{spec.title}\nState: [bold]{case.state}[/bold] — "
        f"{spec.states[case.state].label} (version {case.version})"
    )
    history = engine.history(case.case_id)
    console.print(pictures.timeline_table(case, history, now=now))
    table = Table("deadline", "due", "status", "explanation", title="Deadlines")
    for d in case.deadlines:
        mark = " [yellow](nominal)[/yellow]" if d.nominal else ""
        table.add_row(
            d.key + mark, d.due_date.isoformat(), d.status.value, d.explanation
        )
    console.print(table)
    svg = folder / f"{case.external_ref}.svg"
    svg.write_text(timeline_svg(case, history, now=now), encoding="utf-8")
    verified = engine.verify(case.case_id)
    console.print(
        f"History: {verified.entries} entries, chain intact: {verified.ok}; "
        f"timeline image: {svg}"
    )


def _print_mail(console: Console, mailbox: Mailbox, folder: Path) -> None:
    maildir = folder / "mail"
    maildir.mkdir(exist_ok=True)
    kinds: Counter[tuple[str, str]] = Counter()
    for i, message in enumerate(mailbox.messages, start=1):
        (maildir / f"{i:03d}.eml").write_bytes(message.as_bytes())
        subject = str(message["Subject"])
        ref = subject.rsplit("— ", 1)[-1] if "— " in subject else "(digest)"
        kind = subject.removeprefix("[RRM] ").split(":", 1)[0]
        kinds[(ref, kind)] += 1
    summary = Table(
        "case",
        "kind of alert",
        "e-mails",
        title=f"E-mails captured: {len(mailbox.messages)}",
    )
    for (ref, kind), count in sorted(kinds.items()):
        summary.add_row(ref, kind, str(count))
    console.print(summary)
    sample = Table("to", "subject", title="The first ten, as officers receive them")
    for message in mailbox.messages[:10]:
        sample.add_row(str(message["To"]), str(message["Subject"]))
    console.print(sample)
    console.print(f"Every e-mail is saved in {maildir} (open them with a mail client).")


def run_demo(folder: Path | None, console: Console) -> int:
    """Run the demo in *folder* (created if needed; default ./rrm-demo); return 0.

    .. versionadded:: 0.1.0
    """
    play_demo(folder, console)
    return 0


def play_demo(folder: Path | None, console: Console) -> tuple[Path, datetime]:
    """Run the demo; return its database and the simulated instant it ended at.

    .. versionadded:: 0.4.0
    """
    began = time.monotonic()
    folder = folder or Path("rrm-demo")
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "rrm.sqlite"
    for stale in (
        db,
        folder / "rrm.sqlite-wal",
        folder / "rrm.sqlite-shm",
        folder / "mail",
    ):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock = SimulatedClock(START)
        notifier = SmtpNotifier(
            SmtpSettings(
                host="127.0.0.1",
                port=port,
                security="none",
                sender_address="rrm-demo@agency.example",
            ),
            now=clock.now,
        )
        engine = rrm.bootstrap(
            f"sqlite:///{db}",
            clock=clock,
            upgrade=True,
            notifier=notifier,
            link_template="https://cases.agency.example/rrm/{case_id}",
        )
        console.print(
            Panel.fit(
                f"usmca-rrm demo — embedded database {db}\n"
                f"simulated time from {START.date()}; "
                "a local SMTP server captures alerts",
                title="rrm demo",
            )
        )
        cases = _play(engine, clock)
        now = clock.now()
        for sample in SAMPLES:
            _print_case(
                console,
                engine,
                cases[sample.ref],
                sample=sample,
                folder=folder,
                now=now,
            )
        _print_mail(console, mailbox, folder)
    finally:
        controller.stop()
    console.print(
        f"Done in {time.monotonic() - began:.1f} s (simulated until {now.date()})."
    )
    return db, now


#: Who signs in to the demo's console: Sam supervises every demo case (and
#: administers the demo), Ana is a USTR officer on the Annex 31-A cases.
DEMO_PEOPLE = (
    ("sam", ("supervisor", "admin"), ("OTLA",)),
    ("ana", ("ustr",), ("USTR",)),
)


def serve_demo(folder: Path | None, console: Console, *, host: str, port: int) -> int:
    """Run the demo, then serve the officer console on its database until stopped.

    The console's clock stands still at the instant the demo ended, so the days
    left it shows are those of the demo's story.

    .. versionadded:: 0.4.0
    """
    from rrm.adapters.sql.credentials import SqlCredentialStore  # noqa: PLC0415
    from rrm.adapters.sql.engine import make_engine  # noqa: PLC0415
    from rrm.cli.serve import run_server  # noqa: PLC0415 - the server's extras
    from rrm.server import ServerSettings, create_app  # noqa: PLC0415
    from rrm.service.access import AccessPolicy  # noqa: PLC0415
    from rrm.service.credentials import create_token  # noqa: PLC0415

    db, end = play_demo(folder, console)
    clock = SimulatedClock(end)
    url = f"sqlite:///{db}"
    # Two requests still running when the demo ends, so My work has something
    # due this week and a lapse to show.
    seeder = rrm.bootstrap(url, clock=clock)
    for ref, days_ago in (("DEMO-RUNNING-1", 4), ("DEMO-RUNNING-2", 12)):
        seeder.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=SAMPLES[0].facility,
                claim=rrm.Claim(
                    basis="annex_23a_legislation", sector_category="manufacturing"
                ),
                petitioners=(
                    rrm.Petitioner(
                        name="(a confidential petitioner)", confidential=True
                    ),
                ),
                officers=OFFICERS["usmca-31a"],
                external_ref=ref,
                actor="demo:ustr",
                role="ustr",
                at=end - timedelta(days=days_ago),
            )
        )
    seeder.tick()
    address = f"http://{host}:{port}"
    settings = ServerSettings(policy=AccessPolicy(), public_url=address)
    engine = rrm.bootstrap(url, clock=clock, authorizer=settings.policy)
    store = SqlCredentialStore(make_engine(url))
    console.print(
        Panel.fit(
            f"The officer console of the demo: {address}/\n"
            f"The clock stands at {end.date()}, where the demo ended. "
            "Sign in with one of these API tokens (Ctrl+C stops the server):",
            title="rrm demo --serve",
        )
    )
    for principal, roles, agencies in DEMO_PEOPLE:
        _, text = create_token(
            store,
            principal=principal,
            roles=roles,
            agencies=agencies,
            label="rrm demo --serve",
            created_by="rrm demo",
            now=end,
        )
        console.print(f"{principal} ({', '.join(roles)}):", highlight=False)
        print(text, flush=True)
    run_server(create_app(engine, store, settings), host=host, port=port)
    return 0
