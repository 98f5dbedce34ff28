"""Delivery channels. Each turns an :class:`AlertMessage` (or a digest) into one request and says whether it went.

HTTP channels share one ``httpx.Client`` whose transport can be swapped in tests (the httpx transport seam); the
real tests point them at HTTP servers on 127.0.0.1. Secrets (webhook keys, signing secrets, SMTP passwords) are
used to sign or authenticate and never appear in an error: :func:`safe_url` strips the target URL's query string.

Formats and limits follow the platforms' documentation (see ``../shared/reference/closed-loop.md`` § 4):

* generic webhook — JSON body; ``X-Strawfire-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." +
  body)>``, ``X-Strawfire-Timestamp`` and ``Idempotency-Key`` headers (receivers dedupe on the key). Every HTTP
  channel's request carries ``Idempotency-Key``: an SMS gateway or a proxy in front of a bot can dedupe on it; the
  group bots themselves ignore it, so a worker that dies between a bot's answer and recording it may post that
  alert to the group twice;
* WeCom group bot — ``{"msgtype": "markdown", ...}``, success when ``errcode == 0``; 20 messages/min per bot;
* DingTalk robot — ``&timestamp=…&sign=urlencode(base64(HMAC-SHA256(secret, "{timestamp}\\n{secret}")))``;
  20/min per robot (exceeding it blocks the robot for 10 min, errcode 130101: the retry waits the block out);
* Feishu bot — body ``timestamp`` + ``sign = base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=""))``;
  100/min and 5/s (the sender paces its requests to one bot); ``text`` messages do not render markdown;
* SMTP e-mail; an HTTP SMS gateway (``{"phone", "text"}`` with a bearer token), the form most provincial
  platforms and cloud SMS proxies accept.
"""

from __future__ import annotations

import base64
import contextvars
import email.utils
import hashlib
import hmac
import json
import logging
import smtplib
import time
import urllib.parse
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from service.alerts.messages import BEIJING, AlertMessage, digest_text, sms_digest_text
from service.alerts.tables import Channel

# Per-minute limits when the recipient does not set one.
DEFAULT_RATE_PER_MIN: dict[Channel, int] = {
    Channel.WECOM: 20,
    Channel.DINGTALK: 20,
    Channel.FEISHU: 100,
    Channel.WEBHOOK: 120,
    Channel.EMAIL: 30,
    Channel.SMS: 10,
}
# Requests per second to one bot, where the platform limits that too (Feishu: 100/min but also 5/s, error 11232).
# The per-minute limits are kept by the outbox across passes and workers; a pass of a few alerts takes well
# under a second, so this one is kept by the sender pacing its own requests.
PER_SECOND_LIMIT: dict[Channel, int] = {Channel.FEISHU: 5}
# How long a platform blocks a bot that went over its limit. DingTalk blocks the robot for 10 minutes (its
# documentation); the others take the next window, and a 65 s wait covers a minute window however it is counted.
THROTTLED_WAIT_S: dict[Channel, float] = {Channel.DINGTALK: 600.0}
RATE_LIMITED_WAIT_S = 65.0
# The most a platform takes in one message, UTF-8 bytes (WeCom documents 4096 for markdown; DingTalk and Feishu
# bots cap a request at about 20 kB): a digest is cut to fit (messages.digest_text).
WECOM_MARKDOWN_BYTES = 4096
DINGTALK_MARKDOWN_BYTES = 18_000
FEISHU_TEXT_BYTES = 18_000


