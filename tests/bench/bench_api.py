"""B6: fires per second through the case service's HTTP API, beside ``engine.fire``.

Everything runs on one fresh PostgreSQL schema (common.PG; dropped after), on
loopback only. The schema holds ``CLIENTS x CASES_PER_CLIENT`` open usmca-31a cases
opened by a request for review, each with the officer ``ana`` assigned as ``ustr``,
and one API token for ``ana`` (role ustr, agency USTR). Every fire, in-process or
through the API, records ``ustr_certifies_no_panel`` as ``ana`` in the role ``ustr``:
an internal event of review_requested (the state does not change), so a case takes
it again and again; each is one engine transaction persisting a history entry, as
in B1 and B5.

In-process: one thread calls ``engine.fire`` (engine from ``rrm.bootstrap`` with the
service's ``AccessPolicy``, the principal passed as the server passes it) round-robin
over the cases for DURATION seconds, with no server running.

Through the API: ``python -m rrm serve --workers N`` (the real command: uvicorn,
N = 1 and 2 server processes) on the same database. CLIENTS client processes
(``multiprocessing``, spawn: separate from the server and from this process), each
with its own cases and one keep-alive ``httpx.Client``, wait on a barrier, then POST
``/api/v1/cases/{id}/events`` back to back for DURATION seconds. The rate is the
2xx answers over the time from the first client leaving the barrier to the last one
finishing. The server's work per fire is the route's: read the case, fire, render the
case document. Runs of in-process, 1 and 2 server processes are interleaved,
REPEATS times; figures are medians. Target: the API rate per server process is at
least half the in-process rate.

Latency: one more client process offers a fixed RATE requests per second for
PACED seconds, open loop (asyncio and ``httpx.AsyncClient``: request i is sent at
start + i / RATE whether or not earlier ones have been answered), round-robin over
the cases; a request's latency runs from its scheduled send time to its answer, so
a server that falls behind shows it. Reported: p50 and p99, and every non-2xx.
Target: p99 under 50 ms at 100 requests per second, with 1 and with 2 processes.

Everything shares this machine's cores (``os.cpu_count()`` in the notes): the
server processes, PostgreSQL and the client processes.

Run alone:  python tests/bench/bench_api.py [--quick]    (PostgreSQL at common.PG)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

sys.path.insert(0, str(Path(__file__).parent))

import httpx
from common import Row, database, median, open_cmd, quiet

import rrm
from rrm.adapters.sql.credentials import SqlCredentialStore
from rrm.adapters.sql.engine import make_engine
from rrm.domain.access import Principal
from rrm.service.access import AccessPolicy
from rrm.service.credentials import create_token

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext, SpawnProcess
    from multiprocessing.synchronize import Barrier

EVENT = "ustr_certifies_no_panel"
OFFICER = "ana"
CLIENTS = 4
CASES_PER_CLIENT = 25
PROCESSES = (1, 2)
RATE = 100
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
START_TIMEOUT = 60.0
RESULT_TIMEOUT = 600.0
BODY = {"event": EVENT, "role": "ustr", "payload": {"reasons": "B6"}}


# -- in-process ---------------------------------------------------------------------


def in_process(url: str, case_ids: list[str], seconds: float) -> float:
    """Fire round-robin with ``engine.fire`` for *seconds*; return fires/s."""
    sql = make_engine(url)
    try:
        engine = rrm.bootstrap(sql, authorizer=AccessPolicy())
        ana = Principal(
            principal_id=OFFICER,
            roles=frozenset({"ustr"}),
            agencies=frozenset({"USTR"}),
            via="token:b6",
        )
        engine.get(case_ids[0])  # open the pool
        fires = 0
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            for case_id in case_ids:
                engine.fire(
                    rrm.FireEvent(
                        case_id=case_id,
                        event=EVENT,
                        actor=OFFICER,
                        role="ustr",
                        payload=BODY["payload"],
                    ),
                    principal=ana,
                )
                fires += 1
        return fires / (time.monotonic() - start)
    finally:
        sql.dispose()


# -- the server ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``python -m rrm serve`` on loopback, stopped (SIGINT, then SIGKILL) on exit."""

    def __init__(self, url: str, workers: int, log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._args = [
            sys.executable,
            "-m",
            "rrm",
            "serve",
            "--db",
            url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        with self._log.open("ab") as out:
            self._proc = subprocess.Popen(
                self._args, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                tail = self._log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"rrm serve did not start:\n{tail}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- throughput clients -------------------------------------------------------------


def _client(
    base: str,
    token: str,
    case_ids: list[str],
    seconds: float,
    barrier: Barrier,
    out: mp.Queue[dict[str, Any]],
) -> None:
    """One client process: keep-alive POSTs back to back for *seconds*."""
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            client.get(f"/api/v1/cases/{case_ids[0]}").raise_for_status()
            barrier.wait(START_TIMEOUT)
            ok = bad = 0
            start = time.monotonic()
            end = start + seconds
            while time.monotonic() < end:
                for case_id in case_ids:
                    r = client.post(f"/api/v1/cases/{case_id}/events", json=BODY)
                    if r.is_success:
                        ok += 1
                    else:
                        bad += 1
            out.put({"start": start, "end": time.monotonic(), "ok": ok, "bad": bad})
    except BaseException:  # noqa: BLE001 - the parent reports it
        barrier.abort()
        out.put({"error": traceback.format_exc()})


def _gather(
    procs: list[SpawnProcess], out: mp.Queue[dict[str, Any]], expected: int
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + RESULT_TIMEOUT
    while len(results) < expected:
        try:
            results.append(out.get(timeout=1.0))
        except queue.Empty:
            if any(not p.is_alive() for p in procs) or time.monotonic() > deadline:
                break
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.terminate()
            p.join()
    errors = [r["error"] for r in results if "error" in r]
    if errors or len(results) < expected:
        codes = [p.exitcode for p in procs]
        raise RuntimeError(
            f"B6 client(s) failed (exit codes {codes}):\n" + "\n".join(errors)
        )
    return results


def through_api(
    ctx: SpawnContext, base: str, token: str, sets: list[list[str]], seconds: float
) -> tuple[float, int]:
    """CLIENTS processes firing for *seconds*; return 2xx fires/s and non-2xx."""
    barrier = ctx.Barrier(len(sets))
    out: mp.Queue[dict[str, Any]] = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(base, token, ids, seconds, barrier, out))
        for ids in sets
    ]
    for p in procs:
        p.start()
    results = _gather(procs, out, len(procs))
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return sum(r["ok"] for r in results) / wall, sum(r["bad"] for r in results)


# -- latency at a fixed offered load ------------------------------------------------


async def _paced_run(
    base: str, token: str, case_ids: list[str], rate: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=base,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        limits=limits,
    ) as client:
        # Warm up the connections the run will need, outside the measurement.
        await asyncio.gather(
            *(client.get(f"/api/v1/cases/{case_ids[i]}") for i in range(8))
        )

        async def one(case_id: str, due: float) -> None:
            r = await client.post(f"/api/v1/cases/{case_id}/events", json=BODY)
            latencies.append(time.monotonic() - due)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        tasks = []
        total = int(rate * seconds)
        start = time.monotonic() + 0.1
        for i in range(total):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(case_ids[i % len(case_ids)], due)))
        await asyncio.gather(*tasks)
        wall = time.monotonic() - start
    return {"latencies": latencies, "statuses": statuses, "wall": wall}


