"""What an alert says, rendered for each channel (pure: no I/O).

Content (the brief's list): township and county, coordinates in WGS-84 and in the GCJ-02 form that phone maps in
China use, a map link (Amap, GCJ-02), the sources that saw the fire, the time (Beijing time for people, UTC for
machines), confidence, and a link to the incident page with its evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from service.alerts.tables import AlertKind
from service.regions.crs import wgs84_to_gcj02
from service.regions.types import RegionLevel

BEIJING = timezone(timedelta(hours=8), "CST")
_KIND_TITLE = {
    AlertKind.NEW: "秸秆焚烧火点预警",
    AlertKind.REMINDER: "火点预警（未签收，再次提醒）",
    AlertKind.ESCALATION: "火点预警升级（超时未处置）",
}
# SMS headlines: short, so that an alert fits one SMS (70 Chinese characters; longer ones are sent in billed
# 67-character parts that some phones show apart). The reminder's says "again" and its end "acknowledge now": at
# eight characters (火点未签收再提醒) it left a township's name one character once the coordinates were labelled.
_KIND_SMS_TITLE = {
    AlertKind.NEW: "火点预警",
    AlertKind.REMINDER: "火点再次提醒",
    AlertKind.ESCALATION: "火点超时升级",
}
#: ``escalation_reason`` of a county alert about a township its new-fire alert could not reach (the county has to
#: phone it: nobody there knows of the fire), and of one about a missed deadline (or any other escalation).
UNREACHABLE = "unreachable"
OVERDUE = "overdue"
#: The words for the level of the unit that acts on a fire, in an unreached unit's escalation (and what a county's
#: digest asks it to do): a township (乡镇), or a county-level unit (区县: a county, a district, a county-level city;
#: the unit of a fire with no township). Counties loaded without townships act on their own fires, and the county
#: was told "乡镇告警无法送达 … 请电话通知乡镇" of a district that has no township in the system.
_UNIT_WORDS = {RegionLevel.TOWNSHIP: "乡镇", RegionLevel.COUNTY: "区县"}
#: The level not known (a message built without it): the unit responsible, in words that fit every level.
_ANY_UNIT_WORD = "责任单位"
_ANY_UNIT_SMS_WORD = "单位"  # as long as 乡镇 and 区县: an SMS keeps the same room for the unit's name
_UNREACHABLE_TITLE = "火点预警升级（{unit}告警无法送达）"
_UNREACHABLE_SMS_TITLE = "{unit}无法送达"  # as long as the overdue one: the same room for the township's name
_UNREACHABLE_LINE = "升级原因：{unit}告警无法送达，{unit}尚不知道此火点，请电话通知{unit}处置"
#: Characters in one SMS segment of Chinese text (UCS-2); a longer text is sent as billed 67-character parts.
SMS_SEGMENT = 70
_SOURCE_NAMES = {"satellite": "卫星", "camera": "视频监控", "drone": "无人机", "triangulated": "多塔交会"}
#: Markdown's (and WeCom's ``<font>``) characters, and the full-width forms a name is written with in markdown.
_MARKDOWN_SAFE = str.maketrans("\\*_[]()`<>~#|", "＼＊＿［］（）｀＜＞～＃｜")


def unit_word(level: RegionLevel | None, *, sms: bool = False) -> str:
    """The words for a unit of ``level`` in an alert (pure): 乡镇, 区县, or, for a level not known, 责任单位 (单位 in an
    SMS, as long as the others)."""
    if level in _UNIT_WORDS:
        return _UNIT_WORDS[level]
    return _ANY_UNIT_SMS_WORD if sms else _ANY_UNIT_WORD


def markdown_safe(name: str) -> str:
    """A unit's name fit for a WeCom or DingTalk markdown message: its markdown characters (``*_[]()`` and the
    like) written in their full-width forms, so that "开发区(试验区)" or "*镇*" stays text instead of becoming a
    link's half or bold.

    Why full-width forms and not backslashes: WeCom's markdown is a subset that does not document backslash
    escapes, and a backslash shown as typed would garble the name; the full-width forms read the same in a Chinese
    name (names usually carry full-width brackets anyway)."""
    return name.translate(_MARKDOWN_SAFE)


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """Everything a channel needs to say about one incident."""

    incident_id: int
    kind: AlertKind
    unit_name: str
    county_name: str | None
    latitude: float
    longitude: float
    gcj02_latitude: float
    gcj02_longitude: float
    observed_at: datetime
    sources: tuple[str, ...]
    confidence: float
    state: str
    incident_url: str
    map_url: str
    idempotency_key: str
    # Escalations only: why the county is told (:data:`UNREACHABLE` or :data:`OVERDUE`); None for other kinds.
    escalation_reason: str | None = None
    # The level of the unit that acts on the fire (``unit_name``'s): township, or county for a fire with no
    # township; None when not known. An unreached unit's escalation is worded by it (:func:`unit_word`).
    unit_level: RegionLevel | None = None

    @classmethod
    def build(
        cls,
        *,
        incident_id: int,
        kind: AlertKind,
        unit_name: str,
        county_name: str | None,
        latitude: float,
        longitude: float,
        observed_at: datetime,
        sources: tuple[str, ...],
        confidence: float,
        state: str,
        base_url: str,
        idempotency_key: str,
        escalation_reason: str | None = None,
        unit_level: RegionLevel | None = None,
    ) -> AlertMessage:
        """Fill in the GCJ-02 coordinates and the links."""
        gcj_lon, gcj_lat = wgs84_to_gcj02(longitude, latitude)
        base = base_url.rstrip("/")
        return cls(
            incident_id=incident_id,
            kind=kind,
            unit_name=unit_name,
            county_name=county_name,
            latitude=round(latitude, 6),
            longitude=round(longitude, 6),
            gcj02_latitude=round(gcj_lat, 6),
            gcj02_longitude=round(gcj_lon, 6),
            observed_at=observed_at,
            sources=sources,
            confidence=confidence,
            state=state,
            incident_url=f"{base}/app/#/incident/{incident_id}",  # the dashboard's incident page
            # Amap's marker URI opens the map app on phones; it expects GCJ-02.
            map_url=f"https://uri.amap.com/marker?position={gcj_lon:.6f},{gcj_lat:.6f}&name=火点{incident_id}",
            idempotency_key=idempotency_key,
            escalation_reason=escalation_reason if kind is AlertKind.ESCALATION else None,
            unit_level=unit_level,
        )

    @property
    def unreachable(self) -> bool:
        """An escalation because the township's new-fire alert could not be delivered (not a missed deadline)."""
        return self.kind is AlertKind.ESCALATION and self.escalation_reason == UNREACHABLE

    @property
    def title(self) -> str:
        """The headline for this kind of alert (an unreached unit's escalation says so, by the unit's level)."""
        if self.unreachable:
            return _UNREACHABLE_TITLE.format(unit=unit_word(self.unit_level))
        return _KIND_TITLE[self.kind]

    def _lines(self, *, markdown: bool = False) -> list[str]:
        local = self.observed_at.astimezone(BEIJING)
        sources = "、".join(_SOURCE_NAMES.get(s, s) for s in self.sources)
        place = (
            f"{self.county_name} {self.unit_name}"
            if self.county_name and self.county_name != self.unit_name
            else (self.unit_name)
        )
        if markdown:
            place = markdown_safe(place)
        return [
            f"火点编号：{self.incident_id}",
            f"责任单位：{place}",
            f"发现时间：{local:%Y-%m-%d %H:%M}（北京时间）",
            f"来源：{sources}",
            f"置信度：{self.confidence:.0%}",
            f"坐标(WGS-84)：{self.latitude:.5f}, {self.longitude:.5f}",
            f"坐标(GCJ-02)：{self.gcj02_latitude:.5f}, {self.gcj02_longitude:.5f}",
            *([_UNREACHABLE_LINE.format(unit=unit_word(self.unit_level))] if self.unreachable else []),
        ]

    def text(self) -> str:
        """Plain text (WeCom text, e-mail body, DingTalk/Feishu text)."""
        return "\n".join(
            [f"【{self.title}】", *self._lines(), f"地图：{self.map_url}", f"详情与签收：{self.incident_url}"]
        )

    def markdown(self) -> str:
        """Markdown for WeCom and DingTalk group bots (the place's names :func:`markdown_safe`)."""
        lines = [f"### {self.title}", *(f"- {line}" for line in self._lines(markdown=True))]
        lines += [f"- [地图导航]({self.map_url})", f"- [详情与签收]({self.incident_url})"]
        return "\n".join(lines)

    def sms(self) -> str:
        """A short text: SMS templates are short and links are often blocked. One SMS segment
        (:data:`SMS_SEGMENT` characters): the township's name is cut (marked …) where the whole text would be
        longer, never the time, the coordinates or the incident number (a reminder for a six-character township
        such as 双营子回族乡 had run to 72 characters, two billed parts). An unreached unit's escalation asks the
        county to phone the unit (乡镇, 区县: :func:`unit_word`) instead of to acknowledge.

        The coordinates are GCJ-02, what the phone maps a team pastes them into (Amap, WeChat) expect, and are
        labelled so (高德坐标): unlabelled, they were typed back into GPS apps or reports as WGS-84, 550–600 m off."""
        local = self.observed_at.astimezone(BEIJING)
        word = unit_word(self.unit_level, sms=True)
        title = _UNREACHABLE_SMS_TITLE.format(unit=word) if self.unreachable else _KIND_SMS_TITLE[self.kind]
        head = f"【strawfire】{title}："
        tail = (
            f" {local:%m-%d %H:%M} 高德坐标{self.gcj02_latitude:.4f},{self.gcj02_longitude:.4f} "
            f"编号{self.incident_id} {f'请联系{word}' if self.unreachable else '请立即签收'}"
        )
        room = SMS_SEGMENT - len(head) - len(tail)
        unit = self.unit_name if len(self.unit_name) <= room else self.unit_name[: max(1, room - 1)] + "…"
        return head + unit + tail

    def as_json(self) -> dict[str, Any]:
        """The machine form for generic webhooks (UTC ISO times)."""
        data = asdict(self)
        data["kind"] = self.kind.value
        data["observed_at"] = self.observed_at.isoformat()
        data["sources"] = list(self.sources)
        data["title"] = self.title
        data["unit_level"] = None if self.unit_level is None else self.unit_level.value
        return data


