"""Each channel against a real server on 127.0.0.1: format, signature, success and failure answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller

from service.alerts.channels import ChannelSender, DeliveryError, Destination, SmtpSettings, sign_webhook
from service.alerts.messages import AlertMessage, digest_text
from service.alerts.tables import AlertKind, Channel
from tests.httpserver import http_receiver

SECRET = "s3cr3t-signing-key"
NOW = 1_745_380_000.0


def message(incident_id: int = 7) -> AlertMessage:
    return AlertMessage.build(
        incident_id=incident_id,
        kind=AlertKind.NEW,
        unit_name="北岗镇",
        county_name="演示县",
        latitude=44.30,
        longitude=125.55,
        observed_at=datetime(2025, 4, 23, 2, 45, tzinfo=UTC),
        sources=("satellite", "camera"),
        confidence=0.87,
        state="suspected",
        base_url="http://dash.local/",
        idempotency_key=f"{incident_id}:1:new",
    )


def sender() -> ChannelSender:
    return ChannelSender(clock=lambda: NOW)


def test_message_has_both_coordinate_systems_and_links() -> None:
    m = message()
    assert (m.latitude, m.longitude) == (44.3, 125.55)
    # GCJ-02 is a few hundred metres north-east of WGS-84 around Changchun.
    assert 0.002 < m.gcj02_longitude - m.longitude < 0.01
    assert 0.0005 < m.gcj02_latitude - m.latitude < 0.005
    text = m.text()
    for expected in (
        "北岗镇",
        "2025-04-23 10:45（北京时间）",
        "卫星、视频监控",
        "87%",
        "44.30000, 125.55000",
        f"{m.gcj02_latitude:.5f}",
        "uri.amap.com",
        "http://dash.local/app/#/incident/7",  # the dashboard page of the incident (a hash route)
    ):
        assert expected in text
    assert f"{m.gcj02_longitude:.6f},{m.gcj02_latitude:.6f}" in m.map_url


def test_webhook_is_signed_and_carries_the_idempotency_key() -> None:
    with http_receiver() as receiver:
        sender().send(Destination(Channel.WEBHOOK, receiver.url + "/hook", SECRET), [message()])
        (request,) = receiver.received()
    timestamp = request.headers["X-Strawfire-Timestamp"]
    assert request.headers["X-Strawfire-Signature"] == "sha256=" + sign_webhook(SECRET, timestamp, request.body)
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Strawfire-Signature"] == f"sha256={expected}"
    assert request.headers["Idempotency-Key"] == "7:1:new"
    assert request.json()["gcj02_latitude"] == message().gcj02_latitude


def test_wecom_markdown_and_errcodes() -> None:
    with http_receiver() as receiver:
        url = receiver.url + "/cgi-bin/webhook/send?key=BOTKEY123"
        sender().send(Destination(Channel.WECOM, url, None), [message()])
        body = receiver.received()[0].json()
        assert body["msgtype"] == "markdown"
        assert "北岗镇" in body["markdown"]["content"]
        receiver.respond = lambda r: (200, {}, b'{"errcode": 45009, "errmsg": "api freq out of limit"}')
        with pytest.raises(DeliveryError) as info:
            sender().send(Destination(Channel.WECOM, url, None), [message()])
        assert info.value.retry_after == 65.0
        assert "BOTKEY123" not in str(info.value)


def test_dingtalk_signature() -> None:
    with http_receiver() as receiver:
        sender().send(
            Destination(Channel.DINGTALK, receiver.url + "/robot/send?access_token=TOKEN", SECRET), [message()]
        )
        (request,) = receiver.received()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
    timestamp = query["timestamp"][0]
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"][0] == expected
    assert timestamp == str(int(NOW * 1000))
    assert request.json()["markdown"]["title"] == "秸秆焚烧火点预警"


def test_feishu_signature_and_sms_gateway() -> None:
    with http_receiver() as receiver:
        sender().send(Destination(Channel.FEISHU, receiver.url + "/open-apis/bot/v2/hook/x", SECRET), [message()])
        body = receiver.received()[0].json()
        expected = base64.b64encode(hmac.new(f"{int(NOW)}\n{SECRET}".encode(), b"", hashlib.sha256).digest())
        assert body["sign"] == expected.decode()
        assert body["msg_type"] == "text"
        sender().send(Destination(Channel.SMS, receiver.url + "/sms#13800000000", "gateway-token"), [message()])
        sms = receiver.received()[1]
    assert sms.headers["Authorization"] == "Bearer gateway-token"
    assert sms.json()["phone"] == "13800000000"
    assert "北岗镇" in sms.json()["text"]


def test_digest_is_one_request() -> None:
    with http_receiver() as receiver:
        sender().send(Destination(Channel.WECOM, receiver.url + "/w?key=k", None), [message(1), message(2), message(3)])
        (request,) = receiver.received()
    content = request.json()["markdown"]["content"]
    assert "3 条" in content
    assert "#1" in content
    assert "#3" in content


def test_a_digest_too_long_for_wecom_lists_what_fits_and_counts_the_rest() -> None:
    """WeCom refuses markdown over 4096 bytes; 35 due alerts made 4.1 kB, and the refused digest was retried for a
    day before every alert in it failed."""
    with http_receiver() as receiver:
        many = [message(i) for i in range(1, 61)]
        sender().send(Destination(Channel.WECOM, receiver.url + "/w?key=k", None), many)
        (request,) = receiver.received()
    content = request.json()["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.startswith("### 火点汇总：北岗镇（60 条）")
    listed = content.count("[详情]")
    assert 10 < listed < 60
    assert content.endswith(f"- 另有 {60 - listed} 条，请登录系统查看")
    assert f"#{listed} " in content
    assert f"#{listed + 1} " not in content
    short = digest_text([message(1), message(2)], max_bytes=4096)
    assert "另有" not in short


def test_feishu_token_in_the_path_stays_out_of_errors() -> None:
    with http_receiver() as receiver:
        receiver.respond = lambda r: (500, {}, b"")
        with pytest.raises(DeliveryError) as info:
            sender().send(
                Destination(Channel.FEISHU, receiver.url + "/open-apis/bot/v2/hook/PATHTOKEN42", None), [message()]
            )
    assert "PATHTOKEN42" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_failures_name_the_host_but_not_the_secret_query() -> None:
    with http_receiver() as receiver:
        receiver.respond = lambda r: (503, {}, b"down")
        with pytest.raises(DeliveryError) as info:
            sender().send(Destination(Channel.WECOM, receiver.url + "/w?key=SUPERSECRET", None), [message()])
    assert "HTTP 503" in str(info.value)
    assert "SUPERSECRET" not in str(info.value)
    with pytest.raises(DeliveryError, match="ConnectError"):
        sender().send(Destination(Channel.WEBHOOK, "http://127.0.0.1:9/nothing", None), [message()])


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        with self.lock:
            self.messages.append(envelope.content)  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    with socket.socket() as probe:  # aiosmtpd's controller needs a concrete port: take a free one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_email_through_a_real_smtp_server(smtp_server: tuple[_Inbox, int]) -> None:
    inbox, port = smtp_server
    mail = ChannelSender(smtp=SmtpSettings("127.0.0.1", port, "strawfire@county.gov"))
    mail.send(Destination(Channel.EMAIL, "patrol@town.gov", None), [message()])
    (raw,) = inbox.messages
    text = raw.decode("utf-8", errors="replace")
    assert "patrol@town.gov" in text
    assert "Subject:" in text
    with pytest.raises(DeliveryError, match="SMTP settings"):
        ChannelSender().send(Destination(Channel.EMAIL, "a@b.cn", None), [message()])
    assert json.dumps(message().as_json(), ensure_ascii=False)
