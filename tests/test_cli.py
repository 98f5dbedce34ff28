"""The CLI contract, run as a user would: the installed ``strawfire`` command in a fresh folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_path

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    environment.update(env or {})
    return subprocess.run(
        [STRAWFIRE, *args], cwd=cwd, env=environment, input=stdin, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def test_assign_json_contract_with_real_boundaries(tmp_path: Path) -> None:
    boundary = shared_path("boundaries", "220100_full.json")
    points = tmp_path / "points.csv"
    points.write_text(
        "name,longitude,latitude,extra\na,125.41132,43.59023,x\nb,127.9,44.0,y\nc,125.3,43.9,z\n",
        encoding="utf-8",
    )
    result = run(
        "regions",
        "assign",
        str(points),
        "--regions",
        str(boundary),
        "--regions-crs",
        "gcj02",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["region_code"] for r in rows] == ["220102", None, "220103"]
    assert [r["status"] for r in rows] == ["inside", "outside", "inside"]
    assert rows[0] == {
        "latitude": 43.59023,
        "longitude": 125.41132,
        "region_code": "220102",
        "region_name": "南关区",
        "status": "inside",
        "distance_m": 0.0,
    }
    assert rows[1]["distance_m"] > 500
    assert not (tmp_path / "var").exists(), "assign with --regions needs no database"


@pytest.mark.parametrize(
    ("points_text", "args", "message"),
    [
        ("latitude,longitude\n44,125\n44,xx\n", (), "line 3, field 'longitude'"),
        ("lat,lon\n44,125\n", (), "no latitude and no longitude column"),
        ("latitude,longitude\n44,125\n", ("--regions-crs", "mars2000"), "unknown CRS 'mars2000'"),
        ("", (), "the file is empty"),
    ],
)
def test_assign_bad_input_is_one_clear_line(
    tmp_path: Path, points_text: str, args: tuple[str, ...], message: str
) -> None:
    boundary = tmp_path / "b.geojson"
    boundary.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"1",'
        '"name":"a"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}]}'
    )
    points = tmp_path / "p.csv"
    points.write_text(points_text, encoding="utf-8")
    result = run("regions", "assign", str(points), "--regions", str(boundary), *args, "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_import_list_and_reimport_on_the_embedded_database(tmp_path: Path) -> None:
    boundary = shared_path("boundaries", "220100_full.json")
    codes = shared_path("boundaries", "areas_2201.csv")
    first = run(
        "regions",
        "import",
        str(boundary),
        "--level",
        "county",
        "--crs",
        "gcj02",
        "--codes",
        str(codes),
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    assert "imported 11 county units" in first.stdout
    assert "repaired feature 9 (220182)" in first.stderr
    assert (tmp_path / "var" / "strawfire.sqlite3").exists()
    listing = run("regions", "list", "--level", "county", cwd=tmp_path)
    assert "公主岭市" in listing.stdout
    again = run("regions", "import", str(boundary), "--level", "county", "--crs", "gcj02", cwd=tmp_path)
    assert "replaced 11" in again.stdout
    bad = run("regions", "import", str(boundary), "--level", "county", "--crs", "utm", cwd=tmp_path)
    assert bad.returncode == 2
    assert "unknown CRS" in bad.stderr
    # Assign from the database when no --regions is given.
    points = tmp_path / "p.csv"
    points.write_text("latitude,longitude\n43.59023,125.41132\n", encoding="utf-8")
    from_db = run("regions", "assign", str(points), "--json", cwd=tmp_path)
    assert json.loads(from_db.stdout)[0]["region_code"] == "220102"


def test_db_upgrade_and_demo_load(tmp_path: Path) -> None:
    upgrade = run("db", "upgrade", cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    demo = run("demo", "load", cwd=tmp_path)
    assert "DEMO region loaded" in demo.stdout
    bad = run("db", "upgrade", cwd=tmp_path, env={"STRAWFIRE_DATABASE_URL": "mysql://x"})
    assert bad.returncode == 2
    assert "database_url" in bad.stderr


def test_users_and_device_token(tmp_path: Path) -> None:
    created = run(
        "users", "add", "cam7", "--role", "device", "--password-stdin", cwd=tmp_path, stdin="device-password\n"
    )
    assert created.returncode == 0, created.stderr
    assert "cam7 (device)" in created.stdout
    token = run("users", "token", "cam7", "--days", "30", cwd=tmp_path)
    assert token.returncode == 0
    assert token.stdout.count(".") == 2  # a JWT
    short = run("users", "add", "p1", "--role", "patrol", "--password-stdin", cwd=tmp_path, stdin="longenough\n")
    assert short.returncode == 2
    assert "needs --unit" in short.stderr
    assert run("users", "token", "nobody", cwd=tmp_path).returncode == 2


def test_a_new_password_revokes_earlier_tokens_and_a_disabled_user_is_refused(tmp_path: Path) -> None:
    """A leaked device token (valid up to ten years) could not be revoked: no command changed a password or
    disabled a user, and tokens did not depend on the password."""
    from fastapi.testclient import TestClient

    from service.config import Settings
    from service.main import create_app

    added = run("users", "add", "cam8", "--role", "device", "--password-stdin", cwd=tmp_path, stdin="device-password\n")
    assert added.returncode == 0, added.stderr
    old = run("users", "token", "cam8", cwd=tmp_path).stdout.strip()
    with TestClient(create_app(Settings(data_dir=tmp_path / "var"))) as client:

        def answer(token: str) -> int:
            return client.get("/api/v1/cameras", headers={"Authorization": f"Bearer {token}"}).status_code

        assert answer(old) == 200
        changed = run("users", "passwd", "cam8", "--password-stdin", cwd=tmp_path, stdin="another-password\n")
        assert changed.returncode == 0, changed.stderr
        assert answer(old) == 401  # issued under the old password
        new = run("users", "token", "cam8", cwd=tmp_path).stdout.strip()
        assert answer(new) == 200
        assert run("users", "disable", "cam8", cwd=tmp_path).returncode == 0
        assert answer(new) == 401
        assert run("users", "token", "cam8", cwd=tmp_path).returncode == 2  # no token for a disabled user
        assert run("users", "enable", "cam8", cwd=tmp_path).returncode == 0
        assert answer(new) == 200
    short = run("users", "passwd", "cam8", "--password-stdin", cwd=tmp_path, stdin="short\n")
    assert short.returncode == 2
    assert "at least" in short.stderr
    assert run("users", "disable", "nobody", cwd=tmp_path).returncode == 2


def test_the_readme_start_serves_on_a_fresh_folder_and_again_on_the_same_one(tmp_path: Path) -> None:
    """`make run`'s steps as a user runs them (db upgrade, demo load, serve --demo) with the alert worker on: a
    change to how SQLite transactions begin once made the start fail with "database is locked" while every other
    test passed."""
    import httpx

    from tests.serving import serving

    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env["STRAWFIRE_DATA_DIR"] = str(tmp_path / "var")
    for _ in range(2):  # a fresh folder, then the same one again
        assert run("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
        assert run("demo", "load", cwd=tmp_path, env=env).returncode == 0
        with serving(tmp_path, env, "--demo") as url:  # and the stop at the end exits 0
            assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
            assert httpx.get(f"{url}/app/", timeout=5).status_code == 200
