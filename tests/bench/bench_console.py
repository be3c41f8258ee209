"""B7: server time of the officer console's pages beside the API's, on big data.

The database (a SQLite file in a temporary folder, and with ``--postgres`` a
PostgreSQL schema of its own at common.PG, dropped after) holds 100,000 open
usmca-31a cases opened by a request for review, spread over 2,000 facilities (50
cases each; names like "Forjados Saltillo 0006": 25 trade names x 40 cities), each
with its two open deadlines and the officer ``ana`` (ustr), opened over the last
100 days (1,000 a day). One case, the newest, has 1,000 history entries.

Seeding: that case is opened through the engine, and its rows (rrm_case,
rrm_case_officer, rrm_case_event, rrm_deadline) are cloned 99,999 times under new
ids with SQLAlchemy Core, as B2 does, dates moved back by whole days (the opening
also by up to 1,000 minutes within its day, so every case has its own instant); the
1,999 other facilities are inserted the same way. Then 999 engine commands on the
first case give it 1,000 history entries with a valid hash chain: in turn
suspend_liquidation, resume_liquidation, ustr_certifies_no_panel (state unchanged)
and pause / resume of its 10-day answer deadline. PostgreSQL gets ``ANALYZE``
(autovacuum would do it); SQLite gets no statistics (RRM never runs ANALYZE).

Serving: one server process, the app ``rrm serve`` builds (``rrm.cli.serve.build_app``:
AccessPolicy, SqlCredentialStore, gc.freeze) run by uvicorn on loopback as
``rrm serve`` runs it, wrapped in one outermost ASGI middleware that times every
request from the moment uvicorn hands it over to the last byte of the response body
handed back (``time.perf_counter``): that is the *server time* reported, every
middleware of the app included (not the Prometheus histogram
``rrm_http_request_seconds``, whose buckets of 100 and 250 ms cannot place a p95
against 150 ms, and which runs inside the session middleware). Network and the
client are excluded; the client's round trip p50 is in the notes.

Measured, all by one keep-alive ``httpx`` client per side: the console signed in
with an API token of ``ana`` (roles ustr, agency USTR; the sign-in form with its
CSRF token), the API with the same token as a Bearer. Pages:

* ``/cases`` (first page, 50 rows, newest first) vs ``/api/v1/cases?limit=50``;
* ``/cases?q=saltillo`` (a city: 2,500 cases match) vs the API with the same ``q``;
* ``/cases?q=forjados saltillo`` (two facilities: 100 cases over the whole 100 days,
  so the search reads about half the table) vs the API with the same ``q``;
* ``/cases?sort=reference`` (the API has no sort: no reference);
* ``/cases/{id}`` of the case with 1,000 entries vs ``/api/v1/cases/{id}`` plus
  ``/api/v1/cases/{id}/history`` (the API needs both for the same data; the
  reference is the p95 of the per-round sum of the two server times).

After 5 warm-up rounds, requests go round-robin over the pages, console then API,
one at a time: N_LIST rounds for the lists, the first N_CASE of them also for the
case page. Every answer must be 200 with the rows expected (50 list rows, 1,000
history rows and an intact chain). Figures: p95 (nearest rank) in ms, p50 in the
notes. Target: console p95 under 150 ms for the case list and the case page.

Run alone:  python tests/bench/bench_console.py [--quick] [--postgres]
Profile:    python tests/bench/bench_console.py --profile [--postgres] [--quick]
            (cProfile in the server, thread pool run inline so one thread does all
            the work; prints the top functions per page; figures are not timings)
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import os
import pstats
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx
import sqlalchemy as sa
from bench_api import percentile
from common import Row, database, quiet

import rrm
from rrm.adapters.sql.credentials import SqlCredentialStore
from rrm.adapters.sql.engine import make_engine
from rrm.adapters.sql.tables import CASE, CASE_EVENT, CASE_OFFICER, DEADLINE, FACILITY
from rrm.server.console.pages import HISTORY_SHOWN
from rrm.service.credentials import create_token
from rrm.testing import FakeClock

CASES = 100_000
FACILITIES = 2_000
PER_DAY = 1_000
HISTORY = 1_000
CHUNK = 5_000
OFFICER = "ana"
TARGET_MS = 150.0
WARMUP = 5
START_TIMEOUT = 60.0
TIMINGS = "/__b7/timings"
PROFILE = "/__b7/profile"

TRADES = (
    "Autopartes", "Fundición", "Textiles", "Llantas", "Arneses", "Ensambles",
    "Forjados", "Componentes", "Maquinados", "Plásticos", "Eléctricos",
    "Electrónica", "Aceros", "Vidrios", "Alimentos", "Empaques", "Motores",
    "Frenos", "Sistemas", "Industrias", "Manufacturas", "Troqueles", "Cables",
    "Baterías", "Transmisiones",
)  # fmt: skip
CITIES = (
    ("Saltillo", "COA"), ("Monterrey", "NLE"), ("Silao", "GUA"),
    ("Aguascalientes", "AGU"), ("Puebla", "PUE"), ("Toluca", "MEX"),
    ("Querétaro", "QUE"), ("San Luis Potosí", "SLP"), ("Hermosillo", "SON"),
    ("Chihuahua", "CHH"), ("Ciudad Juárez", "CHH"), ("Tijuana", "BCN"),
    ("Mexicali", "BCN"), ("Reynosa", "TAM"), ("Matamoros", "TAM"),
    ("Nuevo Laredo", "TAM"), ("Celaya", "GUA"), ("León", "GUA"),
    ("Irapuato", "GUA"), ("Guadalajara", "JAL"), ("Morelia", "MIC"),
    ("Tlaxcala", "TLA"), ("Cuautitlán", "MEX"), ("Ramos Arizpe", "COA"),
    ("Apodaca", "NLE"), ("Escobedo", "NLE"), ("Durango", "DUR"),
    ("Torreón", "COA"), ("Zacatecas", "ZAC"), ("Veracruz", "VER"),
    ("Orizaba", "VER"), ("Mérida", "YUC"), ("Tampico", "TAM"),
    ("Lagos de Moreno", "JAL"), ("Salamanca", "GUA"), ("Ensenada", "BCN"),
    ("Nogales", "SON"), ("Piedras Negras", "COA"), ("Monclova", "COA"),
    ("Villahermosa", "TAB"),
)  # fmt: skip
CITY_QUERY = "saltillo"  # 50 facilities, 2,500 cases
NAME_QUERY = "forjados saltillo"  # 2 facilities, 100 cases


def _facility(j: int) -> dict[str, Any]:
    trade = TRADES[j % len(TRADES)]
    city, region = CITIES[(j // len(TRADES)) % len(CITIES)]
    return {
        "facility_id": f"MXF{j:05d}",
        "name": f"{trade} {city} {j:04d}",
        "owner": f"Grupo {trade} S.A. de C.V.",
        "country": "MX",
        "city": city,
        "region": region,
        "sector": "manufacturing",
    }


def _open(base: datetime) -> rrm.OpenCase:
    f = _facility(0)
    return rrm.OpenCase(
        workflow="usmca-31a",
        initiation="request",
        complainant="US",
        respondent="MX",
        facility=rrm.Facility(
            facility_id=f["facility_id"],
            name=f["name"],
            owner=f["owner"],
            country=rrm.Party.MX,
            city=f["city"],
            region=f["region"],
            sector=f["sector"],
        ),
        claim=rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing"),
        external_ref="RRM-MX-000000",
        actor="a",
        role="ustr",
        officers=(
            rrm.Officer(
                officer_id=OFFICER, role="ustr", name="Ana", email="ana@bench.example"
            ),
        ),
        at=base,
    )


# -- seeding ------------------------------------------------------------------------


def _rows(table: sa.Table, conn: sa.Connection, case_id: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            sa.select(table).where(table.c.case_id == case_id)
        ).mappings()
    ]


def _moved(row: dict[str, Any], columns: tuple[str, ...], delta: timedelta) -> None:
    for c in columns:
        if row.get(c) is not None:
            row[c] = row[c] - delta


def _fire_history(engine: rrm.CaseEngine, clock: FakeClock, case_id: str) -> None:
    """999 commands that keep the case in review_requested: 1,000 entries in all."""
    for k in range(HISTORY - 1):
        clock.advance(timedelta(minutes=1))
        step = k % 5
        if step == 0:
            engine.fire(
                rrm.FireEvent(
                    case_id=case_id,
                    event="suspend_liquidation",
                    actor=OFFICER,
                    role="ustr",
                    payload={"basis": f"Request {k}: denial of rights alleged"},
                )
            )
        elif step == 1:
            engine.fire(
                rrm.FireEvent(
                    case_id=case_id,
                    event="resume_liquidation",
                    actor=OFFICER,
                    role="ustr",
                    payload={"basis": "USTR notice"},
                    reason="Liquidation resumes while the review goes on",
                )
            )
        elif step == 2:
            engine.fire(
                rrm.FireEvent(
                    case_id=case_id,
                    event="ustr_certifies_no_panel",
                    actor=OFFICER,
                    role="ustr",
                    payload={"reasons": f"Certification {k} to Congress"},
                )
            )
        elif step == 3:
            engine.pause(
                rrm.PauseDeadline(
                    case_id=case_id,
                    key="respondent_answer",
                    actor="sam",
                    role="supervisor",
                    reason=f"Secretariat closure {k}",
                )
            )
        else:
            engine.resume(
                rrm.ResumeDeadline(
                    case_id=case_id,
                    key="respondent_answer",
                    actor="sam",
                    role="supervisor",
                    reason=f"Secretariat reopened {k}",
                )
            )


@dataclass
class Seeded:
    case_id: str
    token: str
    seconds: float
    clone_seconds: float
    history_seconds: float


def build(url: str, cases: int = CASES) -> Seeded:
    """Fill a fresh database; return the big case's id and ana's token."""
    t0 = time.perf_counter()
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        days=2
    )
    clock = FakeClock(base)
    sql = make_engine(url)
    try:
        engine = rrm.bootstrap(sql, clock=clock, upgrade=True)
        case_id = engine.open_case(_open(base)).case_id
        with sql.connect() as conn:
            case = _rows(CASE, conn, case_id)[0]
            officers = _rows(CASE_OFFICER, conn, case_id)
            events = _rows(CASE_EVENT, conn, case_id)
            deadlines = _rows(DEADLINE, conn, case_id)
        t_clone = time.perf_counter()
        with sql.begin() as conn:
            conn.execute(
                sa.insert(FACILITY), [_facility(j) for j in range(1, FACILITIES)]
            )
        day_cols = ("due_at", "anchor_at", "opened_at", "closed_at", "next_action_at")
        for lo in range(1, cases, CHUNK):
            rows: dict[sa.Table, list[dict[str, Any]]] = {
                CASE: [],
                CASE_OFFICER: [],
                CASE_EVENT: [],
                DEADLINE: [],
            }
            for i in range(lo, min(lo + CHUNK, cases)):
                cid = f"c{i:08d}"
                days = timedelta(days=i // PER_DAY)
                moved = days + timedelta(minutes=i % PER_DAY)
                c = {
                    **case,
                    "case_id": cid,
                    "external_ref": f"RRM-MX-{(i * 7_919) % cases:06d}",
                    "facility_id": f"MXF{i % FACILITIES:05d}",
                }
                _moved(c, ("opened_at", "updated_at", "last_event_at"), moved)
                rows[CASE].append(c)
                rows[CASE_OFFICER] += [{**o, "case_id": cid} for o in officers]
                for e in events:
                    row = {**e, "case_id": cid}
                    _moved(row, ("occurred_at", "recorded_at"), moved)
                    rows[CASE_EVENT].append(row)
                for k, d in enumerate(deadlines):
                    row = {**d, "deadline_id": f"d{i:08d}{k}", "case_id": cid}
                    _moved(row, day_cols, days)
                    row["due_date"] = d["due_date"] - days
                    rows[DEADLINE].append(row)
            with sql.begin() as conn:
                for table in (CASE, CASE_OFFICER, CASE_EVENT, DEADLINE):
                    conn.execute(sa.insert(table), rows[table])
        cloned = time.perf_counter() - t_clone
        t1 = time.perf_counter()
        _fire_history(engine, clock, case_id)
        fired = time.perf_counter() - t1
        if len(engine.history(case_id)) != HISTORY:
            msg = f"the big case has {len(engine.history(case_id))} entries"
            raise RuntimeError(msg)
        _, token = create_token(
            SqlCredentialStore(sql),
            principal=OFFICER,
            roles=("ustr",),
            agencies=("USTR",),
            created_by="B7",
            now=datetime.now(UTC),
        )
        if url.startswith("postgresql"):
            with sql.connect() as conn:
                names = (CASE, CASE_OFFICER, CASE_EVENT, DEADLINE, FACILITY)
                conn.execute(sa.text(f"ANALYZE {', '.join(t.name for t in names)}"))
                conn.commit()
    finally:
        sql.dispose()
    return Seeded(case_id, token, time.perf_counter() - t0, cloned, fired)


# -- the server process ---------------------------------------------------------------


def _slug(label: str) -> str:
    """The profile file of a page label."""
    return re.sub(r"\W+", "_", label) + ".prof"


class Timing:
    """Outermost ASGI middleware: the server time of every request, by page label.

    The client names the page in ``x-b7-page``; GET TIMINGS returns the records so
    far (and forgets them). With *profile*, each labelled request runs under
    cProfile and GET PROFILE writes one pstats file per label into that folder.
    """

    def __init__(self, app: Any, profile: Path | None = None) -> None:
        self.app = app
        self.records: list[tuple[str, int, float]] = []
        self.profile = profile
        self.profiles: dict[str, list[cProfile.Profile]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in (TIMINGS, PROFILE):
            await self._answer(scope, send)
            return
        label = dict(scope["headers"]).get(b"x-b7-page", b"").decode()
        status = 0

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        prof = cProfile.Profile() if self.profile is not None and label else None
        start = time.perf_counter()
        if prof is not None:
            prof.enable()
        try:
            await self.app(scope, receive, sending)
        finally:
            if prof is not None:
                prof.disable()
                self.profiles.setdefault(label, []).append(prof)
            if label:
                self.records.append((label, status, time.perf_counter() - start))

    async def _answer(self, scope: Any, send: Any) -> None:
        if scope["path"] == TIMINGS:
            body = json.dumps(self.records).encode()
            self.records = []
        else:
            assert self.profile is not None
            for label, profs in self.profiles.items():
                stats = pstats.Stats(profs[0])
                for p in profs[1:]:
                    stats.add(p)
                stats.dump_stats(self.profile / _slug(label))
            body = json.dumps(sorted(self.profiles)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def serve_child(url: str, port: int, profile: str) -> None:
    """Run the app ``rrm serve`` builds, timed, until SIGINT (a child process)."""
    import structlog
    import uvicorn

    from rrm.cli.serve import _Options, build_app

    # As rrm serve's processes: warnings only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    if profile:
        import anyio.to_thread

        async def inline(func: Any, *args: Any, **_: Any) -> Any:
            return func(*args)

        # One thread does all the work, so cProfile sees it (profile mode only).
        anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    app = build_app(
        _Options(
            db=url,
            public_url=f"http://127.0.0.1:{port}",
            session_secret=secrets.token_urlsafe(32),
        )
    )
    timed = Timing(app, Path(profile) if profile else None)
    # What rrm.cli.serve.run_server does, with the timing middleware outside.
    uvicorn.run(timed, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def server(url: str, log: Path, profile: Path | None = None) -> Iterator[str]:
    """This file's server child on loopback; yield its base URL; stop it after."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, __file__, "--serve", url, "--port", str(port)]
    args += ["--profile-dir", str(profile)] if profile is not None else []
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                msg = f"the B7 server did not start:\n{tail}"
                raise RuntimeError(msg)
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the client ---------------------------------------------------------------------


