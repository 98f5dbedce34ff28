"""Two satellite ingests of overlapping data at the same time (the in-service poller and a manual `firms ingest`, or
an upload): the overlap counts as duplicates, and neither file is lost."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from satellite.firms import read_firms_csv
from service import flows
from service.flows import ingest_hotspots
from service.incidents.service import IngestSummary
from service.incidents.tables import Incident, Observation
from tests.service.test_fire_point_windows import ADMIN, HEADER, DemoCounty

# Nine VIIRS pixels of one NOAA-20 pass inside the demo county, 2.8 km apart (nine fires). One file holds the
# first six, the other the last six: three pixels are in both.
PIXELS = [
    f"{44.17 + 0.025 * i:.5f},125.60000,330.1,0.39,0.36,2025-10-20,510,N20,VIIRS,n,2.0NRT,295.0,5.0,D\n"
    for i in range(9)
]
FIRST_FILE = HEADER + "".join(PIXELS[:6])
SECOND_FILE = HEADER + "".join(PIXELS[3:])
#: How long the first ingest waits, at its first write, for the second to finish: long enough for the second to
#: commit when nothing makes it wait; the first goes on after it either way.
HOLD_S = 3.0


def test_two_ingests_of_overlapping_files_at_once_both_land_and_the_overlap_is_duplicate(engine: Engine) -> None:
    """The loser of the race used to fail with IntegrityError (UNIQUE observations.kind, observations.source_key):
    each ingest read which keys were stored, and the other committed the overlap before it inserted them. A
    traceback from `firms ingest` (exit 1), a 500 from the upload, and the whole file rolled back."""
    demo = DemoCounty(engine)
    first_writing, second_done = threading.Event(), threading.Event()
    outcomes: dict[str, IngestSummary | BaseException] = {}

    def ingest(name: str, csv: str, hold_at_first_write: bool) -> None:
        try:
            with demo.factory() as session, session.begin():
                if hold_at_first_write:

                    def hold(*_: Any) -> None:
                        # The first ingest has read what is stored and is about to write: let the second run now.
                        if not first_writing.is_set():
                            first_writing.set()
                            second_done.wait(HOLD_S)

                    event.listen(session, "before_flush", hold)
                hotspots = read_firms_csv(csv).hotspots
                outcomes[name] = ingest_hotspots(
                    session, hotspots, indexes=demo.indexes, settings=demo.settings, actor=ADMIN
                )
        except BaseException as exc:  # the test reports it below
            outcomes[name] = exc
        finally:
            first_writing.set()  # never leave the second waiting if the first failed before writing
            if name == "second":
                second_done.set()

    first = threading.Thread(target=ingest, args=("first", FIRST_FILE, True))
    second = threading.Thread(target=ingest, args=("second", SECOND_FILE, False))
    first.start()
    assert first_writing.wait(60)
    second.start()
    first.join(60)
    second.join(60)

    failures = {name: outcome for name, outcome in outcomes.items() if isinstance(outcome, BaseException)}
    assert not failures, failures
    summaries = [outcomes["first"], outcomes["second"]]
    assert all(isinstance(s, IngestSummary) for s in summaries)
    results = [s for s in summaries if isinstance(s, IngestSummary)]
    assert sum(s.new for s in results) == 9  # every pixel stored once …
    assert sum(s.duplicates for s in results) == 3  # … and the overlap counted as duplicates
    assert sum(len(s.new_incidents) for s in results) == 9
    assert sum(s.fire_points for s in results) == 9  # the overlap's fire points counted once
    with demo.factory() as session:
        assert session.scalar(select(func.count()).select_from(Observation)) == 9


# The same VIIRS pixel twice: near-real-time, then its standard processing (refined by a few metres), weeks later.
NRT_PIXEL = "44.33012,125.55031,333.1,0.39,0.36,2025-10-20,530,N,VIIRS,n,2.0NRT,291.4,4.1,D\n"
SP_PIXEL = "44.33020,125.55040,333.1,0.39,0.36,2025-10-20,530,N,VIIRS,n,2,291.4,4.1,D\n"


def test_an_nrt_file_stored_while_its_sp_file_is_screened_still_supersedes_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SP/NRT twin check read the database before the ingest lock: an NRT file committed while the SP file
    was being screened (the poller and a manual back-fill) left the SP row a new fire, a second incident and a
    second alert for one fire. The twins are now looked up again under the lock."""
    demo = DemoCounty(engine)
    screen = flows.build_screener
    nrt_stored: list[IngestSummary] = []
    landing = threading.Event()

    def build_screener_while_the_nrt_file_lands(*args: Any, **kwargs: Any) -> Any:
        if not landing.is_set():  # the other ingest commits between this one's twin check and its lock
            landing.set()
            nrt_stored.append(demo.ingest(HEADER + NRT_PIXEL))
        return screen(*args, **kwargs)

    monkeypatch.setattr(flows, "build_screener", build_screener_while_the_nrt_file_lands)
    later = demo.ingest(HEADER + SP_PIXEL)
    assert len(nrt_stored[0].new_incidents) == 1
    assert later.held == {"superseded": 1}
    assert (later.received, later.new, later.new_incidents) == (1, 0, [])
    with demo.factory() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 1
