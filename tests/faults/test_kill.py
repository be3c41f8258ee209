"""kill -9 a working engine process at random moments, restart it, lose nothing.

``driver.py`` runs as a real process (``sys.executable``): it opens cases, fires
legal events, ticks (lapses, lapse actions, queued alerts) and sends the alerts over
SMTP to a real aiosmtpd server that this test runs on loopback. Time in the driver is
a fake clock derived from a persisted step counter, so deadlines come due without
waiting. The test kills the driver with SIGKILL after a random delay (seeded) once it
is up, ``RRM_FAULT_KILLS`` times, restarting it each time; then it runs it once more
to the end, with no kill, so that everything owed is sent. Then:

- every case's history chain is intact (``engine.verify`` and ``rrm audit verify``);
- every history entry the driver journaled after a reported commit is in the
  history (no committed event lost), and no idempotency key is recorded twice
  (commands replayed after a kill are recorded once);
- every lapse is audited (a ``deadline_missed`` entry per lapsed deadline);
- every alert still owed by an open deadline (recomputed from its ladder) is in the
  outbox, nothing is left pending, failed, sending or dead, and every alert the
  database says was sent reached the SMTP server;
- the server received no Message-ID the outbox does not know, and the extra copies
  (a repeat is possible only when a kill falls between the server's 250 and the
  database recording it) number at most the kills, each with the Message-ID,
  recipient and subject of the first copy.

Settings (environment):

- ``RRM_FAULT_KILLS``: kills per backend; 8 by default (CI: 11-18 s per backend
  on the project's 2-core machine), 50 for the full run issue #5 asks for (about
  75 s per backend);
- ``RRM_FAULT_SEED``: the seed of the kill delays and of the driver's choices;
  random by default and printed (run with ``-s``, or read it in a failure message);
- ``RRM_FAULT_MAX_DELAY``: the longest wait, in seconds, from the driver's start to
  its kill (1.5 by default).

The full run::

    RRM_FAULT_KILLS=50 RRM_TEST_POSTGRES=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        pytest tests/faults/test_kill.py -s
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import rrm
from rrm.adapters.email.smtp import wire_message_id
from rrm.cli import main as rrm_main
from rrm.domain.alerts import AlertKind, owed_steps
from rrm.testing import FakeClock
from rrm.workflow.clocks import spec_key

DRIVER = Path(__file__).with_name("driver.py")
KILLS = int(os.environ.get("RRM_FAULT_KILLS", "8"))
SEED = int(os.environ.get("RRM_FAULT_SEED") or random.SystemRandom().randrange(2**31))
MAX_DELAY = float(os.environ.get("RRM_FAULT_MAX_DELAY", "1.5"))
# Waits for a process, never for a deadline.
START_TIMEOUT = 60.0
FINAL_TIMEOUT = 300.0
# The final run goes on to this step at least (11 simulated hours each, ~137
# days): enough for deadlines to lapse however few steps the kill loop made.
MIN_STEPS = 300
UNSETTLED = ("pending", "failed", "sending", "dead")


@dataclass
class Run:
    """One started driver process and its output files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def lines(self) -> list[str]:
        return self.out.read_text(encoding="utf-8", errors="replace").splitlines()

    def failure(self) -> str:
        return (
            f"driver exited {self.proc.returncode}; stdout tail:\n"
            + "\n".join(self.lines()[-15:])
            + "\nstderr tail:\n"
            + self.err.read_text(encoding="utf-8", errors="replace")[-3000:]
        )


def start(args: list[str], folder: Path, name: str) -> Run:
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, str(DRIVER), *args], stdout=o, stderr=e
        )
    return Run(proc=proc, out=out, err=err)


def wait_ready(run: Run) -> None:
    """Poll the driver's output until it says it is up (a process wait)."""
    deadline = time.monotonic() + START_TIMEOUT
    while "P ready" not in run.lines():
        assert run.proc.poll() is None, run.failure()
        assert time.monotonic() < deadline, "the driver did not start in time"
        time.sleep(0.01)


def last_phase(run: Run) -> str:
    phases = [line[2:] for line in run.lines() if line.startswith("P ")]
    return phases[-1] if phases else "start"