@dataclass
class Page:
    """A console page and the API requests that return the same data."""

    name: str
    console: tuple[str, dict[str, str]]
    api: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    rounds: int = 0
    check: str = "list"


#: History entries the console's case page shows before "show all".
SHOWN = HISTORY_SHOWN


def pages(case_id: str, n_list: int, n_case: int) -> list[Page]:
    api = "/api/v1/cases"
    return [
        Page("/cases", ("/cases", {}), [(api, {"limit": "50"})], n_list),
        Page(
            f"/cases?q={CITY_QUERY}",
            ("/cases", {"q": CITY_QUERY}),
            [(api, {"limit": "50", "q": CITY_QUERY})],
            n_list,
        ),
        Page(
            f"/cases?q={NAME_QUERY}",
            ("/cases", {"q": NAME_QUERY}),
            [(api, {"limit": "50", "q": NAME_QUERY})],
            n_list,
        ),
        Page("/cases?sort=reference", ("/cases", {"sort": "reference"}), [], n_list),
        Page(
            f"/cases/{{id}} ({HISTORY:,} entries, newest {SHOWN} shown)",
            (f"/cases/{case_id}", {}),
            [(f"{api}/{case_id}", {}), (f"{api}/{case_id}/history", {})],
            n_case,
            check="case",
        ),
        Page(
            f"/cases/{{id}}?history=all ({HISTORY:,} entries shown)",
            (f"/cases/{case_id}", {"history": "all"}),
            [(f"{api}/{case_id}", {}), (f"{api}/{case_id}/history", {})],
            n_case,
            check="case-all",
        ),
    ]