def digest_text(messages: list[AlertMessage], *, max_bytes: int | None = None, markdown: bool = True) -> str:
    """One message for many incidents when a bot's rate limit would otherwise be exceeded, headed with the place it
    is about (:func:`digest_place`: a county's digest of several townships' escalations names the county; it named
    the first alert's township, as if all were there).

    ``max_bytes``: the platform's limit on a message (UTF-8; WeCom markdown 4096). A digest that would be longer
    lists the incidents that fit and says how many more there are: a platform refuses an oversized message
    outright, and the retries would have sent the same oversized digest for a day before failing every alert in it.
    ``markdown=False`` for plain-text messages (Feishu ``text``), which would show markdown as typed; in markdown the
    unit's name is :func:`markdown_safe`.
    """
    place = digest_place(messages)
    named = f"：{markdown_safe(place) if markdown else place}" if place else ""
    title = f"火点汇总{named}（{len(messages)} 条）"
    header = f"### {title}" if markdown else f"【{title}】"
    entries = []
    for m in messages:
        local = m.observed_at.astimezone(BEIJING)
        link = f"[详情]({m.incident_url})" if markdown else f"详情：{m.incident_url}"
        entries.append(
            f"- {m.title} #{m.incident_id} {local:%m-%d %H:%M} "
            f"GCJ-02 {m.gcj02_latitude:.5f},{m.gcj02_longitude:.5f} {link}"
        )
    text = "\n".join([header, *entries])
    if max_bytes is None or len(text.encode()) <= max_bytes:
        return text
    kept = [header]
    for index, entry in enumerate(entries):
        more = f"- 另有 {len(entries) - index} 条，请登录系统查看"
        if len("\n".join([*kept, entry, f"- 另有 {len(entries) - index - 1} 条，请登录系统查看"]).encode()) > max_bytes:
            return "\n".join([*kept, more])
        kept.append(entry)
    return "\n".join(kept)


