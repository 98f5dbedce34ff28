"""Screening in the service gives the same decisions however the detections are batched (one file or many polls)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from tests.service.test_fire_point_windows import DemoCounty

HEADER = (
    "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight\n"
)
CHIMNEY = (44.2003, 125.6004)  # inside the demo county
OTHER_CHIMNEY = (44.3003, 125.7004)  # another cell of it
START = datetime(2025, 10, 1, 5, 30, tzinfo=UTC)


def chimney_days(days: range, where: tuple[float, float] = CHIMNEY) -> str:
    return "".join(
        f"{where[0]},{where[1]},330.5,1.0,1.0,{when:%Y-%m-%d},{when:%H%M},A,80,6.1NRT,290.0,15.2,D\n"
        for when in (START + timedelta(days=day) for day in days)
    )


def test_a_chimney_on_twelve_days_in_one_file_is_held_like_twelve_daily_polls(engine: Engine) -> None:
    """The persistence map was built from what was stored *before* the batch, never from the batch itself: a
    chimney on 12 days read from one file (a FIRMS 7-day text file, a multi-day area-API window, an archive given to
    `firms ingest`) alerted on all 12 days, while the same rows polled day by day were held from the 11th day on."""
    demo = DemoCounty(engine)
    batch = demo.ingest(HEADER + chimney_days(range(12)))
    assert batch.held == {"static_source": 2}  # days 11 and 12 follow 10 and 11 earlier days
    assert batch.new == 10
    held_daily = 0
    for day in range(12):
        daily = demo.ingest(HEADER + chimney_days(range(day, day + 1), OTHER_CHIMNEY))
        held_daily += daily.held.get("static_source", 0)
    assert held_daily == 2