def sign_in(client: httpx.Client, token: str) -> None:
    form = client.get("/sign-in")
    form.raise_for_status()
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if found is None:
        msg = "no CSRF token on the sign-in page"
        raise RuntimeError(msg)
    answer = client.post(
        "/sign-in",
        data={"csrf_token": found.group(1), "token": token, "next": "/cases"},
    )
    if answer.status_code != 303 or answer.headers.get("location") != "/cases":
        msg = f"sign-in refused: {answer.status_code} {answer.text[:500]}"
        raise RuntimeError(msg)


def _check(page: Page, console: httpx.Response, api: list[httpx.Response]) -> None:
    """Refuse an answer that is not the page expected (rows, entries, chain)."""
    for r in (console, *api):
        if r.status_code != 200:
            msg = f"{r.request.url}: {r.status_code} {r.text[:500]}"
            raise RuntimeError(msg)
    html = console.text
    if page.check == "list":
        rows = html.count('<td><a href="/cases/')
        if rows != 50:
            msg = f"{page.name}: {rows} rows on the console page"
            raise RuntimeError(msg)
        for r in api:
            items = r.json()["items"]
            if len(items) != 50:
                msg = f"{page.name}: {len(items)} API items"
                raise RuntimeError(msg)
    else:
        entries = len(re.findall(r"<tr><td>\d+</td><td>", html))
        wanted = HISTORY if page.check == "case-all" else SHOWN
        if entries != wanted or "Chain intact" not in html:
            msg = f"{page.name}: {entries} history rows on the console page"
            raise RuntimeError(msg)
        if len(api[1].json()["entries"]) != HISTORY:
            msg = f"{page.name}: API history is not {HISTORY} entries"
            raise RuntimeError(msg)


