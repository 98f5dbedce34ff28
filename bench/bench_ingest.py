"""Benchmark: observations ingested per second, and ingest → webhook latency, on SQLite and PostgreSQL.

Each observation is a separate fire (so each opens an incident and queues one alert): the worst case for the
closed loop. Throughput is measured in batches (as a FIRMS file arrives); latency with the real alert worker
(polling every 0.2 s, as configured here) delivering to a real HTTP receiver on 127.0.0.1:

* sustained — one new fire every 0.25 s for 15 s;
* burst — 200 new fires in one transaction.

    .venv/bin/python bench/bench_ingest.py [--postgres URL]   (or STRAWFIRE_TEST_POSTGRES_URL)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import shapely

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from service.alerts.service import create_recipient  # noqa: E402
from service.alerts.tables import Channel  # noqa: E402
from service.alerts.worker import AlertWorker  # noqa: E402
from service.auth.service import SYSTEM  # noqa: E402
from service.config import AlertSettings, Settings  # noqa: E402
from service.db import make_engine, make_session_factory, transaction, upgrade  # noqa: E402
from service.demo import load_demo  # noqa: E402
from service.flows import ingest_observations  # noqa: E402
from service.incidents.fusion import ObservationIn, ObservationKind  # noqa: E402
from service.regions.service import RegionIndexCache  # noqa: E402
from tests.httpserver import http_receiver  # noqa: E402

_counter = 0


def fires(n: int, at: datetime) -> list[ObservationIn]:
    """``n`` separate fires inside the DEMO county (a grid of 1 km pixels, 1.5 km apart)."""
    global _counter
    out = []
    for _ in range(n):
        i = _counter
        _counter += 1
        lon = 125.505 + 0.0195 * (i % 15) + 0.0003 * ((i // 225) % 10)
        lat = 44.155 + 0.0135 * ((i // 15) % 15) + 0.0003 * ((i // 2250) % 10)
        pixel = shapely.box(lon - 0.004, lat - 0.003, lon + 0.004, lat + 0.003)
        out.append(ObservationIn(ObservationKind.SATELLITE, f"bench-{i}", at + timedelta(days=i), lat, lon, pixel, 0.8))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(url: str, label: str) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    factory = make_session_factory(engine)
    settings = Settings()
    indexes = RegionIndexCache(500)
    received: dict[str, float] = {}
    lock = threading.Lock()
    with http_receiver() as receiver:

        def respond(request):  # type: ignore[no-untyped-def]
            with lock:
                received[request.headers["Idempotency-Key"].split(":")[0]] = time.perf_counter()
            return 200, {}, b"{}"

        receiver.respond = respond
        with transaction(factory) as session:
            load_demo(session)
            for code in ("DEMO01", "DEMO02", "DEMO03", "DEMO04"):
                create_recipient(
                    session,
                    name=code,
                    unit_code=code,
                    channel=Channel.WEBHOOK,
                    target=receiver.url + "/" + code,
                    rate_per_min=10_000,
                )
        start = datetime(2020, 1, 1, tzinfo=UTC)

        # Throughput: 10 batches of 500 (no worker running, so ingest alone is timed).
        batches = [fires(500, start) for _ in range(10)]
        t0 = time.perf_counter()
        for batch in batches:
            with transaction(factory) as session:
                ingest_observations(session, batch, indexes=indexes, settings=settings, actor=SYSTEM)
        elapsed = time.perf_counter() - t0
        print(f"[{label}] ingest: {5000 / elapsed:,.0f} observations/s (5,000 new fires in batches of 500)")
        with engine.begin() as conn:  # the backlog is not part of the latency runs
            conn.execute(text("UPDATE alerts SET status = 'sent'"))

        worker = AlertWorker(factory, AlertSettings(poll_interval_s=0.2))
        worker.start()
        try:
            for mode in ("sustained", "burst"):
                submitted: dict[str, float] = {}
                if mode == "sustained":
                    for _ in range(60):
                        with transaction(factory) as session:
                            summary = ingest_observations(
                                session, fires(1, start), indexes=indexes, settings=settings, actor=SYSTEM
                            )
                        submitted[str(summary.new_incidents[0])] = time.perf_counter()
                        time.sleep(0.25)
                else:
                    with transaction(factory) as session:
                        summary = ingest_observations(
                            session, fires(200, start), indexes=indexes, settings=settings, actor=SYSTEM
                        )
                    now = time.perf_counter()
                    submitted = {str(i): now for i in summary.new_incidents}
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    with lock:
                        if all(k in received for k in submitted):
                            break
                    time.sleep(0.05)
                with lock:
                    latencies = [received[k] - t for k, t in submitted.items() if k in received]
                print(
                    f"[{label}] {mode:9s}: {len(latencies)}/{len(submitted)} delivered; ingest→webhook latency "
                    f"p50 {percentile(latencies, 50) * 1000:,.0f} ms, p99 {percentile(latencies, 99) * 1000:,.0f} ms, "
                    f"mean {statistics.fmean(latencies) * 1000:,.0f} ms"
                )
        finally:
            worker.stop()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default=os.environ.get("STRAWFIRE_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run(f"sqlite:///{folder}/bench.sqlite3", "SQLite")
    if args.postgres:
        run(args.postgres, "PostgreSQL")
    else:
        print("PostgreSQL: skipped (give --postgres URL or set STRAWFIRE_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
