"""What each channel sends and how it reads the platform's answer, against real servers on 127.0.0.1: the
``Idempotency-Key`` on every HTTP request, the platform's own error message in ``last_error``, a Feishu error in
the older ``StatusCode`` form, unit names that would break markdown, and SMS digests worded by their kind."""

from __future__ import annotations

import dataclasses
import json

import pytest

from service.alerts.channels import ChannelSender, DeliveryError, Destination, digest_key
from service.alerts.messages import OVERDUE, SMS_SEGMENT, UNREACHABLE, AlertMessage, digest_text, sms_digest_text
from service.alerts.tables import AlertKind, Channel
from service.regions.types import RegionLevel
from tests.alerts.conftest import alert_message as message
from tests.httpserver import http_receiver

SECRET = "s3cr3t-signing-key"
NOW = 1_745_380_000.0


def sender() -> ChannelSender:
    return ChannelSender(clock=lambda: NOW)


def township(alert: AlertMessage) -> AlertMessage:
    """The alert of a fire a township acts on (what its escalations' words go by: 乡镇)."""
    return dataclasses.replace(alert, unit_level=RegionLevel.TOWNSHIP)


@pytest.mark.parametrize(
    ("channel", "path", "answer"),
    [
        (Channel.WECOM, "/cgi-bin/webhook/send?key=K", b'{"errcode": 0}'),
        (Channel.DINGTALK, "/robot/send?access_token=T", b'{"errcode": 0}'),
        (Channel.FEISHU, "/open-apis/bot/v2/hook/TOKEN", b'{"code": 0}'),
        (Channel.SMS, "/sms#13800000000", b"{}"),
    ],
)
def test_every_http_channel_carries_the_idempotency_key(channel: Channel, path: str, answer: bytes) -> None:
    """README: each request carries the alert's key as ``Idempotency-Key``; only generic webhooks did. An SMS
    gateway that dedupes on it no longer texts a phone twice after a worker crash mid-send (group bots ignore it)."""
    with http_receiver() as receiver:
        receiver.respond = lambda r: (200, {}, answer)
        sender().send(Destination(channel, receiver.url + path, SECRET), [message(7)])
        sender().send(Destination(channel, receiver.url + path, SECRET), [message(8), message(9)])
        single, digest = receiver.received()
    assert single.headers["Idempotency-Key"] == "7:1:new"
    assert digest.headers["Idempotency-Key"] == digest_key([message(8), message(9)])


