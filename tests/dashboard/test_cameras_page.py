"""The admins' camera page in a real headless Chromium: the presets, the false-alarm hotspots of a preset, and
adding a hotspot to the preset's mask with one confirmed click (the registry is written back whole)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import shapely

from service.cameras.service import load_registry, replace_registry
from service.config import Settings
from service.db import transaction, utcnow
from service.flows import ingest_observations
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.states import FalseAlarmReason, IncidentState
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache
from tests.dashboard.browser import DESKTOP, Browser
from tests.dashboard.live import ADMIN, PASSWORD, LiveServer
from video.registry import CameraRegistry

pytestmark = pytest.mark.slow

REGISTRY = {
    "cameras": [
        {
            "id": "tower-9",
            "name": "塔09",
            "site": {"latitude": 44.30, "longitude": 125.60, "mast_height_m": 35},
            "lens": {"type": "intrinsics", "width": 64, "height": 48, "fx": 60.0, "fy": 60.0, "cx": 32.0, "cy": 24.0},
            "presets": [{"id": "p1", "pan_deg": 300.0, "tilt_deg": -1.0, "source": "rtsp://ops:secret@10.0.0.9/1"}],
        }
    ]
}
CHIMNEY = [[30, 4, 40, 30], [31, 2, 42, 28], [29, 5, 39, 31]]


def seed_false_alarms(live: LiveServer) -> list[int]:
    """Three camera sightings from one place of tower-9/p1, days apart, each found to be a false alarm."""
    factory = live.app.state.session_factory
    with transaction(factory) as session:
        replace_registry(session, CameraRegistry.from_dict(REGISTRY))
        ids = []
        for day, box in enumerate(CHIMNEY):
            observed = utcnow() - timedelta(days=10 - 3 * day)
            details = {
                "camera_id": "tower-9",
                "preset_id": "p1",
                "image_size": [64, 48],
                "boxes": [{"class_name": "smoke", "confidence": 0.6, "xyxy": box}],
            }
            observation = ObservationIn(
                ObservationKind.CAMERA, f"tower-9/p1/{day}", observed, 44.33, 125.56,
                shapely.box(125.555, 44.325, 125.565, 44.335), 0.6, details=details,
            )  # fmt: skip
            summary = ingest_observations(
                session, [observation], indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
            )
            [incident_id] = summary.new_incidents
            incident = session.get_one(Incident, incident_id)
            incidents.transition(session, incident, IncidentState.FALSE_ALARM, ADMIN, reason=FalseAlarmReason.NOT_FOUND)
            ids.append(incident_id)
    return ids


def test_an_admin_adds_a_false_alarm_hotspot_to_the_mask(browser: Browser, live: LiveServer) -> None:
    ids = seed_false_alarms(live)
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    assert browser.absent('#nav [data-nav="cameras"]')  # a supervisor has no camera page
    browser.logout()

    browser.login("admin", PASSWORD)
    browser.click('#nav [data-nav="cameras"]')
    row = browser.find("#mask-suggestions tbody tr")
    assert row.find_element("css selector", "[data-status]").get_attribute("data-status") == "suggested"
    links = [a.get_attribute("href") or "" for a in row.find_elements("css selector", "a")]
    assert [link.rsplit("/", 1)[-1] for link in links] == [str(i) for i in ids]
    assert "64×48" in row.text
    presets = browser.find("#camera-presets tbody tr").text
    assert "tower-9 · 塔09" in presets
    browser.screenshot("cameras-suggestion")

    browser.click('#mask-suggestions button[data-add="tower-9/p1"]')
    alert = browser.wait(lambda d: d.switch_to.alert, "the confirmation")
    assert "tower-9/p1" in alert.text
    alert.accept()
    browser.wait(
        lambda d: d.find_elements("css selector", '#mask-suggestions [data-status="masked"]'), "the hotspot masked"
    )
    assert browser.absent("#mask-suggestions button[data-add]")
    browser.screenshot("cameras-masked")

    with live.app.state.session_factory() as session:
        _, preset = load_registry(session).preset("tower-9", "p1")
        assert len(preset.ignore_mask) == 1
        assert preset.source == "rtsp://ops:secret@10.0.0.9/1"  # written back whole: the password is kept
    assert browser.console_errors() == []


def send_heartbeat(browser: Browser, live: LiveServer, **fields: object) -> None:
    """tower-9/p1's patrol heartbeat (40 frames, the last 30 s ago; ``fields`` added or replaced), sent with the
    signed-in page's own token, as stored."""
    token = browser.driver.execute_script("return JSON.parse(sessionStorage.getItem('strawfire.session')).token")
    now = utcnow()
    heartbeat = {
        "camera_id": "tower-9",
        "preset": "p1",
        "at": now.isoformat(),
        "frames": 40,
        "errors": 0,
        "frozen": False,
        "last_frame_at": (now - timedelta(seconds=30)).isoformat(),
        **fields,
    }
    answer = httpx.post(
        f"{live.url}/api/v1/cameras/health",
        json={"heartbeats": [heartbeat]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 1


def test_the_cameras_page_shows_each_presets_health(browser: Browser, live: LiveServer) -> None:
    """A preset never heard of reads 从未上报; after its patrol reports a frozen picture, 画面冻结."""
    with transaction(live.app.state.session_factory) as session:
        replace_registry(session, CameraRegistry.from_dict(REGISTRY))
    browser.use(DESKTOP)
    browser.login("admin", PASSWORD)
    browser.click('#nav [data-nav="cameras"]')
    badge = browser.find("#camera-presets tbody tr .badge.health")
    assert badge.get_attribute("data-state") == "never_seen"
    assert "从未上报" in badge.text

    send_heartbeat(browser, live, errors=0, frozen=True)
    browser.driver.refresh()
    badge = browser.find('#camera-presets tbody tr .badge.health[data-state="frozen"]')
    assert "画面冻结" in badge.text
    assert browser.console_errors() == []
