"""Channel behaviour the platforms document, against real servers on 127.0.0.1: per-second limits, block times,
what a digest is called (so that receivers' de-duplication cannot drop it), plain-text digests."""

from __future__ import annotations

import email
import logging

import httpx
import pytest

from service.alerts.channels import ChannelSender, DeliveryError, Destination, SmtpSettings
from service.alerts.tables import AlertKind, Channel
from tests.alerts.conftest import alert_message
from tests.alerts.ratelimit import SlidingWindow
from tests.alerts.test_channels import (
    _Inbox,
    message,
    smtp_server,  # noqa: F401  (the fixture)
)
from tests.httpserver import http_receiver

SECRET = "s3cr3t-signing-key"


def test_feishu_requests_keep_to_five_a_second() -> None:
    """Feishu bots take 100/min but also only 5/s (error 11232 beyond it). A pass with 8 alerts due for one
    Feishu group sent 8 requests back to back: the sixth on was refused and waited out a 65 s backoff."""
    feishu = SlidingWindow(
        5,
        1.0,
        ok=b'{"code": 0, "msg": "success", "data": {}}',
        refusal=b'{"code": 11232, "msg": "frequency limited", "data": {}}',
    )
    sender = ChannelSender()
    with http_receiver() as receiver:
        receiver.respond = feishu
        destination = Destination(Channel.FEISHU, receiver.url + "/open-apis/bot/v2/hook/x", SECRET)
        for incident_id in range(1, 9):
            sender.send(destination, [message(incident_id)])
        assert len(receiver.received()) == 8
    assert feishu.refused == []  # every one of the 8 went through at the first try


def test_dingtalk_throttling_waits_out_the_ten_minute_block() -> None:
    """DingTalk blocks a robot for 10 min once it exceeds 20/min (errcode 130101); retrying after 65 s only
    spends requests against the block."""
    with http_receiver() as receiver:
        receiver.respond = lambda r: (200, {}, b'{"errcode": 130101, "errmsg": "send too fast"}')
        with pytest.raises(DeliveryError) as info:
            ChannelSender().send(
                Destination(Channel.DINGTALK, receiver.url + "/robot/send?access_token=T", SECRET), [message()]
            )
    assert info.value.retry_after is not None
    assert info.value.retry_after >= 600


def test_a_webhook_digest_is_never_named_like_another_digest() -> None:
    """A digest's Idempotency-Key was its alerts' keys joined and cut at 500 characters: a retried digest with
    more alerts in it (those that came due meanwhile) carried the key of the first try, which the receiver had
    recorded, and was dropped as a repeat: the new alerts in it reached no one though they were marked sent."""
    first = [message(1000 + i) for i in range(60)]
    retried = [*first, message(2000)]
    with http_receiver() as receiver:
        sender = ChannelSender()
        sender.send(Destination(Channel.WEBHOOK, receiver.url + "/hook", SECRET), first)
        sender.send(Destination(Channel.WEBHOOK, receiver.url + "/hook", SECRET), retried)
        keys = [r.headers["Idempotency-Key"] for r in receiver.received()]
    assert len(keys) == 2
    assert keys[0] != keys[1]
    assert all(len(k) <= 500 for k in keys)


def test_an_email_digest_has_its_own_message_id(smtp_server: tuple[_Inbox, int]) -> None:  # noqa: F811
    """The Message-ID of a digest was the first alert's own: a digest retried after its first alert had gone out
    alone (an SMTP answer lost after the server took the mail) looks like that mail to a mail system that drops
    repeated Message-IDs, and the other alerts in it are lost."""
    inbox, port = smtp_server
    mail = ChannelSender(smtp=SmtpSettings("127.0.0.1", port, "strawfire@county.gov"))
    mail.send(Destination(Channel.EMAIL, "patrol@town.gov", None), [message(1)])
    mail.send(Destination(Channel.EMAIL, "patrol@town.gov", None), [message(1), message(2)])
    ids = [email.message_from_bytes(raw)["Message-ID"] for raw in inbox.messages]
    assert len(ids) == 2
    assert ids[0] != ids[1]


def test_a_feishu_digest_is_plain_text() -> None:
    """Feishu ``text`` messages do not render markdown: the digest showed '### ' and '[详情](http://…)' as typed."""
    with http_receiver() as receiver:
        ChannelSender().send(
            Destination(Channel.FEISHU, receiver.url + "/open-apis/bot/v2/hook/x", None),
            [message(1), message(2), message(3)],
        )
        (request,) = receiver.received()
    text = request.json()["content"]["text"]
    assert "北岗镇" in text
    assert "###" not in text
    assert "](" not in text
    assert "http://dash.local/app/#/incident/3" in text


def test_an_sms_alert_is_one_segment() -> None:
    """A Chinese SMS is one message up to 70 characters; longer ones go as 67-character parts, each billed and
    on some phones shown apart. Every alert SMS was 71–77 characters (a 3-character township, a 5-digit id)."""
    for kind in AlertKind:
        text = alert_message(123456, kind=kind, unit_name="双营子乡").sms()
        assert len(text) <= 70, (len(text), text)
        assert "双营子乡" in text
        assert "04-23 10:45" in text  # Beijing time (02:45 UTC)
        assert "123456" in text


def test_bot_keys_stay_out_of_the_request_log(caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs every request's full URL at INFO: with the service's default log level INFO in a deployment's
    logging set-up, the WeCom ``key``, DingTalk ``access_token`` and ``sign`` and a Feishu hook token were
    written to the log."""
    caplog.set_level(logging.INFO, logger="httpx")
    with http_receiver() as receiver:
        sender = ChannelSender()
        for channel, path, secret in (
            (Channel.WECOM, "/cgi-bin/webhook/send?key=WECOMKEY42", None),
            (Channel.DINGTALK, "/robot/send?access_token=DINGTOKEN42", SECRET),
            (Channel.FEISHU, "/open-apis/bot/v2/hook/FEISHUTOKEN42", None),
        ):
            sender.send(Destination(channel, receiver.url + path, secret), [message()])
        assert len(receiver.received()) == 3
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request: POST" in logged  # the requests are still logged, by host
    for secret in ("WECOMKEY42", "DINGTOKEN42", "sign=", "FEISHUTOKEN42"):
        assert secret not in logged


def test_other_clients_keep_their_logged_urls(caplog: pytest.LogCaptureFixture) -> None:
    """The alerts' redaction is scoped to alert requests: it had cut every httpx URL of the process to its host,
    the FIRMS poller's too (whose path holds only its key's placeholder, and the product an operator looks for)."""
    caplog.set_level(logging.INFO, logger="httpx")
    with http_receiver() as receiver, httpx.Client(timeout=10.0) as client:
        client.post(receiver.url + "/api/area/csv/***/VIIRS_NOAA20_NRT/124,43,127,45/2", content=b"{}")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/api/area/csv/***/VIIRS_NOAA20_NRT/" in logged
