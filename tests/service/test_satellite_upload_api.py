"""The satellite upload API: one file per request (several are refused, not silently cut to the last), and old
rows that become new fires named in the answer, as ``firms ingest`` names them (service.incidents.freshness)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from satellite.firms import read_firms_csv
from service.config import Settings
from service.db import make_session_factory, transaction, utcnow
from service.demo import load_demo
from service.flows import ingest_hotspots
from service.incidents.freshness import OLD_ROWS_AFTER, old_new_rows
from service.incidents.tables import Observation
from service.regions.service import RegionIndexCache
from tests.service.test_api import signed_in_device
from tests.service.test_fire_point_windows import ADMIN

MODIS_HEADER = (
    "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight\n"
)
#: Two pixels in 东河乡 (DEMO02) and one outside every unit (Hubei).
INSIDE = [(44.36, 125.73), (44.37, 125.74)]
OUTSIDE = [(30.0, 110.0)]


def modis(where: list[tuple[float, float]], at: datetime) -> str:
    """MODIS rows at ``where``, observed at ``at`` (UTC, to the minute)."""
    day, hhmm = at.strftime("%Y-%m-%d"), at.strftime("%H%M")
    return "".join(f"{lat},{lon},330.5,1.0,1.0,{day},{hhmm},T,80,6.1NRT,290.0,15.2,D\n" for lat, lon in where)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The service with the demo region, signed in as a device."""
    yield from signed_in_device(Settings(data_dir=tmp_path / "var", demo=True))


def satellite_rows(client: TestClient) -> int:
    app = client.app
    with app.state.session_factory() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(Observation)) or 0)


def post(client: TestClient, *files: tuple[str, tuple[str, bytes, str]], **fields: str) -> dict[str, Any]:
    response = client.post("/api/v1/observations/satellite", files=list(files), data=fields)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def csv(name: str, text: str) -> tuple[str, tuple[str, bytes, str]]:
    return ("file", (name, text.encode(), "text/csv"))


# --- one file per request ------------------------------------------------------------------------------------------


def test_several_files_under_file_are_refused_naming_the_count_and_nothing_is_ingested(client: TestClient) -> None:
    """The form parser kept the last ``file`` and dropped the others: two days of fires became one, silently."""
    fresh = MODIS_HEADER + modis(INSIDE, utcnow() - timedelta(hours=3))
    response = client.post(
        "/api/v1/observations/satellite", files=[csv("a.csv", fresh), csv("b.csv", fresh), csv("c.csv", fresh)]
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "send one FIRMS CSV per request, under 'file': this request has 3 files under 'file'; nothing was ingested"
    )
    assert satellite_rows(client) == 0


def test_a_file_under_another_field_is_refused_naming_that_field(client: TestClient) -> None:
    fresh = MODIS_HEADER + modis(INSIDE, utcnow() - timedelta(hours=3))
    other = ("files", ("b.csv", fresh.encode(), "text/csv"))
    response = client.post("/api/v1/observations/satellite", files=[csv("a.csv", fresh), other, other])
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "1 file under 'file', 2 files under 'files'" in detail
    assert "nothing was ingested" in detail
    assert satellite_rows(client) == 0


def test_a_long_field_name_is_quoted_cut_short(client: TestClient) -> None:
    fresh = MODIS_HEADER + modis(INSIDE, utcnow() - timedelta(hours=3))
    other = ("x" * 1000, ("b.csv", fresh.encode(), "text/csv"))
    response = client.post("/api/v1/observations/satellite", files=[csv("a.csv", fresh), other])
    assert response.status_code == 422, response.text
    assert f"1 file under '{'x' * 80}'" in response.json()["detail"]
    assert len(response.json()["detail"]) < 300


def test_many_fields_are_named_up_to_five(client: TestClient) -> None:
    fresh = MODIS_HEADER + modis(INSIDE, utcnow() - timedelta(hours=3))
    others = [(f"f{n}", (f"{n}.csv", fresh.encode(), "text/csv")) for n in range(8)]
    response = client.post("/api/v1/observations/satellite", files=[csv("a.csv", fresh), *others])
    assert response.status_code == 422, response.text
    assert "1 file under 'file', 1 file under 'f0'," in response.json()["detail"]
    assert "1 file under 'f3' and 4 more fields; nothing was ingested" in response.json()["detail"]


def test_one_file_with_a_text_field_beside_it_is_taken(client: TestClient) -> None:
    """Text fields are not files: a client's note beside the CSV changes nothing."""
    answer = post(client, csv("fresh.csv", MODIS_HEADER + modis(INSIDE, utcnow() - timedelta(hours=3))), note="x")
    assert (answer["rows"], answer["new"]) == (2, 2)


