"""Coordinates audit: the alert SMS says which system its coordinates are in (GCJ-02, what 高德/微信 maps take)."""

from __future__ import annotations

import dataclasses

import pytest

from service.alerts.messages import SMS_SEGMENT
from service.alerts.tables import AlertKind
from tests.alerts.test_channels import message


@pytest.mark.parametrize("kind", list(AlertKind))
@pytest.mark.parametrize("unit", ["北岗镇", "双营子回族乡", "长春经济技术开发区"])
def test_the_sms_labels_its_coordinates_as_amaps_within_one_segment(kind: AlertKind, unit: str) -> None:
    """The SMS printed GCJ-02 coordinates as a bare "坐标": typed into a GPS app or a report as WGS-84 they are
    550–600 m off around Changchun. Labelled 高德坐标, still in one segment, the township's name giving way."""
    alert = dataclasses.replace(message(1234567), kind=kind, unit_name=unit)
    sms = alert.sms()
    assert f"高德坐标{alert.gcj02_latitude:.4f},{alert.gcj02_longitude:.4f}" in sms
    assert alert.gcj02_latitude != alert.latitude  # really the GCJ-02 form, not the WGS-84 one
    assert len(sms) <= SMS_SEGMENT, sms
    assert "编号1234567" in sms
