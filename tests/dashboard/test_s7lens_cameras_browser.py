"""A camera preset whose stream does not fit its registered lens, in a real headless Chromium: the cameras page
shows its own health badge with both frame sizes, and the status page counts it and words its problem."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from service.cameras.service import replace_registry
from service.db import transaction, utcnow
from tests.dashboard.browser import DESKTOP, Browser
from tests.dashboard.live import PASSWORD, LiveServer
from tests.dashboard.test_cameras_page import REGISTRY
from video.registry import CameraRegistry

pytestmark = pytest.mark.slow


def test_a_preset_whose_stream_does_not_fit_its_lens_shows_as_such(browser: Browser, live: LiveServer) -> None:
    """tower-9's lens is calibrated for 64×48 (4:3); its patrol reports 16:9 frames of 64×36."""
    with transaction(live.app.state.session_factory) as session:
        replace_registry(session, CameraRegistry.from_dict(REGISTRY))
    browser.use(DESKTOP)
    browser.login("admin", PASSWORD)
    browser.click('#nav [data-nav="cameras"]')
    browser.find('#camera-presets tbody tr .badge.health[data-state="never_seen"]')

    token = browser.driver.execute_script("return JSON.parse(sessionStorage.getItem('strawfire.session')).token")
    now = utcnow()
    heartbeat = {
        "camera_id": "tower-9",
        "preset": "p1",
        "at": now.isoformat(),
        "frames": 40,
        "errors": 40,
        "frozen": False,
        "last_frame_at": (now - timedelta(seconds=30)).isoformat(),
        "lens_mismatch": {"registered": [64, 48], "received": [64, 36]},
    }
    answer = httpx.post(
        f"{live.url}/api/v1/cameras/health",
        json={"heartbeats": [heartbeat]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 1

    browser.driver.refresh()
    badge = browser.find('#camera-presets tbody tr .badge.health[data-state="lens_mismatch"]')
    assert "画面与镜头不符" in badge.text
    assert "不做地面定位" in (badge.get_attribute("title") or "")
    sizes = browser.find("#camera-presets tbody tr .lens-sizes")
    assert sizes.text == "登记 64×48，实收 64×36"

    browser.go("#/status")
    counted = browser.find('#status-cameras li[data-state="lens_mismatch"]')
    assert counted.get_attribute("data-count") == "1"
    assert "画面与镜头不符" in counted.text
    problem = browser.find('#status-problems li[data-code="cameras_lens_mismatch"]')
    assert "tower-9/p1" in problem.text
    assert "不做地面定位" in problem.text
    assert "registered 64×48, received 64×36" in problem.text  # the server's detail underneath
    assert browser.console_errors() == []