@dataclass
class Measured:
    console: list[float]
    api: list[float]  # per round, the sum of the API requests' server times
    client: list[float]
    api_client: list[float]
    size: int


def measure(base: str, token: str, todo: list[Page]) -> dict[str, Measured]:
    """Run the rounds; return server times (ms) per page, from the server."""
    rounds = max(p.rounds for p in todo)
    client_ms: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    with (
        httpx.Client(base_url=base, timeout=60) as console,
        httpx.Client(
            base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as api,
    ):
        sign_in(console, token)

        def one(r: int, page: Page) -> None:
            t0 = time.perf_counter()
            got = console.get(
                page.console[0],
                params=page.console[1],
                headers={"x-b7-page": f"console {page.name}"},
            )
            t1 = time.perf_counter()
            answers = [
                api.get(path, params=params, headers={"x-b7-page": f"api {page.name}"})
                for path, params in page.api
            ]
            t2 = time.perf_counter()
            _check(page, got, answers)
            if r >= 0:
                client_ms.setdefault(f"console {page.name}", []).append(
                    (t1 - t0) * 1000
                )
                client_ms.setdefault(f"api {page.name}", []).append((t2 - t1) * 1000)
                sizes[page.name] = len(got.content)

        for r in range(-WARMUP, 0):
            for page in todo:
                one(r, page)
        console.get(TIMINGS).raise_for_status()  # forget the warm-up
        for r in range(rounds):
            for page in todo:
                if r < page.rounds:
                    one(r, page)
        records = console.get(TIMINGS).json()
    by_label: dict[str, list[float]] = {}
    for label, status, seconds in records:
        if status != 200:
            msg = f"{label}: status {status}"
            raise RuntimeError(msg)
        by_label.setdefault(label, []).append(seconds * 1000)
    out = {}
    for page in todo:
        mine = by_label.get(f"console {page.name}", [])
        theirs = by_label.get(f"api {page.name}", [])
        if len(mine) != page.rounds or len(theirs) != page.rounds * len(page.api):
            msg = f"{page.name}: {len(mine)} console and {len(theirs)} API timings"
            raise RuntimeError(msg)
        n = len(page.api)
        sums = (
            [sum(theirs[k * n : (k + 1) * n]) for k in range(page.rounds)] if n else []
        )
        out[page.name] = Measured(
            mine,
            sums,
            client_ms[f"console {page.name}"],
            client_ms[f"api {page.name}"],
            sizes[page.name],
        )
    return out


# -- entry --------------------------------------------------------------------------


def _p(values: list[float], q: float) -> float:
    return percentile(values, q)


def rows_for(
    kind: str, seeded: Seeded, got: dict[str, Measured], load: tuple[float, ...]
) -> list[Row]:
    rows = []
    for k, (name, m) in enumerate(got.items()):
        p50, p95 = _p(m.console, 50), _p(m.console, 95)
        api = ""
        ref = None
        if m.api:
            ref = _p(m.api, 95)
            calls = " + history (sum per round)" if "{id}" in name else ""
            api = (
                f"API{calls} p50 {_p(m.api, 50):.1f} ms, p95 {ref:.1f} ms; "
                f"client round trip p50 {_p(m.api_client, 50):.1f} ms; "
            )
        else:
            api = "no API reference (the API cannot sort by reference); "
        note = (
            f"console p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(m.console):.1f} ms, "
            f"client round trip p50 {_p(m.client, 50):.1f} ms, "
            f"{m.size / 1024:.0f} KiB HTML; {api}{len(m.console)} requests"
        )
        if k == 0:
            note += (
                f"; {CASES:,} cases over {FACILITIES:,} facilities seeded in "
                f"{seeded.seconds:.0f} s (bulk clone {seeded.clone_seconds:.1f} s, "
                f"{HISTORY - 1} engine commands {seeded.history_seconds:.1f} s); "
                "server time by an outermost ASGI timing middleware in one uvicorn "
                f"process (the app rrm serve builds); os.cpu_count()={os.cpu_count()}"
                ", server, database and client share them; load average before / "
                f"after the requests {load[0]:.1f} / {load[1]:.1f}"
            )
        rows.append(
            Row(
                f"B7 console {name}, {kind}, p95",
                p95,
                "ms",
                reference=ref,
                reference_unit="ms API p95" if ref is not None else "",
                target=f"p95 < {TARGET_MS:.0f} ms",
                met=p95 < TARGET_MS,
                note=note,
            )
        )
    return rows


def run(*, quick: bool = False, postgres: bool = False) -> list[Row]:
    quiet()
    n_list, n_case = (20, 20) if quick else (200, 100)
    rows: list[Row] = []
    for kind in ["sqlite"] + (["postgres"] if postgres else []):
        with (
            tempfile.TemporaryDirectory() as tmp,
            database(kind, Path(tmp), name="b7") as url,
        ):
            seeded = build(url)
            with server(url, Path(tmp) / "serve.log") as base:
                before = os.getloadavg()[0]
                got = measure(base, seeded.token, pages(seeded.case_id, n_list, n_case))
                load = (before, os.getloadavg()[0])
            rows += rows_for(kind, seeded, got, load)
    return rows


def profile(*, quick: bool, postgres: bool, top: int) -> None:
    """Print where the server's time goes per console page (cProfile)."""
    quiet()
    n = 20 if quick else 100
    kind = "postgres" if postgres else "sqlite"
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(kind, Path(tmp), name="b7") as url,
    ):
        seeded = build(url)
        folder = Path(tmp) / "prof"
        folder.mkdir()
        todo = pages(seeded.case_id, n, n)
        with server(url, Path(tmp) / "serve.log", profile=folder) as base:
            measure(base, seeded.token, todo)
            httpx.get(f"{base}{PROFILE}", timeout=600).raise_for_status()
        for page in todo:
            for side in ("console", "api"):
                path = folder / _slug(f"{side} {page.name}")
                if not path.exists():
                    continue
                out = io.StringIO()
                stats = pstats.Stats(str(path), stream=out)
                stats.sort_stats("cumulative").print_stats(top)
                stats.sort_stats("tottime").print_stats(top)
                print(f"==== {kind} {side} {page.name}: {n} requests ====")
                print(out.getvalue())


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--profile", action="store_true", help="cProfile the pages")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--profile-dir", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve_child(a.serve, a.port, a.profile_dir)
    elif a.profile:
        profile(quick=a.quick, postgres=a.postgres, top=a.top)
    else:
        for row in run(quick=a.quick, postgres=a.postgres):
            print(row)
