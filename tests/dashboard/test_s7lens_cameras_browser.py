"""A camera preset whose stream does not fit its registered lens, in a real headless Chromium: the cameras page
shows its own health badge with both frame sizes, and the status page counts it and words its problem."""

from __future__ import annotations

import pytest

from service.cameras.service import replace_registry
from service.db import transaction
from tests.dashboard.browser import DESKTOP, Browser
from tests.dashboard.live import PASSWORD, LiveServer
from tests.dashboard.test_cameras_page import REGISTRY, send_heartbeat
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

    send_heartbeat(browser, live, errors=40, lens_mismatch={"registered": [64, 48], "received": [64, 36]})

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