@pytest.mark.parametrize(
    ("channel", "path", "answer", "expected"),
    [
        (
            Channel.WECOM,
            "/cgi-bin/webhook/send?key=BOTKEY123",
            {"errcode": 93000, "errmsg": "invalid webhook url, hint: [1745380000_abc]"},
            "errcode 93000 (invalid webhook url, hint: [1745380000_abc])",
        ),
        (
            Channel.DINGTALK,
            "/robot/send?access_token=ROBOTTOKEN9",
            {"errcode": 310000, "errmsg": "sign not match"},
            "errcode 310000 (sign not match)",
        ),
        (
            Channel.FEISHU,
            "/open-apis/bot/v2/hook/PATHTOKEN42",
            {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"},
            "code 19021 (sign match fail or timestamp is not within one hour from current time)",
        ),
    ],
)
def test_the_platforms_error_message_is_kept(
    channel: Channel, path: str, answer: dict[str, object], expected: str
) -> None:
    """``last_error`` read only "errcode 310000": which of a bot's many refusals it was (a wrong key, a signature,
    a keyword filter, an IP whitelist) took a search of the platform's documentation."""
    with http_receiver() as receiver:
        receiver.respond = lambda r: (200, {}, json.dumps(answer).encode())
        with pytest.raises(DeliveryError) as info:
            sender().send(Destination(channel, receiver.url + path, SECRET), [message()])
    host = receiver.url.removeprefix("http://")
    assert str(info.value) == f"http://{host}/…: {expected}"


def test_the_platforms_message_is_cut_and_keeps_no_key_or_secret() -> None:
    """A message that echoes the URL's key or the signing secret (some proxies do) has them blanked; a long one is
    cut to about 200 characters, on one line."""
    answer = {"errcode": 40058, "errmsg": f"bad key BOTKEY123 for secret {SECRET}\n" + "x" * 500}
    with http_receiver() as receiver:
        receiver.respond = lambda r: (200, {}, json.dumps(answer).encode())
        with pytest.raises(DeliveryError) as info:
            sender().send(
                Destination(Channel.DINGTALK, receiver.url + "/send?access_token=BOTKEY123", SECRET), [message()]
            )
    error = str(info.value)
    assert "BOTKEY123" not in error
    assert SECRET not in error
    assert "\n" not in error
    assert "errcode 40058 (bad key … for secret … " in error
    assert len(error) < 260


def test_a_feishu_error_in_the_older_statuscode_form_is_a_failure() -> None:
    """Feishu's older webhooks answer ``{"StatusCode": 1, "StatusMessage": …}`` without ``code``: that was taken
    as delivered, and the township never heard of the fire."""
    with http_receiver() as receiver:
        receiver.respond = lambda r: (200, {}, b'{"StatusCode": 1, "StatusMessage": "token invalid"}')
        with pytest.raises(DeliveryError) as info:
            sender().send(Destination(Channel.FEISHU, receiver.url + "/open-apis/bot/hook/T", None), [message()])
        assert str(info.value).endswith(": StatusCode 1 (token invalid)")
        # Its success answers (the old form, and the new one that carries both) still count as delivered.
        for ok in (
            b'{"Extra": null, "StatusCode": 0, "StatusMessage": "success"}',
            b'{"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}',
        ):
            receiver.respond = lambda r, ok=ok: (200, {}, ok)  # type: ignore[misc]
            sender().send(Destination(Channel.FEISHU, receiver.url + "/open-apis/bot/hook/T", None), [message()])


def test_unit_names_cannot_break_the_markdown() -> None:
    """A unit named with markdown's characters (``*_[]()``: brackets are common in names such as "开发区(试验区)")
    turned the alert into bold or a broken link in WeCom and DingTalk; the place is written with their full-width
    forms, the links still work."""
    odd = message(unit_name="*北岗*_镇[试验区](东)", county_name="演示`县`<b>")
    markdown = odd.markdown()
    assert "责任单位：演示｀县｀＜b＞ ＊北岗＊＿镇［试验区］（东）" in markdown
    assert "[详情与签收](http://dash.local/app/#/incident/7)" in markdown
    assert "(东)" not in markdown
    assert "*北岗*" not in markdown
    assert "*北岗*_镇[试验区](东)" in odd.text()  # plain text keeps the name as it is
    digest = digest_text([odd, message(8, unit_name=odd.unit_name)])
    assert digest.startswith("### 火点汇总：＊北岗＊＿镇［试验区］（东）（2 条）")
    assert "[详情](http://dash.local/app/#/incident/8)" in digest
    plain = digest_text([odd], markdown=False)
    assert plain.startswith("【火点汇总：*北岗*_镇[试验区](东)（1 条）】")  # Feishu text shows it as typed
    with http_receiver() as receiver:
        sender().send(Destination(Channel.WECOM, receiver.url + "/w?key=k", None), [odd])
        content = receiver.received()[0].json()["markdown"]["content"]
    assert "＊北岗＊＿镇［试验区］（东）" in content


def test_a_bot_digest_of_several_townships_is_headed_with_their_county() -> None:
    """A county's digest of several townships' escalations was headed with the first alert's township in WeCom,
    DingTalk and Feishu, as if every fire were there; it names the county now, and nothing when the townships are
    in several counties (escalations that climbed to a city)."""
    overdue = [message(i, kind=AlertKind.ESCALATION, reason=OVERDUE, unit_name=f"镇{i}") for i in (1, 2)]
    assert digest_text(overdue).startswith("### 火点汇总：演示县（2 条）\n")
    assert digest_text([message(1), message(2)], markdown=False).startswith("【火点汇总：北岗镇（2 条）】")
    elsewhere = message(3, kind=AlertKind.ESCALATION, reason=OVERDUE, unit_name="镇3", county_name="另一县")
    assert digest_text([*overdue, elsewhere]).startswith("### 火点汇总（3 条）\n")
    with http_receiver() as receiver:
        sender().send(Destination(Channel.DINGTALK, receiver.url + "/d?access_token=t", None), overdue)
        assert receiver.received()[0].json()["markdown"]["text"].startswith("### 火点汇总：演示县（2 条）")


def test_an_sms_digest_says_what_its_alerts_are() -> None:
    """The SMS digest read "N 个火点待签收" whatever it carried: a county's digest of escalations, or of townships
    that could not be reached, asked the county to acknowledge instead of to act."""
    new = [message(1), message(2)]
    reminders = [message(1, kind=AlertKind.REMINDER), message(2, kind=AlertKind.REMINDER)]
    overdue = [township(message(i, kind=AlertKind.ESCALATION, reason=OVERDUE, unit_name=f"镇{i}")) for i in (1, 2)]
    unreachable = [
        township(message(i, kind=AlertKind.ESCALATION, reason=UNREACHABLE, unit_name=f"镇{i}")) for i in (1, 2)
    ]
    mixed_escalations = [overdue[0], unreachable[1]]
    texts = {
        "new": sms_digest_text(new),
        "reminders": sms_digest_text(reminders),
        "new and reminder": sms_digest_text([new[0], reminders[1]]),
        "overdue": sms_digest_text(overdue),
        "unreachable": sms_digest_text(unreachable),
        "mixed escalations": sms_digest_text(mixed_escalations),
    }
    assert texts == {
        "new": "【strawfire】北岗镇 有 2 个火点待签收，请登录系统处置。",
        "reminders": "【strawfire】北岗镇 有 2 个火点超时未签收（再次提醒），请立即签收。",
        "new and reminder": "【strawfire】北岗镇 有 2 个火点待签收（1 个已超时未签收），请立即签收。",
        # Escalations of several townships go to their county: the county is named, not the first township.
        "overdue": "【strawfire】演示县 有 2 个火点超时未处置已升级，请督促乡镇处置。",
        "unreachable": "【strawfire】演示县 有 2 个火点乡镇告警无法送达，请电话通知乡镇处置。",
        "mixed escalations": "【strawfire】演示县 有 2 个火点已升级（1 个乡镇无法送达），请登录系统处置并联系乡镇。",
    }
    assert all(len(text) <= SMS_SEGMENT for text in texts.values())
    long_name = [message(i, unit_name="双营子回族乡" * 6, kind=AlertKind.REMINDER) for i in (1, 2)]
    cut = sms_digest_text(long_name)
    assert len(cut) == SMS_SEGMENT
    assert "…" in cut
    with http_receiver() as receiver:
        sender().send(Destination(Channel.SMS, receiver.url + "/sms#13800000000", None), unreachable)
        assert receiver.received()[0].json()["text"] == texts["unreachable"]
