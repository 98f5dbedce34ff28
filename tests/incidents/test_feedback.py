"""The feedback (反馈) a township team sends after putting a fire out: what it must and may contain.

The field notes: feedback carries photos (with the on-site GPS and time), the cause, the burned area, the measures
taken, the responsible person (责任人) and the penalty (处罚). The burned area decides the ×2 above 300 m² in the
scores, so it must be a number; photos cited must be photos uploaded for this fire.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.incidents.states import Role
from tests.incidents.test_evidence import FIRE, demo_service, photo, token


@pytest.fixture
def two_fires(tmp_path: Path) -> Iterator[tuple[TestClient, int, int]]:
    """Two fires of 北岗镇 (DEMO01), both extinguished by its patrol and waiting for feedback."""
    settings = Settings(data_dir=tmp_path / "var")
    beigang = {"beigang": (Role.PATROL, "DEMO01")}
    with demo_service(settings, beigang, fires=(FIRE[0], FIRE[0] + 0.05)) as (client, [first, second]):
        me = token(client, "beigang")
        for incident in (first, second):
            for step in ("acknowledged", "en_route", "on_site", "extinguished"):
                response = client.post(f"/api/v1/incidents/{incident}/transitions", headers=me, json={"to": step})
                assert response.status_code == 200, (step, response.text)
        yield client, first, second


def _feedback(client: TestClient, incident: int, feedback: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/incidents/{incident}/transitions",
        # Serialised here: the server's JSON parser accepts Infinity and NaN, which httpx refuses to send.
        content=json.dumps({"to": "feedback", "feedback": feedback}),
        headers={**token(client, "beigang"), "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    "feedback",
    [
        {"cause": "straw", "burned_area_m2": "300亩"},  # text: stored, then ignored by the ×2 above 300 m²
        {"cause": "straw", "burned_area_m2": -5},
        {"cause": "straw", "burned_area_m2": True},
        {"cause": "straw", "burned_area_m2": float("inf")},
        {"cause": "straw", "burned_area_m2": float("nan")},
        {"cause": "straw", "burned_area_m2": 10**400},  # no float holds it: the statistics crashed on it
        {"cause": ["straw"]},
        {"cause": "   "},
        {"cause": "straw", "responsible_party": {"name": "张某"}},
        {"cause": "straw", "penalty": 2000},
        {"cause": "straw", "measures": "x" * 1001},
        {"cause": "straw", "photos": "abc"},
        {"cause": "straw", "photos": ["not-a-hash"]},
    ],
)
def test_malformed_feedback_is_refused_with_the_field(
    two_fires: tuple[TestClient, int, int], feedback: dict[str, Any]
) -> None:
    client, incident, _ = two_fires
    response = _feedback(client, incident, feedback)
    assert response.status_code == 422, response.text
    assert "feedback" in response.text
    assert client.get(f"/api/v1/incidents/{incident}", headers=token(client, "beigang")).json()["state"] == (
        "extinguished"
    )


def test_feedback_photos_must_be_uploaded_for_this_fire(two_fires: tuple[TestClient, int, int]) -> None:
    client, incident, other = two_fires
    me = token(client, "beigang")
    on_site = photo(FIRE[1] + 0.001, FIRE[0])
    digest = hashlib.sha256(on_site).hexdigest()
    # Uploaded for the other fire only: citing it for this one is refused, as is a hash nobody uploaded.
    upload = client.post(
        f"/api/v1/incidents/{other}/evidence", headers=me, files={"file": ("IMG_1.jpg", on_site, "image/jpeg")}
    )
    assert upload.status_code == 201, upload.text
    for cited in ([digest], ["0" * 64]):
        refused = _feedback(client, incident, {"cause": "straw", "photos": cited})
        assert refused.status_code == 422, refused.text
        assert "not uploaded for incident" in refused.json()["detail"]
    upload = client.post(
        f"/api/v1/incidents/{incident}/evidence", headers=me, files={"file": ("IMG_1.jpg", on_site, "image/jpeg")}
    )
    assert upload.status_code == 201, upload.text
    full = {
        "cause": "秸秆焚烧",
        "burned_area_m2": 450,
        "responsible_party": "村民 张某",
        "photos": [digest],
        "measures": "扑灭，清理余烬，留人看守",  # 处置措施: refused as an unknown field before
        "penalty": "罚款 500 元，训诫",  # 处罚: refused as an unknown field before
    }
    response = _feedback(client, incident, full)
    assert response.status_code == 200, response.text
    assert client.get(f"/api/v1/incidents/{incident}", headers=me).json()["feedback"] == full