@dataclass
class Outcome:
    """What the runs left behind, read back for the checks."""

    note: str
    now: datetime
    engine: rrm.CaseEngine
    cases: list[rrm.Case]
    histories: dict[str, list[rrm.HistoryEntry]]
    alerts: list[rrm.Alert]
    journal: list[list[str]]
    received: list[Any]


def kill_loop(base: list[str], folder: Path, note: str) -> Counter[str]:
    """Start, let run for a random moment, SIGKILL; KILLS times. Returns the phases."""
    rng = random.Random(SEED)
    phases: Counter[str] = Counter()
    for i in range(KILLS):
        run = start(base, folder, f"run-{i}")
        try:
            wait_ready(run)
            time.sleep(rng.uniform(0.0, MAX_DELAY))
            assert run.proc.poll() is None, f"{note}: {run.failure()}"
        finally:
            if run.proc.poll() is None:
                run.proc.send_signal(signal.SIGKILL)
            run.proc.wait()
        assert run.proc.returncode == -signal.SIGKILL, f"{note}: {run.failure()}"
        phases[last_phase(run)] += 1
    return phases


def final_run(base: list[str], folder: Path, note: str) -> dict[str, Any]:
    """Run the driver to completion (no kill); return its summary."""
    final = start(
        [*base, "--final", "--steps", "0", "--until-step", str(MIN_STEPS)],
        folder,
        "final",
    )
    try:
        final.proc.wait(FINAL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if final.proc.poll() is None:
            final.proc.kill()
            final.proc.wait()
    assert final.proc.returncode == 0, f"{note}: final run: {final.failure()}"
    line = next(line for line in final.lines() if line.startswith("S "))
    summary: dict[str, Any] = json.loads(line[2:])
    return summary


def test_kill_nine_loop(
    backend: str,
    db_url: str,
    tmp_path: Path,
    mail: Any,
    sql_engine_for: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Kill the working driver N times; every check above holds after a final run."""
    note = f"backend={backend} seed={SEED} kills={KILLS} (RRM_FAULT_SEED to repeat)"
    print(f"\n[faults] {note}")
    rrm.upgrade_schema(db_url)
    state = tmp_path / "state"
    state.mkdir()
    base = ["--db", db_url, "--smtp-port", str(mail.port), "--state", str(state)]
    base += ["--seed", str(SEED)]
    began = time.monotonic()
    phases = kill_loop(base, tmp_path, note)
    killing = time.monotonic() - began
    summary = final_run(base, tmp_path, note)

    now = datetime.fromisoformat(summary["now"])
    engine = rrm.bootstrap(sql_engine_for(db_url), clock=FakeClock(now))
    cases = engine.find()
    out = Outcome(
        note=note,
        now=now,
        engine=engine,
        cases=cases,
        histories={c.case_id: engine.history(c.case_id) for c in cases},
        alerts=engine.alerts(),
        journal=[line.split() for line in (state / "journal").read_text().splitlines()],
        received=list(mail.handler.messages),
    )
    copies = Counter(m.message_id for m in out.received)
    replays = sum(
        line.startswith("R ")
        for i in range(KILLS)
        for line in (tmp_path / f"run-{i}.out").read_text().splitlines()
    )
    print(
        f"[faults] {note}: {killing:.1f} s of kill loop, {summary['step']} steps, "
        f"{len(cases)} cases, {sum(map(len, out.histories.values()))} history "
        f"entries, {len(out.journal)} journaled, {replays} replayed commands, "
        f"{len(out.alerts)} alerts, {len(out.received)} messages received, "
        f"{sum(copies.values()) - len(copies)} repeats; killed in phase "
        f"{dict(phases)}"
    )

    # The run did real work: cases, lapses, alerts on the wire.
    assert len(out.journal) > KILLS, note
    assert any(e.event == "deadline_missed" for h in out.histories.values() for e in h)
    assert copies, note

    check_chains(out, db_url, capsys)
    check_journal(out)
    check_lapses(out)
    check_owed_alerts(out)
    check_received(out, copies)


def check_chains(out: Outcome, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every history chain is intact and as long as its case's version."""
    for case in out.cases:
        report = out.engine.verify(case.case_id)
        assert report.ok, f"{out.note}: chain of {case.external_ref}: {report}"
        assert report.entries == case.version
    shown = capsys.readouterr().out
    assert rrm_main(["audit", "verify", "--db", db_url, "--json"]) == 0
    audited = json.loads(capsys.readouterr().out)
    print(shown, end="")  # the summary, on screen with -s
    assert len(audited) == len(out.cases)
    assert all(r["ok"] for r in audited)


def check_journal(out: Outcome) -> None:
    """Nothing journaled as committed is missing; no command recorded twice."""
    for case_id, seq, event in out.journal:
        history = out.histories[case_id]
        assert int(seq) <= len(history), f"{out.note}: lost {case_id} #{seq} {event}"
        entry = history[int(seq) - 1]
        if event == "opened":  # the opening entry carries the opening's event
            assert entry.seq == 1, f"{out.note}: {case_id} #{seq}"
            assert entry.from_state is None, f"{out.note}: {case_id} #{seq}"
        else:
            assert entry.event == event, f"{out.note}: {case_id} #{seq}"
    for history in out.histories.values():
        keys = [e.idempotency_key for e in history if e.idempotency_key]
        assert len(keys) == len(set(keys)), f"{out.note}: a command recorded twice"


def check_lapses(out: Outcome) -> None:
    """Every lapse is audited, once: one deadline_missed entry per lapsed deadline."""
    for case in out.cases:
        lapsed = sorted(
            (d.key, d.due_date.isoformat())
            for d in case.deadlines
            if d.lapsed_at is not None
        )
        missed = sorted(
            (str(e.payload["deadline"]), str(e.payload["due_date"]))
            for e in out.histories[case.case_id]
            if e.event == "deadline_missed"
        )
        assert lapsed == missed, f"{out.note}: lapses of {case.external_ref}"


def check_owed_alerts(out: Outcome) -> None:
    """Every step an open deadline owes (recomputed from its ladder) is in the
    outbox for each recipient, and no alert is left unsettled."""
    by_step: dict[tuple[str, str], set[str]] = {}
    for a in out.alerts:
        by_step.setdefault((a.deadline_id, a.step), set()).add(a.recipient_id)
    for case in out.cases:
        spec = out.engine.workflows.get(case.workflow_id, case.workflow_version)
        for d in case.deadlines:
            ladder = spec.deadlines[spec_key(d.key)].ladder
            if d.status is not rrm.DeadlineStatus.OPEN or ladder is None:
                continue
            calendar = out.engine.workflows.calendar(d.calendar_id)
            for step in owed_steps(ladder, d, calendar, after=None, until=out.now):
                want = {
                    o.officer_id
                    for o in case.officers
                    if o.role != "supervisor"
                    and (not ladder.recipients or o.role in ladder.recipients)
                }
                if step.kind is AlertKind.OVERDUE and ladder.supervisor_on_lapse:
                    want |= {
                        o.officer_id for o in case.officers if o.role == "supervisor"
                    }
                got = by_step.get((d.deadline_id, step.step), set())
                assert want <= got, f"{out.note}: {d.deadline_id} {step.step} lost"
    unsettled = [a for a in out.alerts if a.status.value in UNSETTLED]
    assert unsettled == [], f"{out.note}: {len(unsettled)} alerts left unsent"


def check_received(out: Outcome, copies: Counter[str]) -> None:
    """Every alert recorded as sent reached the server, nothing unknown did, and
    the repeats number at most the kills, each identical to its first copy."""
    known = {wire_message_id(a.message_id) for a in out.alerts}
    sent = {
        wire_message_id(a.message_id)
        for a in out.alerts
        if a.status is rrm.AlertStatus.SENT
    }
    lost = sent - set(copies)
    assert not lost, f"{out.note}: {len(lost)} sent, never received: {sorted(lost)}"
    assert set(copies) <= known, f"{out.note}: unknown {set(copies) - known}"
    extra = sum(copies.values()) - len(copies)
    assert extra <= KILLS, f"{out.note}: {extra} repeats for {KILLS} kills"
    first: dict[str, Any] = {}
    for m in out.received:
        seen = first.setdefault(m.message_id, m)
        assert (seen.to, seen.subject) == (m.to, m.subject), f"{out.note}: {m}"