def test_no_file_at_all_is_still_fastapis_own_422(client: TestClient) -> None:
    response = client.post("/api/v1/observations/satellite", data={"note": "x"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


# --- old rows ------------------------------------------------------------------------------------------------------


def test_old_rows_inside_the_units_are_ingested_and_named_in_the_answer(client: TestClient) -> None:
    """The API cannot ask first as `firms ingest` does on a terminal: the file is ingested and the answer says how
    many rows were old news made new fires, and the oldest; the row outside every unit is not counted."""
    now = utcnow().replace(second=0, microsecond=0)
    old_at = now - timedelta(days=200)
    text = MODIS_HEADER + modis(INSIDE + OUTSIDE, old_at)
    answer = post(client, csv("old.csv", text))
    assert (answer["rows"], answer["new"]) == (3, 2)  # the pixel far from every unit is not kept
    assert answer["new_incidents"]  # ingested all the same
    assert answer["old_rows"] == {"count": 2, "oldest": old_at.isoformat().replace("+00:00", "Z"), "older_than_days": 2}
    oldest = old_at.strftime("%Y-%m-%d %H:%M UTC")
    assert answer["warnings"] == [
        f"2 new row(s) inside the units were observed more than 2 days ago (the oldest {oldest}); ingested, their "
        "fires open incidents and alert their townships now, as new fires. For history only (fixed heat sources; "
        "no incidents, no alerts) import such files with `strawfire firms history`."
    ]
    # Sent again: every row is stored, nothing becomes a fire, nothing to warn about.
    again = post(client, csv("old.csv", text))
    assert (again["new"], again["new_incidents"], again["old_rows"], again["warnings"]) == (0, [], None, [])


def test_fresh_rows_carry_no_warning_and_only_the_old_ones_are_counted(client: TestClient) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    fresh = post(client, csv("fresh.csv", MODIS_HEADER + modis(INSIDE, now - timedelta(hours=3))))
    assert fresh["new"] == 2
    assert (fresh["old_rows"], fresh["warnings"]) == (None, [])
    # Just inside the two days is fresh; one hour past them is old.
    mixed = MODIS_HEADER + modis([(44.36, 125.75)], now - timedelta(days=2, hours=-1))
    mixed += modis([(44.38, 125.73)], now - timedelta(days=2, hours=1))
    answer = post(client, csv("mixed.csv", mixed))
    assert answer["new"] == 2
    assert answer["old_rows"]["count"] == 1
    assert len(answer["warnings"]) == 1


# --- the shared rule, on an injected clock -------------------------------------------------------------------------

ACQUIRED = datetime(2025, 10, 20, 4, 10, tzinfo=UTC)


def test_old_new_rows_on_an_injected_clock(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    indexes = RegionIndexCache(500)
    hotspots = read_firms_csv(MODIS_HEADER + modis(INSIDE + OUTSIDE, ACQUIRED)).hotspots
    with factory() as session:
        assert old_new_rows(session, hotspots, indexes, ACQUIRED + OLD_ROWS_AFTER) == []  # not *more* than 2 days
        late = ACQUIRED + OLD_ROWS_AFTER + timedelta(minutes=1)
        assert [h.key for h in old_new_rows(session, hotspots, indexes, late)] == [h.key for h in hotspots[:2]]
    with transaction(factory) as session:
        ingest_hotspots(session, hotspots[:1], indexes=indexes, settings=Settings(), actor=ADMIN)
    with factory() as session:  # the stored row is left out: ingesting it again makes no fire
        assert [h.key for h in old_new_rows(session, hotspots, indexes, late)] == [hotspots[1].key]
        # screening.coverage_from_regions = false: every row is screened and may become a fire, wherever it lies
        everywhere = old_new_rows(session, hotspots, indexes, late, in_units_only=False)
        assert [h.key for h in everywhere] == [hotspots[1].key, hotspots[2].key]


# --- rows outside the units ----------------------------------------------------------------------------------------


def test_rows_outside_the_units_are_counted_as_read_and_held_but_not_stored(client: TestClient) -> None:
    """The upload drops rows that cannot reach the units as it reads them (a global daily file is ~99 % of them) and
    says how many: in ``rows`` and ``held.outside_coverage``, as ``firms ingest`` does."""
    far = [(30.0 + i / 100, 110.0) for i in range(50)] + [(-33.9, 151.2), (64.1, -21.9)]
    text = MODIS_HEADER + modis([*INSIDE, *far], utcnow() - timedelta(hours=3))
    first = post(client, csv("global.csv", text))
    assert (first["rows"], first["new"], first["duplicates"]) == (54, 2, 0)
    assert first["held"] == {"outside_coverage": 52}
    assert satellite_rows(client) == 2
    again = post(client, csv("global.csv", text))  # only stored rows are duplicates; the others are counted again
    assert (again["rows"], again["new"], again["duplicates"], again["held"]) == (54, 0, 2, {"outside_coverage": 52})
    assert satellite_rows(client) == 2
