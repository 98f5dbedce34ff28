"""Operators' CLI gaps, run as a user would (the installed ``strawfire`` command in a fresh folder, output piped):
a recipient list readable at 80 columns and as JSON, a list of user accounts, ingest errors without a summary of
zeros, a warning (and on a terminal a question) before months-old satellite rows alert townships, the poll loop's
one-minute floor said, and ``db upgrade`` naming the revisions it applied."""

from __future__ import annotations

import json
import os
import pty
import select
import sqlite3
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

from service.db import utcnow
from tests.test_cli import STRAWFIRE, run
from tests.test_satellite_cli import MODIS_HEADER, modis_rows

#: Targets of the recipients the list shows: bot keys and tokens in paths and queries, a secret on stdin.
DINGTALK_TOKEN = "dt0123456789abcdefdt"
WECOM_KEY = "693a91f6-7a1b-4c2d-9e8f-wecomkey0001"
FEISHU_HOOK = "fs-hook-0a1b2c3d4e5f"
SIGNING_SECRET = "SEC-signing-secret-42"
RECIPIENTS = [
    ("双阳区奢岭街道巡查群", "DEMO01", "township", "dingtalk", f"https://oapi.dingtalk.com/robot/send?access_token={DINGTALK_TOKEN}"),
    ("县督导", "DEMO00", "county", "wecom", f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"),
    ("东河乡值班短信", "DEMO02", "township", "sms", "https://sms.example.cn/send?token=smstoken99#13800138000"),
    ("Feishu group", "DEMO03", "township", "feishu", f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_HOOK}"),
    ("西坡乡邮件", "DEMO04", "township", "email", "duty@xipo.example.cn"),
]  # fmt: skip
#: What the list shows of each target: a URL's scheme and host, an SMS phone number and an address in full.
SHOWN = [
    "https://oapi.dingtalk.com/…",
    "https://qyapi.weixin.qq.com/…",
    "https://sms.example.cn/…#13800138000",
    "https://open.feishu.cn/…",
    "duty@xipo.example.cn",
]


def _demo(tmp_path: Path) -> None:
    assert run("db", "upgrade", cwd=tmp_path).returncode == 0
    assert run("demo", "load", cwd=tmp_path).returncode == 0


def test_the_recipient_list_reads_at_80_columns_piped_and_as_json_without_secrets(tmp_path: Path) -> None:
    """The audit: at 80 columns (a terminal, or piped) nine columns cut names to "双阳 …", roles to "townsh…",
    channels to "dingt…" and every URL to "https:…"; and there was no JSON."""
    _demo(tmp_path)
    for name, unit, role, channel, target in RECIPIENTS:
        secret = ["--secret-stdin"] if channel == "feishu" else []
        added = run(
            "alerts", "add-recipient", name, "--unit", unit, "--role", role, "--channel", channel, "--target", target,
            *secret, cwd=tmp_path, stdin=SIGNING_SECRET + "\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    assert run("alerts", "disable-recipient", "5", cwd=tmp_path).returncode == 0  # 西坡乡邮件

    listed = run("alerts", "list-recipients", cwd=tmp_path, env={"COLUMNS": "80"})
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in listed.stdout.replace("/…", "")  # nothing cut: only the paths left out of the URLs
    words = listed.stdout.split()
    for (name, unit, role, channel, _), shown in zip(RECIPIENTS, SHOWN, strict=True):
        assert any(name in line for line in lines), name
        assert any(shown in line for line in lines), shown
        assert {unit, role, channel} <= set(words)
    for secret in (DINGTALK_TOKEN, WECOM_KEY, FEISHU_HOOK, SIGNING_SECRET, "smstoken99", "access_token"):
        assert secret not in listed.stdout

    as_json = run("alerts", "list-recipients", "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    for secret in (DINGTALK_TOKEN, WECOM_KEY, FEISHU_HOOK, SIGNING_SECRET, "smstoken99", "access_token"):
        assert secret not in as_json.stdout
    rows = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert rows["Feishu group"] == {
        "id": 4,
        "name": "Feishu group",
        "unit_code": "DEMO03",
        "role": "township",
        "channel": "feishu",
        "target": "https://open.feishu.cn/…",
        "has_secret": True,
        "rate_per_min": None,
        "active": True,
        "pending": 0,
    }
    assert [rows[name]["target"] for name, *_ in RECIPIENTS] == SHOWN
    assert (rows["西坡乡邮件"]["active"], rows["县督导"]["has_secret"]) == (False, False)
    only = json.loads(run("alerts", "list-recipients", "--unit", "DEMO00", "--json", cwd=tmp_path).stdout)
    assert [row["name"] for row in only] == ["县督导"]


def test_users_are_listed_with_role_unit_and_state_never_a_hash(tmp_path: Path) -> None:
    _demo(tmp_path)
    before = utcnow()
    for args in (("wang", "--role", "patrol", "--unit", "DEMO01"), ("tower07", "--role", "device")):
        added = run("users", "add", *args, "--password-stdin", cwd=tmp_path, stdin="a-long-password\n")
        assert added.returncode == 0, added.stderr
    assert run("users", "disable", "tower07", cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "var" / "strawfire.sqlite3") as connection:
        hashes = [row[0] for row in connection.execute("SELECT password_hash FROM users")]

    listed = run("users", "list", cwd=tmp_path, env={"COLUMNS": "80"})
    assert listed.returncode == 0, listed.stderr
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in listed.stdout.splitlines() if "│" in line]
    rows = {name: rest for name, *rest in cells}  # name: role, unit, active, created
    assert rows["wang"][:3] == ["patrol", "DEMO01", "yes"]
    assert rows["tower07"][:3] == ["device", "–", "no"]
    assert rows["demo-supervisor"][:3] == ["supervisor", "DEMO00", "yes"]
    # Created today (UTC): the day the test began or, run across midnight, the next.
    assert rows["wang"][3][:11] in {f"{day:%Y-%m-%d} " for day in (before, utcnow())}
    as_json = run("users", "list", "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    users = {user["username"]: user for user in json.loads(as_json.stdout)}
    assert set(users) == {"demo-admin", "demo-patrol", "demo-supervisor", "tower07", "wang"}
    assert set(users["wang"]) == {"username", "role", "unit_code", "active", "created_at"}
    assert (users["tower07"]["role"], users["tower07"]["unit_code"], users["tower07"]["active"]) == (
        "device",
        None,
        False,
    )
    assert users["wang"]["created_at"].endswith("+00:00")
    for output in (listed.stdout, as_json.stdout):
        assert "$argon2" not in output
        assert not any(password_hash in output for password_hash in hashes)


def test_a_file_that_cannot_be_read_prints_only_its_error(tmp_path: Path) -> None:
    """A missing, compressed or other file printed "rows read 0, new 0, …" before the error: as if it had been
    ingested and held no fire. The status stays 2."""
    import gzip

    _demo(tmp_path)
    packed = tmp_path / "fires.csv.gz"
    packed.write_bytes(gzip.compress(MODIS_HEADER.encode()))
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    for command in ("firms", "himawari"):
        result = run(command, "ingest", "missing.csv", str(packed), str(other), cwd=tmp_path)
        assert result.returncode == 2
        assert result.stdout == ""
        errors = result.stderr.splitlines()
        assert errors[0] == "error: missing.csv: No such file or directory"
        assert len(errors) == 3, result.stderr  # one line a file, nothing else
        assert all(line.startswith("error: ") for line in errors), result.stderr


def _fires_file(tmp_path: Path, days_ago: int, today: datetime | None = None) -> Path:
    """Two MODIS rows in 东河乡 (DEMO02) and one outside every unit, observed ``days_ago`` days before ``today``
    (default: now) at 04:10 UTC (yesterday's time is in the past whatever the hour)."""
    day = ((today or utcnow()) - timedelta(days=days_ago)).strftime("%Y-%m-%d")
    path = tmp_path / f"modis_{days_ago}d.csv"
    path.write_text(MODIS_HEADER + modis_rows([(44.36, 125.73), (44.37, 125.74), (30.0, 110.0)], day), "utf-8")
    return path


def _satellite_rows(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "var" / "strawfire.sqlite3") as connection:
        return int(connection.execute("SELECT count(*) FROM observations WHERE kind = 'satellite'").fetchone()[0])


def test_months_old_rows_are_named_before_they_alert_townships(tmp_path: Path) -> None:
    """The audit ingested the 2025-04-23 sample on today's clock: incidents opened and new-fire alerts queued to
    real groups without a word. Off a terminal (cron) the file is ingested as before, with a warning first that
    counts the old rows that become fires (inside the units, not stored yet) and names `firms history`."""
    _demo(tmp_path)
    today = utcnow()  # one day for the file and the warning expected, even if the test runs across midnight
    fresh, old = _fires_file(tmp_path, 1, today), _fires_file(tmp_path, 200, today)
    quiet = run("firms", "ingest", str(fresh), cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "warning" not in quiet.stderr
    result = run("firms", "ingest", str(old), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    oldest = (today - timedelta(days=200)).strftime("%Y-%m-%d 04:10 UTC")
    assert result.stderr.splitlines() == [
        f"warning: {old}: 2 new row(s) inside the units were observed more than 2 days ago (the oldest {oldest}); "
        "ingested, their fires open incidents and alert their townships now, as new fires. For history only (fixed "
        f"heat sources; no incidents, no alerts): strawfire firms history {old}"
    ]
    assert result.stdout.startswith("rows read 3, new 2,")
    again = run("firms", "ingest", str(old), cwd=tmp_path)
    assert "warning" not in again.stderr  # stored already: ingesting it again makes no fire


def _on_a_terminal(tmp_path: Path, *args: str, answer: str | None) -> str:
    """``strawfire ARGS`` with stdin and stdout on a terminal (stderr too); ``answer`` typed at the question."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")} | {"COLUMNS": "200"}
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [STRAWFIRE, *args], cwd=tmp_path, env=env, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the command ended and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if answer is not None and b"[y/N]" in output:
                    os.write(leader, answer.encode() + b"\n")
                    answer = None
            elif process.poll() is not None:
                break
        process.wait(timeout=30)
    finally:
        process.kill()  # a command still waiting for an answer fails the test, and is not left running
        os.close(leader)
    return output.decode(errors="replace").replace("\r\n", "\n")


def test_on_a_terminal_old_rows_are_asked_about_first(tmp_path: Path) -> None:
    _demo(tmp_path)
    old = _fires_file(tmp_path, 200)
    before = _satellite_rows(tmp_path)
    declined = _on_a_terminal(tmp_path, "firms", "ingest", str(old), answer="n")
    assert f"ingest {old.name} all the same? [y/N]" in declined
    assert f"{old}: not ingested" in declined
    assert "rows read" not in declined
    assert _satellite_rows(tmp_path) == before  # nothing written
    confirmed = _on_a_terminal(tmp_path, "firms", "ingest", "--yes", str(old), answer=None)
    assert "[y/N]" not in confirmed
    assert "2 new row(s) inside the units were observed more than 2 days ago" in confirmed
    assert "rows read 3, new 2," in confirmed
    # The two inside are stored; the row outside the units is counted (screened out), not stored.
    assert _satellite_rows(tmp_path) == before + 2
    assert "screened out 1 (outside_coverage 1)" in confirmed


def test_the_poll_loop_says_it_polls_at_most_once_a_minute(tmp_path: Path) -> None:
    """``firms.poll_interval_min`` 0.25 polled once a minute without a word."""
    helped = run("firms", "poll", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert "at most once a minute" in helped.stdout
    env = {"STRAWFIRE_FIRMS__POLL_INTERVAL_MIN": "0.25"}
    result = run("firms", "poll", "--loop", cwd=tmp_path, env=env)  # no MAP_KEY: it stops after saying so
    assert result.returncode == 2
    logged = [line.split(" ", 2)[2] for line in result.stderr.splitlines() if " strawfire.firms: " in line]
    assert logged == [
        "WARNING strawfire.firms: firms.poll_interval_min is 0.25: firms poll --loop polls at most once a minute, so "
        "every minute",
        "INFO strawfire.firms: polling FIRMS every 1 min",
    ]
    default = run("firms", "poll", "--loop", cwd=tmp_path)
    assert "WARNING" not in default.stderr
    assert "polling FIRMS every 1 min" in default.stderr
    slow = run("firms", "poll", "--loop", cwd=tmp_path, env={"STRAWFIRE_FIRMS__POLL_INTERVAL_MIN": "15"})
    assert "polling FIRMS every 15 min" in slow.stderr


def test_db_upgrade_says_which_revisions_it_applied(tmp_path: Path) -> None:
    from service.db import MIGRATIONS_DIR

    head = max(path.name[:4] for path in MIGRATIONS_DIR.joinpath("versions").glob("0*.py"))
    fresh = run("db", "upgrade", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.startswith(f"database at head ({head}): upgraded from base, {int(head)} migrations applied (")
    again = run("db", "upgrade", cwd=tmp_path)
    assert again.stdout.startswith(f"database at head ({head}): no migration to apply (")
    below = f"{int(head) - 2:04d}"
    assert run("db", "downgrade", below, "--yes", cwd=tmp_path).returncode == 0
    step = run("db", "upgrade", f"{int(head) - 1:04d}", cwd=tmp_path)
    assert step.stdout.startswith(f"database at {int(head) - 1:04d}: upgraded from {below}, 1 migration applied (")
    assert step.stderr.startswith(f"{below} → {int(head) - 1:04d} (")
    rest = run("db", "upgrade", cwd=tmp_path)
    assert rest.stdout.startswith(f"database at head ({head}): upgraded from {int(head) - 1:04d}, 1 migration")