def _paced(
    base: str,
    token: str,
    case_ids: list[str],
    rate: int,
    seconds: float,
    out: mp.Queue[dict[str, Any]],
) -> None:
    """The open-loop client process."""
    try:
        out.put(asyncio.run(_paced_run(base, token, case_ids, rate, seconds)))
    except BaseException:  # noqa: BLE001 - the parent reports it
        out.put({"error": traceback.format_exc()})


def percentile(values: list[float], p: float) -> float:
    """The *p*-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def paced(
    ctx: SpawnContext, base: str, token: str, case_ids: list[str], seconds: float
) -> dict[str, Any]:
    """Offer RATE requests/s for *seconds* from a client process; its results."""
    out: mp.Queue[dict[str, Any]] = ctx.Queue()
    proc = ctx.Process(target=_paced, args=(base, token, case_ids, RATE, seconds, out))
    proc.start()
    return _gather([proc], out, 1)[0]


# -- entry --------------------------------------------------------------------------


def _setup(url: str) -> tuple[list[list[str]], str]:
    """Open the cases and issue ana's token; return the case ids per client."""
    sql = make_engine(url)
    try:
        engine = rrm.bootstrap(sql, upgrade=True)
        ids = [
            engine.open_case(open_cmd(i, prefix="B6")).case_id
            for i in range(CLIENTS * CASES_PER_CLIENT)
        ]
        _, token = create_token(
            SqlCredentialStore(sql),
            principal=OFFICER,
            roles=("ustr",),
            agencies=("USTR",),
            created_by="B6",
            now=engine.clock.now(),
        )
    finally:
        sql.dispose()
    sets = [ids[k::CLIENTS] for k in range(CLIENTS)]
    return sets, token


