"""The XLSX workbook and the provincial CSV of the recorded scenario: sheets, headings and hand-checked values."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from service.reports import tables
from service.reports.data import ReportData
from service.reports.points_csv import HEADER, write_csv
from service.reports.xlsx import SHEETS, write_xlsx
from tests.stats.scenario import EAST, SOUTH, WEST

Scenario = tuple[str, sessionmaker[Session], dict[str, int]]


def test_workbook_has_one_sheet_per_table(november: ReportData, tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    assert write_xlsx(november, path) == list(SHEETS)
    book = load_workbook(path)
    assert book.sheetnames == [
        "Ranked units",
        "Score items",
        "Response times",
        "Fire points",
        "Daily trend",
        "Rules",
    ]
    headers = {name: [c.value for c in book[name][1]] for name in book.sheetnames}
    assert headers["Ranked units"][:5] == ["rank 名次", "code 代码", "unit 单位", "parent 上级", "score 得分"]
    assert headers["Fire points"] == tables.POINTS_HEADER
    assert headers["Daily trend"] == tables.DAILY_HEADER
    assert headers["Response times"] == tables.RESPONSE_HEADER

    ranked = [[c.value for c in row] for row in book["Ranked units"].iter_rows(min_row=2)]
    assert [(r[0], r[1], r[2], r[4]) for r in ranked] == [
        (1, WEST, "西镇", 99.5),
        (2, SOUTH, "南乡", pytest.approx(29.28, abs=0.01)),
        (3, EAST, "东镇", 0.0),
    ]
    east = ranked[2]
    column = {h: i for i, h in enumerate(headers["Ranked units"])}
    assert east[column["violations 违规火点"]] == 3
    assert east[column["satellite 卫星点"]] == 2
    assert east[column["self-found 自查自报"]] == 1
    assert east[column["deductions 扣分"]] == 109.5
    assert east[column["sanction 问责"]] == "全市通报批评，取消评优资格"  # 2 charged: C is self-found

    items = [[c.value for c in row] for row in book["Score items"].iter_rows(min_row=2)]
    assert sum(1 for i in items if i[0] == EAST) == 7


def test_workbook_values(november: ReportData, scenario_db: Scenario, tmp_path: Path) -> None:
    _, _, ids = scenario_db
    path = tmp_path / "report.xlsx"
    write_xlsx(november, path)
    book = load_workbook(path)
    header = tables.POINTS_HEADER
    points = {
        row[0]: dict(zip(header, row, strict=True))
        for row in book["Fire points"].iter_rows(min_row=2, values_only=True)
    }
    assert sorted(points) == sorted(ids[f] for f in "ABCDEFGJ")  # H (duplicate) and K (October) are not in it
    a = points[ids["A"]]
    assert (a["longitude (WGS-84) 经度(WGS-84)"], a["latitude (WGS-84) 纬度(WGS-84)"]) == (125.05, 44.05)
    assert a["first observed 发现时间 (UTC+8)"] == datetime(2025, 11, 3, 10, 0)
    assert a["satellite pass 卫星过境时间 (UTC+8)"] == datetime(2025, 11, 3, 10, 0)
    assert (a["outcome 处置结果"], a["acknowledge min 签收用时"], a["closed min 销号用时"]) == ("违规焚烧", 10, 140)
    assert a["burned m² 过火面积"] == 500
    b = points[ids["B"]]
    assert (b["sources 来源"], b["first source 首报来源"], b["acknowledge 签收时限"]) == ("卫星+视频", "视频", "missed")
    assert points[ids["D"]]["reason 原因"] == "工业热源"
    assert points[ids["J"]]["notified 推送时间 (UTC+8)"] is None

    days = {row[0]: row[1:] for row in book["Daily trend"].iter_rows(min_row=2, values_only=True)}
    assert len(days) == 30
    # fire points, violations, false alarms, permitted burns, open, satellite, camera, drone, patrol
    assert days["2025-11-03"] == (6, 3, 1, 1, 1, 3, 3, 1, 0)
    assert days["2025-11-01"] == (1, 0, 0, 0, 1, 0, 1, 0, 0)
    assert days["2025-11-04"] == (1, 1, 0, 0, 0, 1, 0, 0, 0)
    assert days["2025-11-02"] == (0,) * 9

    rules = dict(book["Rules"].iter_rows(min_row=2, values_only=True))
    assert rules["version"] == "example-v2"
    assert rules["file"] == "scoring-example-v2.toml"
    assert rules["fire_points.satellite"] == 30
    assert rules["reporting.self_found_sources"] == "drone"
    assert rules["deadline 229902 acknowledge / on site min"] == "5.0 / 30.0"

    response = [
        dict(zip(tables.RESPONSE_HEADER, row, strict=True))
        for row in book["Response times"].iter_rows(min_row=2, values_only=True)
    ]
    assert [(r["group 分组"], r["key 代码"]) for r in response] == [
        ("township", EAST),
        ("township", WEST),
        ("township", SOUTH),
        ("source", "satellite"),
        ("source", "camera"),
        ("source", "drone"),
        ("total", None),
    ]
    total = response[-1]
    # On site: 8, 30, 40, 60; G's 90 was after the supervisor reopened its false alarm (a later round).
    assert (total["acknowledge p50 min"], total["acknowledge p90 min"], total["on_site p90 min"]) == (10, 20, 60)
    assert (total["acknowledge met 按时签收"], total["acknowledge missed 签收超时"]) == (4, 3)


def test_csv_in_the_provincial_form(november: ReportData, scenario_db: Scenario) -> None:
    _, _, ids = scenario_db
    buffer = io.BytesIO()
    assert write_csv(november, buffer) == 8
    raw = buffer.getvalue()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel on Chinese Windows reads UTF-8
    assert b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == HEADER
    body = [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]
    assert [r["序号"] for r in body] == [str(i) for i in range(1, 9)]
    assert body[0]["事件编号"] == str(ids["J"])  # first in time: 2025-11-01 00:30 Beijing time
    assert body[0]["发现时间"] == "2025-11-01 00:30"
    assert body[0]["处置结果"] == "处置中"
    a = next(r for r in body if r["事件编号"] == str(ids["A"]))
    assert a == {
        "序号": "2",
        "县（市、区）代码": "229901",
        "县（市、区）": "甲县",
        "乡镇（街道）代码": EAST,
        "乡镇（街道）": "东镇",
        "经度(WGS-84)": "125.050000",
        "纬度(WGS-84)": "44.050000",
        "发现时间": "2025-11-03 10:00",
        "卫星过境时间": "2025-11-03 10:00",
        "来源": "卫星",
        "首报来源": "卫星",
        "处置结果": "违规焚烧",
        "误报原因": "",
        "事件编号": str(ids["A"]),
        "归属方式": "界内",
    }
    e = next(r for r in body if r["事件编号"] == str(ids["E"]))
    assert (e["处置结果"], e["误报原因"]) == ("计划烧除", "计划烧除")
    b = next(r for r in body if r["事件编号"] == str(ids["B"]))
    assert (b["来源"], b["首报来源"], b["卫星过境时间"]) == ("卫星+视频", "视频", "2025-11-03 11:30")
