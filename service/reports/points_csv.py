"""The CSV of every fire point in the form provincial lists are pushed down (火点清单).

One row per fire point (merged duplicates excluded), in time order, with Chinese headings:

======================  ==========================================================
序号                     row number
县（市、区）代码/名称       county code and name
乡镇（街道）代码/名称       township code and name
经度(WGS-84), 纬度(WGS-84)  longitude, latitude (WGS-84, 6 decimals, as the headings say: not GCJ-02)
发现时间                  first observation, Beijing time (UTC+8), ``YYYY-MM-DD HH:MM``
卫星过境时间              the first satellite observation (pass time), if a satellite saw it
来源                      卫星 / 视频 / 无人机 / 巡查 (a patrol's report), joined with ``+`` when several saw it
首报来源                  the source of the first observation
处置结果                  违规焚烧 / 误报 / 计划烧除 / 处置中
误报原因                  the false-alarm reason, in Chinese
事件编号                  strawfire's incident id
归属方式                  how the location was given to its unit: 界内 (inside), 界外就近 (an edge fire point:
                        outside every unit, given to the nearest one), 人工指定 (a supervisor's reassignment),
                        辖区外 (no unit); with （界外N米） for an edge fire point, how far outside the
                        units it lies, and （本单位占N%） when the location's footprint is not wholly the unit's (a
                        satellite pixel across a border)
======================  ==========================================================

The last column is for review: an edge fire point counts for the unit it was assigned and alerted to like any
other, and the column lets the county check or contest the border cases. It is last so that the provincial
columns before it keep their places.

The file is UTF-8 with a byte-order mark and CRLF line ends, which is what Excel on a Chinese Windows needs to
open it without garbling the names.

The list shows no score, so it needs no scoring rules (:func:`service.reports.data.collect_points`).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from service.reports.data import PointsData, ReportData
from service.reports.tables import (
    OUTCOME_ZH,
    REASON_ZH,
    SOURCE_ZH,
    assignment_text,
    looks_like_formula,
    satellite_pass,
    sources_text,
)
from service.stats.lifecycle import OutcomeKind, outcome
from service.stats.periods import local_time

HEADER = [
    "序号",
    "县（市、区）代码",
    "县（市、区）",
    "乡镇（街道）代码",
    "乡镇（街道）",
    "经度(WGS-84)",
    "纬度(WGS-84)",
    "发现时间",
    "卫星过境时间",
    "来源",
    "首报来源",
    "处置结果",
    "误报原因",
    "事件编号",
    "归属方式",
]


def _text(value: str | None) -> str:
    """A text cell that a spreadsheet cannot take for a formula: a leading apostrophe (what Excel itself writes
    for "text that looks like a formula") before =, +, -, @, tab or carriage return."""
    text = value or ""
    return "'" + text if looks_like_formula(text) else text


def _time(at: datetime | None) -> str:
    return "" if at is None else f"{local_time(at):%Y-%m-%d %H:%M}"


def points_csv(data: PointsData | ReportData) -> str:
    """The CSV text (without the byte-order mark)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for n, p in enumerate(sorted(data.points, key=lambda p: (p.first_observed_at, p.id)), start=1):
        result = outcome(p.transitions)
        first = p.first_sighting
        writer.writerow(
            [
                n,
                _text(p.county_code),
                _text(p.county_name),
                _text(p.township_code),
                _text(p.township_name),
                f"{p.longitude:.6f}",
                f"{p.latitude:.6f}",
                _time(p.first_observed_at),
                _time(satellite_pass(p)),
                sources_text(p),
                SOURCE_ZH[first.source] if first else "",
                OUTCOME_ZH[result.kind],
                _text(REASON_ZH.get(result.reason or "", result.reason))
                if result.kind in (OutcomeKind.FALSE_ALARM, OutcomeKind.PERMITTED_BURN)
                else "",
                p.id,
                _text(assignment_text(p)),
            ]
        )
    return buffer.getvalue()


def write_csv(data: PointsData | ReportData, out: Path | BinaryIO) -> int:
    """Write the CSV (UTF-8 with BOM); returns the number of fire points."""
    payload = points_csv(data).encode("utf-8-sig")
    if isinstance(out, Path):
        out.write_bytes(payload)
    else:
        out.write(payload)
    return len(data.points)
