"""A worker-like process for the kill -9 suite: fires events, ticks, sends alerts.

Run by ``tests/faults/test_kill.py`` as a real subprocess (``sys.executable``), killed
with SIGKILL at random moments and restarted; every run continues where the database
and the state folder say it is. Nothing here sleeps: time is a fake clock set from a
persisted step counter, ``START + step * STEP``, so deadlines come due, lapse and owe
alerts as the steps go by.

The state folder holds:

- ``step``: the last step begun (written and fsynced *before* the step's work, so
  the clock never goes back after a restart);
- ``journal``: one line per history entry the engine reported committed
  (``case_id seq event``), appended and fsynced after the commit (the engine's
  subscribers run after commit), and one line per replayed command found committed;
- ``intent``: the command about to be fired, fsynced before the fire and removed
  after its journal line. A restarted driver fires it again first, with the same
  idempotency key: the engine must record it once, whether or not it had committed.

Each step: open cases until ``--cases`` are live, fire one legal event (chosen from
the workflow, seeded by case and version) on some of them, then ``engine.tick()``,
which records lapses, queues alerts and delivers them through the real
``SmtpNotifier`` to the test's SMTP server. Progress marks (``P <phase>``) go to
stdout so the test can tell where each kill landed.

``--final`` makes a run that fires nothing: it moves the clock a day forward through
``rrm.testing.skip`` (ticking at every wake-up, which re-claims alerts whose sender
was killed) and prints a JSON summary with the final instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

import rrm
from rrm.adapters.email import SmtpNotifier, SmtpSettings
from rrm.testing import FakeClock, skip

START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
# Eleven hours: ticks land at every hour of the day over a few days.
STEP = timedelta(hours=11)
# Chance that a live case gets an event at a step: cases move every few days, so
# some deadlines are met early, others come due and lapse.
FIRE_CHANCE = 0.15
OFFICERS = (
    rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example"),
    rrm.Officer(
        officer_id="luis", role="ustr", email="luis@ustr.example", language="es"
    ),
    rrm.Officer(officer_id="eva", role="ustr", email="eva@ustr.example", language="fr"),
    rrm.Officer(officer_id="sam", role="supervisor", email="sam@ustr.example"),
)
SETTINGS = rrm.AlertSettings(admin_address="admin@rrm.example")
# Events whose transitions are refused (guards, payload) are tried in this order.
_REMEDY = ["penalties"]


def instant(step: int) -> datetime:
    """The fake instant of a step."""
    return START + step * STEP


def mark(phase: str) -> None:
    """Tell the test where the driver is (read back after a kill)."""
    sys.stdout.write(f"P {phase}\n")
    sys.stdout.flush()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace *path* with *text*, durably (a kill leaves the old or the new file)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


class Journal:
    """Append-only record of committed history entries, fsynced line by line."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def add(self, case_id: str, seq: int, event: str) -> None:
        self._file.write(f"{case_id} {seq} {event}\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def __call__(self, event: rrm.DomainEvent) -> None:
        """Subscriber: the engine calls it after each commit."""
        if isinstance(event, rrm.CaseOpened):
            self.add(event.case_id, event.seq, "opened")
        elif isinstance(event, rrm.TransitionFired):
            self.add(event.case_id, event.seq, event.event)


class TracingNotifier:
    """The real SMTP notifier, marking when a message is on the wire."""

    def __init__(self, inner: SmtpNotifier) -> None:
        self._inner = inner

    def send(self, message: rrm.AlertMessage) -> None:
        mark("send")
        try:
            self._inner.send(message)
        finally:
            mark("tick")

    def session(self) -> contextlib.AbstractContextManager[None]:
        return self._inner.session()


def payload_for(transition: Any, today: date, rng: random.Random) -> dict[str, Any]:
    """A payload the transition accepts: required fields, enums, a milestone."""
    out: dict[str, Any] = {}
    for f in transition.payload:
        if f.type == "enum":
            out[f.name] = f.choices[0]
        elif f.type == "milestones":
            due = today + timedelta(days=rng.randint(6, 15))
            out[f.name] = [{"label": "legitimation vote", "due": due.isoformat()}]
        elif not f.required:
            continue
        elif f.type == "date":
            out[f.name] = (today + timedelta(days=rng.randint(16, 40))).isoformat()
        elif f.type == "int":
            out[f.name] = 1
        elif f.type == "bool":
            out[f.name] = True
        elif f.type == "list[str]":
            out[f.name] = list(_REMEDY)
        else:
            out[f.name] = "recorded by the fault driver"
    return out


def choices(engine: rrm.CaseEngine, case: rrm.Case, rng: random.Random) -> list[Any]:
    """Transitions an officer could record now, in a seeded, weighted order."""
    spec = engine.workflows.get(case.workflow_id, case.workflow_version)
    seen: dict[str, Any] = {}
    running = any(d.status is rrm.DeadlineStatus.OPEN for d in case.deadlines)
    for t in spec.transitions_from(case.state):
        if t.after_lapse_of is None and any(r != "system" for r in t.roles):
            seen.setdefault(t.event, t)
    weighted = []
    for t in seen.values():
        # While a clock runs, closing is rare and records that keep the state are
        # common, so clocks come due and lapse; a case without a running clock is
        # mostly closed, and a new case (with new clocks) takes its place.
        if spec.states[t.dest].terminal:
            weight = 0.04 if running else 3.0
        elif t.dest == case.state:
            weight = 2.0 if running else 0.5
        else:
            weight = 1.0
        weighted.append((rng.random() ** (1 / weight), t))
    return [t for _, t in sorted(weighted, key=lambda p: -p[0])]


class Driver:
    """One run of the driver."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.state = Path(args.state)
        self.seed = args.seed
        self.live = args.cases
        self.step_file = self.state / "step"
        self.intent_file = self.state / "intent"
        self.step = int(self.step_file.read_text()) if self.step_file.exists() else 0
        self.clock = FakeClock(instant(self.step))
        self.journal = Journal(self.state / "journal")
        notifier = TracingNotifier(
            SmtpNotifier(
                SmtpSettings(
                    host="127.0.0.1",
                    port=args.smtp_port,
                    security="none",
                    sender_address="rrm@agency.example",
                    timeout=10,
                ),
                now=self.clock.now,
            )
        )
        self.engine = rrm.bootstrap(
            args.db,
            clock=self.clock,
            subscribers=[self.journal],
            notifier=notifier,
            alert_settings=SETTINGS,
        )

    # -- the loop -----------------------------------------------------------------

    def run(self, steps: int) -> None:
        self.replay_intent()
        for _ in range(steps):
            self.step += 1
            mark("step")
            write_atomic(self.step_file, str(self.step))
            self.clock.set(instant(self.step))
            mark("load")
            cases = self.open_cases()
            for case in cases:
                rng = random.Random(
                    f"{self.seed}:{self.step}:{case.case_id}:{case.version}"
                )
                if rng.random() < FIRE_CHANCE:
                    self.fire_one(case, rng)
            mark("tick")
            self.engine.tick()

    def open_cases(self) -> list[rrm.Case]:
        # The newest cases only: the work per step stays flat as cases pile up (a
        # live case older than these is left to its clocks).
        cases = self.engine.find(limit=4 * self.live + 8)
        live = [c for c in cases if not self._terminal(c)]
        n = max((int(c.external_ref.split("-")[1]) for c in cases), default=0)
        while len(live) < self.live:
            n += 1
            mark("open")
            live.append(
                self.engine.open_case(
                    rrm.OpenCase(
                        workflow="usmca-31a",
                        initiation="request",
                        complainant="US",
                        respondent="MX",
                        facility=rrm.Facility(
                            facility_id=f"MX-FAULT-{n}",
                            name=f"Planta {n}",
                            owner=f"Grupo {n}",
                            country=rrm.Party.MX,
                        ),
                        claim=rrm.Claim(
                            basis="annex_23a_legislation",
                            sector_category="manufacturing",
                        ),
                        officers=OFFICERS,
                        external_ref=f"F-{n:04d}",
                        actor="officer:ana",
                        role="ustr",
                    )
                )
            )
        return sorted(live, key=lambda c: c.external_ref)

    def _terminal(self, case: rrm.Case) -> bool:
        spec = self.engine.workflows.get(case.workflow_id, case.workflow_version)
        return spec.states[case.state].terminal

    def fire_one(self, case: rrm.Case, rng: random.Random) -> None:
        today = self.clock.now().date()
        for t in choices(self.engine, case, rng)[:4]:
            role = next(r for r in t.roles if r != "system")
            cmd = {
                "case_id": case.case_id,
                "event": t.event,
                "role": role,
                "payload": payload_for(t, today, rng),
                "key": f"drv:{case.case_id}:{case.version + 1}",
                "expected_version": case.version,
            }
            write_atomic(self.intent_file, json.dumps(cmd))
            mark("fire")
            try:
                self.engine.fire(self._command(cmd))
            except (
                rrm.GuardRejected,
                rrm.TransitionNotAllowed,
                rrm.InvalidInput,
            ):
                # Refused: nothing was written (the test checks the history).
                self.intent_file.unlink()
                continue
            # The subscriber journaled the entry; the intent is done.
            self.intent_file.unlink()
            return

    @staticmethod
    def _command(cmd: dict[str, Any]) -> rrm.FireEvent:
        return rrm.FireEvent(
            case_id=cmd["case_id"],
            event=cmd["event"],
            actor="officer:fault-driver",
            role=cmd["role"],
            payload=cmd["payload"],
            idempotency_key=cmd["key"],
            expected_version=cmd["expected_version"],
        )

    def replay_intent(self) -> None:
        """Fire the command a killed run may or may not have committed, again."""
        if not self.intent_file.exists():
            return
        cmd = json.loads(self.intent_file.read_text())
        mark("replay")
        with contextlib.suppress(
            rrm.GuardRejected, rrm.TransitionNotAllowed, rrm.InvalidInput
        ):
            self.engine.fire(self._command(cmd))
        # Committed now or before the kill: journal it from the history (a
        # repeated key is answered without a new commit, so no subscriber call).
        for entry in self.engine.history(cmd["case_id"]):
            if entry.idempotency_key == cmd["key"]:
                self.journal.add(entry.case_id, entry.seq, entry.event)
                sys.stdout.write(f"R {entry.case_id} {entry.seq}\n")
        self.intent_file.unlink()

    def drain(self) -> dict[str, Any]:
        """Tick through a day of wake-ups, so everything owed is sent."""
        self.replay_intent()
        for hour in range(24):
            mark(f"drain {hour}")
            reports = skip(self.engine, self.clock, by=timedelta(hours=1))
            # Progress for a post-mortem: ticks, and what each hour sent or failed.
            sent = sum(r.sent for r in reports)
            failed = sum(r.failed for r in reports)
            sys.stdout.write(f"D {hour} ticks={len(reports)} {sent=} {failed=}\n")
        return {"now": self.clock.now().isoformat(), "step": self.step}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10**9)
    parser.add_argument("--final", action="store_true")
    # The final run goes on to at least this step, so a slow machine's short kill
    # loop still reaches simulated days where deadlines lapse.
    parser.add_argument("--until-step", type=int, default=0)
    args = parser.parse_args(argv)
    # Warnings and errors to stderr (the test keeps them in a file); never stdout.
    structlog.configure(
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    driver = Driver(args)
    mark("ready")
    if args.final:
        driver.run(max(args.steps, args.until_step - driver.step))
        summary = driver.drain()
        sys.stdout.write("S " + json.dumps(summary) + "\n")
    else:
        driver.run(args.steps)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
