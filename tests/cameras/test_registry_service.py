"""The camera registry in the service: CLI import/list, API replace/read, credentials kept from non-admins."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tests.video.test_registry import BASE

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))


def cli(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")} | (env or {})
    return subprocess.run(
        [STRAWFIRE, *args], cwd=cwd, env=clean, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_import_and_list(tmp_path: Path) -> None:
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps(BASE, ensure_ascii=False), encoding="utf-8")
    result = cli("camera", "import", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "imported 2 cameras with 3 presets" in result.stdout
    listing = cli("camera", "list", cwd=tmp_path)
    assert "nongan-07" in listing.stdout
    assert "dehui-02" in listing.stdout
    kinds = [line.split("│")[-2].strip() for line in listing.stdout.splitlines() if "nongan-07" in line]
    assert kinds == ["rtsp", "snapshot"]  # inferred from the URLs (the column was blank)
    bad = copy.deepcopy(BASE)
    bad["cameras"][1]["presets"][0]["pan_deg"] = "east"
    path.write_text(json.dumps(bad), encoding="utf-8")
    refused = cli("camera", "import", str(path), cwd=tmp_path)
    assert refused.returncode == 2
    assert "cameras[1].presets[0].pan_deg" in refused.stderr
    assert "nongan-07" in cli("camera", "list", cwd=tmp_path).stdout  # nothing half-imported


def login(client: TestClient, name: str, password: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/token", data={"username": name, "password": password}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_api_replace_and_read(client: TestClient) -> None:
    admin = login(client, "admin", "admin-password")
    assert (
        client.put("/api/v1/cameras", headers=login(client, "eval", "evaluator-password"), json=BASE).status_code == 403
    )
    assert client.put("/api/v1/cameras", headers=admin, json=BASE).json() == {"cameras": 2}
    worker = client.get("/api/v1/cameras", headers=login(client, "worker", "device-password")).json()
    assert worker["cameras"][0]["presets"][0]["source"].startswith("rtsp://admin:secret@")
    evaluator = client.get("/api/v1/cameras", headers=login(client, "eval", "evaluator-password")).json()
    assert evaluator["cameras"][0]["presets"][0]["source"] == "rtsp://***@10.0.0.7/Streaming/Channels/101"
    broken = client.put("/api/v1/cameras", headers=admin, json={"cameras": [{"id": "x"}]})
    assert broken.status_code == 422
    assert "cameras[0]" in broken.json()["detail"]


def test_patrol_command_runs_the_pipeline_over_a_frame_folder(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from tests.httpserver import http_receiver

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (108, 192, 3), dtype=np.uint8)).save(frames / f"{i:03d}.jpg")  # 16:9
    registry = copy.deepcopy(BASE)
    registry["cameras"] = registry["cameras"][:1]
    registry["cameras"][0]["presets"] = [
        {"id": "p1", "pan_deg": 30.0, "tilt_deg": -0.8, "source": str(frames), "source_kind": "folder", "cadence_s": 60}
    ]
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps(registry, ensure_ascii=False), encoding="utf-8")
    with http_receiver() as service:
        result = cli(
            "patrol",
            "--service-url",
            service.url,
            "--registry",
            str(path),
            "--timeout-s",
            "60",
            cwd=tmp_path,
            stdin="device-token\n",
        )
    assert result.returncode == 0, result.stderr
    # Files without a capture time (their modification times tied or milliseconds apart) are not throttled by the
    # 60 s cadence: all four are analysed, in name order.
    assert result.stdout.strip() == "nongan-07/p1: 4 frames, 0 errors"
    no_token = cli("patrol", "--service-url", "http://127.0.0.1:9", "--registry", str(path), cwd=tmp_path, stdin="")
    assert no_token.returncode == 2
    assert "device token" in no_token.stderr
    # The second opinion (``detector.second_opinion``), chosen as the Celery workers choose it.
    with http_receiver() as service:
        judged = cli(
            "patrol", "--service-url", service.url, "--registry", str(path), "--timeout-s", "60",
            "--detector", "onnx+rules", cwd=tmp_path, stdin="device-token\n",
        )  # fmt: skip
    assert judged.returncode == 0, judged.stderr
    assert judged.stdout.strip() == "nongan-07/p1: 4 frames, 0 errors"
    unknown = cli(
        "patrol", "--service-url", "http://127.0.0.1:9", "--registry", str(path),
        cwd=tmp_path, stdin="device-token\n", env={"STRAWFIRE_VIDEO__DETECTOR": "onnx+thermal"},
    )  # fmt: skip
    assert unknown.returncode == 2
    assert "unknown detector 'onnx+thermal'" in unknown.stderr
