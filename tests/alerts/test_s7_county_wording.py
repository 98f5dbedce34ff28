"""An unreached unit's escalation words the unit by its level: 乡镇 for a township, 区县 for a county-level unit (a
fire with no township is its county's or district's to act on), 责任单位 when the level is not known.

Counties loaded without townships (the shipped boundaries are county level) act on their own fires; the county's
supervisors were told "乡镇告警无法送达 … 请电话通知乡镇" of a district that has no township in the system.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from sqlalchemy.engine import Engine

from service.alerts.channels import ChannelSender
from service.alerts.messages import OVERDUE, SMS_SEGMENT, UNREACHABLE, AlertMessage, sms_digest_text
from service.alerts.service import create_recipient
from service.alerts.tables import AlertKind, Channel, RecipientRole
from service.alerts.worker import run_once
from service.config import Settings
from service.db import make_session_factory, transaction
from service.flows import ingest_observations
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.tables import Incident
from service.regions.crs import SourceCRS
from service.regions.loader import ReadReport
from service.regions.service import RegionIndexCache, import_units
from service.regions.types import RegionLevel, RegionUnit
from tests.alerts.conftest import SETTINGS, alert_message
from tests.alerts.test_outbox import ADMIN
from tests.httpserver import http_receiver


def _escalation(level: RegionLevel | None, reason: str = UNREACHABLE, incident_id: int = 1234567) -> AlertMessage:
    """The county's escalation of a fire in 南关区 (a district), its unit of ``level``."""
    district = "南关区"
    message = alert_message(
        incident_id, kind=AlertKind.ESCALATION, unit_name=district, county_name=district, reason=reason
    )
    return dataclasses.replace(message, unit_level=level)


def test_the_countys_alert_of_an_unreached_district_says_so_in_the_districts_own_terms(engine: Engine) -> None:
    """南关区 (220102) loaded as a county without townships, with supervisors and no patrol recipient: its fire is
    escalated at the first pass, and the supervisors' webhook reads 区县, not 乡镇 (title, ``unit_level``)."""
    factory = make_session_factory(engine)
    district = RegionUnit("220102", "南关区", RegionLevel.COUNTY, shapely.box(125.3, 43.8, 125.4, 43.9))
    observed = datetime.now(UTC) - timedelta(minutes=5)
    fire = ObservationIn(
        ObservationKind.SATELLITE, "sat-1", observed, 43.85, 125.35, shapely.box(125.347, 43.847, 125.353, 43.853), 0.8
    )
    with http_receiver() as receiver:
        with transaction(factory) as session:
            import_units(session, [district], level=RegionLevel.COUNTY, crs=SourceCRS("wgs84"), report=ReadReport("t"))
            create_recipient(
                session,
                name="南关区督导",
                unit_code="220102",
                channel=Channel.WEBHOOK,
                target=receiver.url + "/county",
                role=RecipientRole.COUNTY,
            )
            (number,) = ingest_observations(
                session, [fire], indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
            ).new_incidents
            incident = session.get_one(Incident, number)
            assert (incident.township_code, incident.county_code) == (None, "220102")
        escalation, _ = run_once(factory, ChannelSender(), SETTINGS, now=datetime.now(UTC) + timedelta(seconds=1))
        assert escalation.escalated == [number]
        (sent,) = [r.json() for r in receiver.received() if r.path == "/county"]
    assert (sent["escalation_reason"], sent["unit_name"]) == (UNREACHABLE, "南关区")
    assert sent["title"] == "火点预警升级（区县告警无法送达）"
    assert sent["unit_level"] == "county"


@pytest.mark.parametrize(
    ("level", "word", "sms_word"),
    [(RegionLevel.COUNTY, "区县", "区县"), (RegionLevel.TOWNSHIP, "乡镇", "乡镇"), (None, "责任单位", "单位")],
    ids=["county", "township", "not-known"],
)
def test_every_format_words_the_unit_by_its_level(level: RegionLevel | None, word: str, sms_word: str) -> None:
    """Title (e-mail subject, DingTalk title), text (WeCom text, e-mail, Feishu), markdown (WeCom, DingTalk), the
    webhook's JSON and the SMS (still one segment), for each level; no other level's word in any of them."""
    unreachable = _escalation(level)
    assert unreachable.title == f"火点预警升级（{word}告警无法送达）"
    line = f"升级原因：{word}告警无法送达，{word}尚不知道此火点，请电话通知{word}处置"
    assert line in unreachable.text()
    assert line in unreachable.markdown()
    assert unreachable.as_json()["title"] == unreachable.title
    assert unreachable.as_json()["unit_level"] == (level.value if level else None)
    sms = unreachable.sms()
    assert len(sms) <= SMS_SEGMENT, sms
    assert sms.startswith(f"【strawfire】{sms_word}无法送达：南关区 ")
    assert sms.endswith(f"编号1234567 请联系{sms_word}")
    others = {"乡镇", "区县"} - {word}
    said = unreachable.title + unreachable.text() + unreachable.markdown() + sms
    assert not any(other in said for other in others), said


def test_an_sms_digest_of_a_countys_escalations_words_them_by_their_units_level() -> None:
    """A county's SMS digest of escalations: 区县 for county-level units, 责任单位 when its escalations are of units of
    several levels (or not known); every one a single segment."""
    county = [_escalation(RegionLevel.COUNTY, incident_id=i) for i in (1, 2)]
    overdue = _escalation(RegionLevel.COUNTY, OVERDUE, incident_id=3)
    of_a_township = dataclasses.replace(_escalation(RegionLevel.TOWNSHIP, incident_id=4), unit_name="北岗镇")
    texts = {
        "unreachable": sms_digest_text(county),
        "mixed": sms_digest_text([overdue, county[0]]),
        "overdue": sms_digest_text([overdue, dataclasses.replace(overdue, incident_id=5)]),
        "two levels": sms_digest_text([county[0], of_a_township]),
    }
    assert texts == {
        "unreachable": "【strawfire】南关区 有 2 个火点区县告警无法送达，请电话通知区县处置。",
        "mixed": "【strawfire】南关区 有 2 个火点已升级（1 个区县无法送达），请登录系统处置并联系区县。",
        "overdue": "【strawfire】南关区 有 2 个火点超时未处置已升级，请督促区县处置。",
        "two levels": "【strawfire】南关区 有 2 个火点告警无法送达，请电话通知责任单位处置。",
    }
    assert all(len(text) <= SMS_SEGMENT for text in texts.values())
