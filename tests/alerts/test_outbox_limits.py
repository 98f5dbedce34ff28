"""The outbox against a platform's per-bot limits (a real WeCom stand-in on 127.0.0.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.outbox import deliver_due
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, AlertStatus, Channel
from service.config import Settings
from service.db import transaction
from service.flows import ingest_observations
from service.regions.service import RegionIndexCache
from tests.alerts.ratelimit import SlidingWindow
from tests.alerts.test_outbox import ADMIN, factory, observation  # noqa: F401  (factory: the fixture)
from tests.httpserver import http_receiver


def test_two_recipients_on_one_bot_share_its_twenty_a_minute(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """WeCom's 20/min is per bot. One group bot registered for two townships was counted per recipient, so a
    pass sent 24 requests to it in a minute and the platform refused 4 (errcode 45009): those alerts waited."""
    wecom = SlidingWindow(
        20,
        60.0,
        ok=b'{"errcode": 0, "errmsg": "ok"}',
        refusal=b'{"errcode": 45009, "errmsg": "api freq out of limit"}',
    )
    with http_receiver() as receiver:
        receiver.respond = wecom
        bot = receiver.url + "/cgi-bin/webhook/send?key=SHAREDBOT"
        with transaction(factory) as session:
            for unit in ("DEMO01", "DEMO02"):
                create_recipient(session, name=f"{unit} 巡查群", unit_code=unit, channel=Channel.WECOM, target=bot)
            # 12 fires 0.02° apart in 北岗镇 (DEMO01, north-west) and 12 in 东河乡 (DEMO02, north-east).
            fires = [observation(i, 125.52 + 0.02 * (i % 4), 44.33 + 0.015 * (i // 4)) for i in range(12)]
            fires += [observation(100 + i, 125.70 + 0.02 * (i % 4), 44.30 + 0.015 * (i // 4)) for i in range(12)]
            summary = ingest_observations(
                session, fires, indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
            )
        assert len(summary.new_incidents) == 24
        t0 = datetime.now(UTC) + timedelta(seconds=1)
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
    assert wecom.refused == []
    assert report.retried == 0
    assert report.sent == 24
    with factory() as session:
        assert {a.status for a in session.scalars(select(Alert))} == {AlertStatus.SENT.value}