class DeliveryError(Exception):
    """The channel did not accept the message. ``retry_after`` (s) when the platform said to wait; ``unreachable``
    when the target never answered (a timeout, a refused or dropped connection), as opposed to one that answered
    with a refusal of this message."""

    def __init__(self, message: str, *, retry_after: float | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable

    @property
    def target_unavailable(self) -> bool:
        """Whether the whole target is unavailable for now (unreachable, or it said to wait), not just this
        message refused: its other alerts would only wait out the same timeout or be refused the same way."""
        return self.unreachable or self.retry_after is not None


@dataclass(frozen=True, slots=True)
class Destination:
    """Where to send: the recipient's channel, target and signing secret."""

    channel: Channel
    target: str
    secret: str | None


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the mail server."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 10.0


class Sender(Protocol):
    """Sends a single alert, or a digest of several to one recipient."""

    def send(self, destination: Destination, messages: list[AlertMessage]) -> None:
        """Deliver ``messages`` (one, or a digest of several) or raise :class:`DeliveryError`."""


def safe_url(url: str) -> str:
    """A URL fit for an error message or a log: scheme and host only.

    Bot keys live in the query (WeCom ``key``, DingTalk ``access_token``) or in the path (Feishu
    ``/hook/<token>``, many generic webhooks), and credentials in the user part: all of it is left out.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    rest = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{host}{rest}"


def request_key(messages: list[AlertMessage]) -> str:
    """The ``Idempotency-Key`` of a request: the alert's own key, or a digest's (:func:`digest_key`)."""
    return messages[0].idempotency_key if len(messages) == 1 else digest_key(messages)


#: How much of a platform's own error message (``errmsg``, ``msg``) an error keeps.
PLATFORM_MESSAGE_CHARS = 200


def platform_message(body: dict[str, Any], url: str, secret: str | None) -> str | None:
    """The platform's own words for a refusal (WeCom/DingTalk ``errmsg``, Feishu ``msg`` or ``StatusMessage``), fit
    for ``last_error``: on one line, cut to :data:`PLATFORM_MESSAGE_CHARS`, and with anything of the target's URL
    that may be a key (its query values, its last path segment: Feishu's token) and the signing secret blanked
    (``…``), should the platform or a proxy echo them. None when the answer has none.

    Why: "errcode 310000" alone left a township's admin to find out which of a bot's refusals it was (a wrong
    signature, a keyword filter, an IP whitelist); the platform's message says."""
    text = next((body[f] for f in ("errmsg", "msg", "StatusMessage") if isinstance(body.get(f), str)), None)
    if not text or not text.strip():
        return None
    parts = urllib.parse.urlsplit(url)
    hidden = [value for _, value in urllib.parse.parse_qsl(parts.query)]
    hidden += [parts.path.rstrip("/").rpartition("/")[2], secret or ""]
    for value in sorted((v for v in hidden if len(v) >= 6), key=len, reverse=True):
        text = text.replace(value, "…").replace(urllib.parse.quote(value, safe=""), "…")
    text = " ".join(text.split())
    return text if len(text) <= PLATFORM_MESSAGE_CHARS else text[: PLATFORM_MESSAGE_CHARS - 1] + "…"


def digest_key(messages: list[AlertMessage]) -> str:
    """The idempotency key of a digest: a hash of all its alerts' keys (each alert's own is in the body).

    Why a hash: the keys joined and cut to a header's length named a retried digest that had gained alerts
    like the first try, and a receiver that had recorded it dropped the new alerts as a repeat.
    """
    joined = ",".join(sorted(m.idempotency_key for m in messages))
    return "digest:" + hashlib.sha256(joined.encode()).hexdigest()


_SENDING_ALERT: contextvars.ContextVar[bool] = contextvars.ContextVar("strawfire_sending_alert", default=False)
"""True while this thread sends an alert: httpx logs the request in the sending thread."""


class _RedactRequestUrls(logging.Filter):
    """httpx logs each request's full URL at INFO (``HTTP Request: POST https://…?key=…``): the bot keys in it
    (WeCom ``key``, DingTalk ``access_token`` and ``sign``, Feishu's path token) would reach the log of any
    deployment that logs at INFO. An alert's request is logged by host only, as :func:`safe_url` gives it.

    Only alerts': other clients of the process keep their URLs (the FIRMS poller's carries its key's placeholder,
    never the key, and its product and area are what an operator reads the log for)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SENDING_ALERT.get():
            return True
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(safe_url(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


# On httpx's own logger: a client passed in by the caller logs there too.
_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, _RedactRequestUrls) for f in _httpx_log.filters):
    _httpx_log.addFilter(_RedactRequestUrls())


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The generic webhook signature: hex HMAC-SHA256 over ``timestamp + "." + body``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign`` query parameter (already URL-encoded)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's ``sign`` body field: the key is ``"{timestamp}\\n{secret}"`` and the message is empty."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class ChannelSender:
    """The one :class:`Sender` strawfire uses: dispatches on the destination's channel."""

    def __init__(
        self,
        client: httpx.Client | None = None,
        smtp: SmtpSettings | None = None,
        clock: Any = time.time,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client or httpx.Client(timeout=10.0)
        self._smtp = smtp
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        # When the last requests to each bot with a per-second limit finished (the outbox sends to one target from
        # one thread at a time, so each target's queue has one writer).
        self._recent: defaultdict[str, deque[float]] = defaultdict(deque)

    def send(self, destination: Destination, messages: list[AlertMessage]) -> None:
        """Deliver one message, or several as one digest."""
        if not messages:
            return
        handler = {
            Channel.WEBHOOK: self._webhook,
            Channel.WECOM: self._wecom,
            Channel.DINGTALK: self._dingtalk,
            Channel.FEISHU: self._feishu,
            Channel.EMAIL: self._email,
            Channel.SMS: self._sms,
        }[destination.channel]
        per_second = PER_SECOND_LIMIT.get(destination.channel)
        if per_second is None:
            handler(destination, messages)
            return
        self._wait_for_a_slot(destination.target, per_second)
        try:
            handler(destination, messages)
        finally:
            # Counted from when the request finished: the platform saw it before then, so a second later is a
            # second after the platform counted it, whatever the network took.
            self._recent[destination.target].append(self._monotonic())

    def _wait_for_a_slot(self, target: str, per_second: int) -> None:
        finished = self._recent[target]
        while True:
            now = self._monotonic()
            while finished and now - finished[0] >= 1.0:
                finished.popleft()
            if len(finished) < per_second:
                return
            self._sleep(1.0 - (now - finished[0]))

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _post(self, url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
        sending = _SENDING_ALERT.set(True)
        try:
            response = self._client.post(url, content=content, headers={"Content-Type": "application/json", **headers})
        except httpx.HTTPError as exc:
            # A transport error (timeout, connection refused or dropped): the target did not answer at all.
            unreachable = isinstance(exc, httpx.TransportError)
            raise DeliveryError(f"{safe_url(url)}: {type(exc).__name__}", unreachable=unreachable) from None
        finally:
            _SENDING_ALERT.reset(sending)
        if response.status_code == 429:
            retry = response.headers.get("Retry-After")
            raise DeliveryError(
                f"{safe_url(url)}: HTTP 429", retry_after=float(retry) if retry and retry.isdigit() else 60.0
            )
        if response.status_code >= 300:
            raise DeliveryError(f"{safe_url(url)}: HTTP {response.status_code}")
        return response

    @staticmethod
    def _platform_ok(
        destination: Destination,
        response: httpx.Response,
        code_fields: tuple[str, ...],
        throttled: set[int],
        wait_s: float = RATE_LIMITED_WAIT_S,
    ) -> None:
        """Raise :class:`DeliveryError` unless the platform's answer says it took the message: each of
        ``code_fields`` it carries is 0 (Feishu answers ``code`` and, in its older form, ``StatusCode``: a non-zero
        one of either is a refusal), or, with none of them, its ``code`` is absent or 0. The error names the field,
        the code and the platform's message (:func:`platform_message`)."""
        url = destination.target
        try:
            body = response.json()
        except ValueError:
            raise DeliveryError(f"{safe_url(url)}: not a JSON answer") from None
        if not isinstance(body, dict):
            raise DeliveryError(f"{safe_url(url)}: {code_fields[0]} -1")
        codes = [(field, body[field]) for field in code_fields if field in body] or [("code", body.get("code", 0))]
        field, code = next(((f, c) for f, c in codes if c != 0), codes[0])
        if code in throttled:
            # WeCom 45009 / DingTalk 130101 / Feishu 11232: over the limit; wait out the window (or the block).
            raise DeliveryError(f"{safe_url(url)}: rate limited ({code})", retry_after=wait_s)
        if code != 0:
            said = platform_message(body, url, destination.secret)
            raise DeliveryError(f"{safe_url(url)}: {field} {code}" + (f" ({said})" if said else ""))

    @staticmethod
    def _markdown(messages: list[AlertMessage], max_bytes: int) -> tuple[str, str]:
        if len(messages) == 1:
            return messages[0].title, messages[0].markdown()
        return f"火点汇总 {len(messages)} 条", digest_text(messages, max_bytes=max_bytes)

    def _webhook(self, destination: Destination, messages: list[AlertMessage]) -> None:
        if len(messages) == 1:
            payload: dict[str, Any] = messages[0].as_json()
        else:
            payload = {"digest": [m.as_json() for m in messages]}
        body = json.dumps(payload, ensure_ascii=False).encode()
        timestamp = str(int(self._clock()))
        headers = {"Idempotency-Key": request_key(messages), "X-Strawfire-Timestamp": timestamp}
        if destination.secret:
            headers["X-Strawfire-Signature"] = "sha256=" + sign_webhook(destination.secret, timestamp, body)
        self._post(destination.target, content=body, headers=headers)

    def _wecom(self, destination: Destination, messages: list[AlertMessage]) -> None:
        _, text = self._markdown(messages, WECOM_MARKDOWN_BYTES)
        body = json.dumps({"msgtype": "markdown", "markdown": {"content": text}}, ensure_ascii=False).encode()
        response = self._post(destination.target, content=body, headers={"Idempotency-Key": request_key(messages)})
        self._platform_ok(destination, response, ("errcode",), {45009})

    def _dingtalk(self, destination: Destination, messages: list[AlertMessage]) -> None:
        title, text = self._markdown(messages, DINGTALK_MARKDOWN_BYTES)
        url = destination.target
        if destination.secret:
            timestamp = int(self._clock() * 1000)
            url += (
                "&" if "?" in url else "?"
            ) + f"timestamp={timestamp}&sign={dingtalk_sign(destination.secret, timestamp)}"
        body = json.dumps(
            {"msgtype": "markdown", "markdown": {"title": title, "text": text}}, ensure_ascii=False
        ).encode()
        response = self._post(url, content=body, headers={"Idempotency-Key": request_key(messages)})
        self._platform_ok(destination, response, ("errcode",), {130101}, THROTTLED_WAIT_S[Channel.DINGTALK])

    def _feishu(self, destination: Destination, messages: list[AlertMessage]) -> None:
        text = (
            messages[0].text()
            if len(messages) == 1
            else digest_text(messages, max_bytes=FEISHU_TEXT_BYTES, markdown=False)
        )
        payload: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if destination.secret:
            timestamp = int(self._clock())
            payload |= {"timestamp": str(timestamp), "sign": feishu_sign(destination.secret, timestamp)}
        response = self._post(
            destination.target,
            content=json.dumps(payload, ensure_ascii=False).encode(),
            headers={"Idempotency-Key": request_key(messages)},
        )
        self._platform_ok(destination, response, ("code", "StatusCode"), {11232})

    def _sms(self, destination: Destination, messages: list[AlertMessage]) -> None:
        # target: "https://gateway/send#13800000000" — the gateway URL, then the phone number after '#'.
        url, _, phone = destination.target.partition("#")
        if not phone:
            raise DeliveryError("an SMS target is 'GATEWAY_URL#PHONE'")
        text = messages[0].sms() if len(messages) == 1 else sms_digest_text(messages)
        headers = {"Idempotency-Key": request_key(messages)}
        if destination.secret:
            headers["Authorization"] = f"Bearer {destination.secret}"
        self._post(
            url, content=json.dumps({"phone": phone, "text": text}, ensure_ascii=False).encode(), headers=headers
        )

    # -- e-mail -------------------------------------------------------------------------------------------

    def _email(self, destination: Destination, messages: list[AlertMessage]) -> None:
        if self._smtp is None:
            raise DeliveryError("e-mail alerts need SMTP settings (smtp.host)")
        smtp = self._smtp
        mail = EmailMessage()
        mail["From"] = smtp.sender
        mail["To"] = destination.target
        mail["Subject"] = messages[0].title if len(messages) == 1 else f"火点汇总 {len(messages)} 条"
        # RFC 5322 § 3.6 requires Date (with From); smtplib adds none, and servers and filters mark mail without it.
        mail["Date"] = email.utils.format_datetime(datetime.fromtimestamp(self._clock(), BEIJING))
        # One alert: a hash of its key, so that a resend after a lost SMTP answer is recognisably the same mail.
        # A digest: a hash of all its keys; the first alert's own would make it look like that alert's mail.
        key = request_key(messages)
        mail["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@strawfire>"
        mail.set_content("\n\n".join(m.text() for m in messages))
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
                if smtp.starttls:
                    client.starttls()
                if smtp.username and smtp.password:
                    client.login(smtp.username, smtp.password)
                client.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            # The server did not answer (a timeout, a refused or dropped connection, a refused greeting), rather than
            # refusing this mail (a recipient, the sender or the data refused).
            unanswered = (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected)
            unreachable = isinstance(exc, unanswered) or not isinstance(exc, smtplib.SMTPException)
            error = f"smtp {smtp.host}:{smtp.port}: {type(exc).__name__}"
            raise DeliveryError(error, unreachable=unreachable) from None