def digest_place(messages: list[AlertMessage]) -> str:
    """The place a digest is about: its incidents' township when they share one, else their county when they share
    that (a county's digest of several townships' escalations), else nothing (escalations that climbed to a city)."""
    units = {m.unit_name for m in messages}
    if len(units) == 1:
        return units.pop()
    counties = {m.county_name for m in messages}
    county = counties.pop() if len(counties) == 1 else None
    return county or ""


def sms_digest_text(messages: list[AlertMessage]) -> str:
    """One SMS for several alerts to one recipient, worded by what they are, in one segment (:data:`SMS_SEGMENT`;
    the place's name is cut, marked …, where the text would be longer).

    Why by kind: it read "N 个火点待签收" whatever it carried, and a county's digest of escalations, or of townships
    its alerts could not reach, asked the county to acknowledge instead of to act (phone the townships). New-fire
    alerts and reminders (a township's) ask to acknowledge, saying how many are reminders; escalations (a county's)
    say how many are of townships that could not be reached.

    The units are worded by their level (:func:`unit_word`): 乡镇 when the escalations are all of townships, 区县
    when all of county-level units, 责任单位 (the unit responsible) when of both or not known."""
    count = len(messages)
    escalations = [m for m in messages if m.kind is AlertKind.ESCALATION]
    unreachable = sum(m.unreachable for m in escalations)
    reminders = sum(m.kind is AlertKind.REMINDER for m in messages)
    levels = {m.unit_level for m in escalations}
    level = levels.pop() if len(levels) == 1 else None
    word, short = unit_word(level), unit_word(level, sms=True)
    if escalations and unreachable == count:
        # "责任单位告警无法送达" reads as the unit's own alert: a level not known says only that the alerts failed.
        what = f"{word if level in _UNIT_WORDS else ''}告警无法送达，请电话通知{word}处置。"
    elif escalations and unreachable:
        what = f"已升级（{unreachable} 个{short}无法送达），请登录系统处置并联系{word}。"
    elif escalations:
        what = f"超时未处置已升级，请督促{word}处置。"
    elif reminders == count:
        what = "超时未签收（再次提醒），请立即签收。"
    elif reminders:
        what = f"待签收（{reminders} 个已超时未签收），请立即签收。"
    else:
        what = "待签收，请登录系统处置。"
    head, tail = "【strawfire】", f" 有 {count} 个火点{what}"
    place = digest_place(messages)
    room = SMS_SEGMENT - len(head) - len(tail)
    if len(place) > room:
        place = place[: max(1, room - 1)] + "…"
    return head + place + tail if place else f"{head}{tail.lstrip()}"