def run(*, quick: bool = False) -> list[Row]:
    quiet()
    ctx = mp.get_context("spawn")
    duration, repeats, paced_s = (3.0, 1, 5.0) if quick else (10.0, 3, 20.0)
    cpus = os.cpu_count()
    inproc: list[float] = []
    api: dict[int, list[float]] = {n: [] for n in PROCESSES}
    refused: dict[int, int] = dict.fromkeys(PROCESSES, 0)
    lat: dict[int, dict[str, Any]] = {}
    with (
        database("postgres", Path(), name="b6") as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        sets, token = _setup(url)
        all_ids = [i for ids in sets for i in ids]
        for r in range(repeats):
            inproc.append(in_process(url, all_ids, duration))
            for n in PROCESSES:
                with Server(url, n, Path(tmp) / f"serve-{n}.log") as server:
                    rate, bad = through_api(ctx, server.base, token, sets, duration)
                    api[n].append(rate)
                    refused[n] += bad
                    if r == repeats - 1:
                        lat[n] = paced(ctx, server.base, token, all_ids, paced_s)
    ref = median(inproc)
    spread = ", ".join(f"{x:.0f}" for x in inproc)
    rows = [
        Row(
            "B6 in-process engine.fire, PostgreSQL (1 thread)",
            ref,
            "fires/s",
            note=f"{len(all_ids)} cases, {EVENT} as {OFFICER} (AccessPolicy), "
            f"{duration:.0f} s runs, median of {repeats} ({spread})",
        )
    ]
    for n in PROCESSES:
        total = median(api[n])
        spread = ", ".join(f"{x:.0f}" for x in api[n])
        rows.append(
            Row(
                f"B6 API fire, {n} server process{'es' if n > 1 else ''} "
                "(per process, vs in-process)",
                total / n,
                "fires/s/process",
                reference=ref,
                reference_unit="fires/s in-process",
                target=f">= {TARGET_RATIO} x in-process",
                met=total / n / ref >= TARGET_RATIO,
                note=f"rrm serve --workers {n}: {total:.0f} fires/s in all "
                f"({spread}); {CLIENTS} client processes x keep-alive, "
                f"{duration:.0f} s runs, median of {repeats}; non-2xx: {refused[n]}; "
                f"os.cpu_count()={cpus}, server, PostgreSQL and clients share them",
            )
        )
    for n in PROCESSES:
        got = lat[n]
        ms = [x * 1000 for x in got["latencies"]]
        p50, p99 = percentile(ms, 50), percentile(ms, 99)
        ok = sum(v for k, v in got["statuses"].items() if 200 <= k < 300)
        other = {k: v for k, v in got["statuses"].items() if not 200 <= k < 300}
        rows.append(
            Row(
                f"B6 API p99 latency at {RATE} req/s, {n} server "
                f"process{'es' if n > 1 else ''}",
                p99,
                "ms",
                target=f"< {TARGET_P99_MS:.0f} ms",
                met=p99 < TARGET_P99_MS and not other,
                note=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(ms):.1f} ms, "
                f"mean {statistics.fmean(ms):.1f} ms; {len(ms)} fires offered open "
                f"loop over {paced_s:.0f} s ({len(ms) / got['wall']:.0f}/s "
                f"achieved), {ok} 2xx, other: {other or 'none'}",
            )
        )
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    for row in run(quick=p.parse_args().quick):
        print(row, row.ratio)
