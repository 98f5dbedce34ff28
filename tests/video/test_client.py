"""The sighting records, their JSON, and the HTTP client: retries, refusals, and a real FastAPI endpoint as the
service will write it (``Form`` JSON + ``UploadFile`` JPEG) receiving exactly what the client sends."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import cv2
import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, File, Form, Header, HTTPException, UploadFile

from detector.detections import Detections
from detector.sequence import Event
from tests.httpserver import http_receiver
from tests.video.figlib import LABELS_INFO, figlib_registry
from video.client import ServiceUnavailable, SightingClient, SightingRejected
from video.errors import InputError
from video.patrol import FramePipeline, MemoryVerifierStore, PostOutcome
from video.sighting import (
    CAMERA_PATH,
    DRONE_PATH,
    CameraSighting,
    SightingUpload,
    check_evidence,
    parse_sighting,
    sighting_json_schema,
)
from video.sources import Backoff, Frame

NO_WAIT = Backoff(initial_s=0.0, max_s=0.0, jitter=0.0)


class _Unused:
    info = LABELS_INFO

    def detect(self, images: Any, *, conf: float | None = None) -> list[Any]:
        raise AssertionError("not called")


class _NullSink:
    def send(self, upload: SightingUpload) -> PostOutcome:
        return PostOutcome(upload.key, True)


def sample_upload(state: str = "confirmed") -> SightingUpload:
    """A camera sighting built by the pipeline itself, from a synthetic 1280×854 frame."""
    registry = figlib_registry()
    camera, preset = registry.preset("figlib-mobo-c", "p1")
    pipeline = FramePipeline(registry, _Unused(), _NullSink(), store=MemoryVerifierStore())
    image = np.full((854, 1280, 3), (90, 120, 80), np.uint8)
    frame = Frame(image, datetime(2026, 4, 20, 3, 4, 5, tzinfo=UTC), camera.id, preset.id, 17)
    box = (10.9, 405.9, 46.8, 429.3)
    event = Event("smoke", 100, 103, None if state == "confirmed" else 110, box, 0.61)
    detections = Detections(
        (1280, 854),
        "x",
        "1",
        ("fire", "smoke"),
        np.array([box], np.float32),
        np.array([0.61], np.float32),
        np.ones(1, np.int64),
    )
    return pipeline.camera_sighting(camera, preset, frame, event, state, detections, 103, pipeline.evidence(frame))  # type: ignore[arg-type]


def test_camera_sighting_json_round_trips_and_validates() -> None:
    upload = sample_upload()
    text = upload.json_text()
    parsed = parse_sighting(text)
    assert isinstance(parsed, CameraSighting)
    assert parsed == upload.sighting
    data = upload.sighting.model_dump(mode="json")
    assert data["captured_at"] == "2026-04-20T03:04:05Z"
    assert data["kind"] == "camera"
    assert data["wedge"]["type"] == "Polygon"
    assert data["wedge"]["coordinates"][0][0] == data["wedge"]["coordinates"][0][-1]
    assert data["ground_status"] in ("hit", "above_horizon", "beyond_max_range")
    assert (data["ground"] is None) == (data["ground_status"] != "hit")
    assert data["boxes"][0] == {"class_name": "smoke", "confidence": 0.61, "xyxy": [10.9, 405.9, 46.8, 429.3]}
    assert data["evidence"]["size_bytes"] == len(upload.evidence_jpeg)
    assert upload.path == CAMERA_PATH
    assert upload.key.endswith("/confirmed")
    assert sample_upload("ended").key.endswith("/ended")
    schema = sighting_json_schema()
    assert set(schema["discriminator"]["mapping"]) == {"camera", "drone"}


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["boxes"][0].update(confidence=1.5), "boxes.0.confidence"),
        (lambda d: d.update(captured_at="2026-04-20T03:04:05"), "captured_at"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(camera_id="bad id"), "camera_id"),
        (lambda d: d["wedge"]["coordinates"][0].pop(), "wedge.coordinates"),
        (lambda d: d.update(ground=None), "sighting"),
        (lambda d: d.update(kind="satellite"), "kind"),
    ],
)
def test_invalid_sightings_are_refused_with_the_field(edit: Any, field: str) -> None:
    data = sample_upload().sighting.model_dump(mode="json")
    if data["ground"] is None and field == "sighting":
        data["ground_status"] = "hit"  # the same inconsistency, the other way round
    edit(data)
    with pytest.raises(InputError) as info:
        parse_sighting(data)
    assert info.value.field is not None
    assert info.value.field.startswith(field)


def test_evidence_must_match_its_digest() -> None:
    upload = sample_upload()
    check_evidence(upload.sighting, upload.evidence_jpeg)
    with pytest.raises(InputError, match="bytes received"):
        check_evidence(upload.sighting, upload.evidence_jpeg[:-10])
    with pytest.raises(InputError, match="SHA-256"):
        check_evidence(upload.sighting, upload.evidence_jpeg[:-1] + b"\x00")
    with pytest.raises(InputError, match="not a JPEG"):
        SightingUpload(upload.sighting, b"GIF89a")


def test_client_posts_multipart_with_token_and_idempotency_key() -> None:
    upload = sample_upload()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"observation_id": 7})

    with SightingClient("http://service/", "device-token", transport=httpx.MockTransport(handler)) as client:
        response = client.post(upload)
    assert (response.status_code, response.body, response.attempts) == (201, {"observation_id": 7}, 1)
    request = seen[0]
    assert request.url == f"http://service{CAMERA_PATH}"
    assert request.headers["authorization"] == "Bearer device-token"
    assert request.headers["idempotency-key"] == upload.key
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request.read()
    assert b'name="sighting"\r\nContent-Type: application/json' in body
    assert b'name="evidence"; filename="' + upload.sighting.evidence.sha256.encode() + b'.jpg"' in body
    assert upload.evidence_jpeg in body


def test_client_retries_transient_failures_then_succeeds() -> None:
    answers: Iterator[httpx.Response | Exception] = iter(
        [
            httpx.ConnectError("refused"),
            httpx.Response(503, json={"detail": "starting"}),
            httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "slow down"}),
            httpx.Response(200, json={"duplicate": True}),
        ]
    )
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = SightingClient(
        "http://service", transport=httpx.MockTransport(handler), backoff=NO_WAIT, sleep=waits.append
    )
    response = client.post(sample_upload())
    assert response.attempts == 4
    assert waits == [0.0, 0.0, 2.0]  # Retry-After honoured


def test_client_refusals_are_final_and_unreachable_is_reported() -> None:
    calls = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(422, json={"detail": "boxes.0.confidence: out of range"})

    client = SightingClient(
        "http://service", transport=httpx.MockTransport(refuse), backoff=NO_WAIT, sleep=lambda s: None
    )
    with pytest.raises(SightingRejected, match=r"HTTP 422: boxes\.0\.confidence: out of range") as info:
        client.post(sample_upload())
    assert (info.value.status_code, calls) == (422, 1)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("no route")

    client = SightingClient(
        "http://u:secret@service", transport=httpx.MockTransport(down), retries=2, backoff=NO_WAIT, sleep=lambda s: None
    )
    with pytest.raises(ServiceUnavailable, match="failed 3 times: ConnectTimeout") as unreachable:
        client.post(sample_upload())
    assert "secret" not in str(unreachable.value)


@contextmanager
def reference_service() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real uvicorn server with the endpoints written the way the service is expected to write them."""
    app = FastAPI()
    received: list[dict[str, Any]] = []

    async def receive(
        kind: str, sighting: str, evidence: UploadFile, authorization: str | None, key: str | None
    ) -> Any:
        if authorization != "Bearer tok":
            raise HTTPException(401, "bad token")
        try:
            record = parse_sighting(sighting)
            data = await evidence.read()
            check_evidence(record, data)
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        if record.kind != kind or key != record.sighting_key:
            raise HTTPException(422, "wrong endpoint or key")
        duplicate = any(r["key"] == key for r in received)
        if not duplicate:
            received.append({"key": key, "record": record, "evidence": data, "content_type": evidence.content_type})
        return {"sighting_key": key, "duplicate": duplicate}

    @app.post(CAMERA_PATH)
    async def camera(
        sighting: Annotated[str, Form()],
        evidence: Annotated[UploadFile, File()],
        authorization: Annotated[str | None, Header()] = None,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Any:
        return await receive("camera", sighting, evidence, authorization, idempotency_key)

    @app.post(DRONE_PATH)
    async def drone(
        sighting: Annotated[str, Form()],
        evidence: Annotated[UploadFile, File()],
        authorization: Annotated[str | None, Header()] = None,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Any:
        return await receive("drone", sighting, evidence, authorization, idempotency_key)

    # A socket bound here, on a port the system picks, handed to uvicorn: no other process can take the port first.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def test_a_fastapi_endpoint_receives_exactly_what_the_client_sends() -> None:
    upload = sample_upload()
    with reference_service() as (url, received), SightingClient(url, "tok") as client:
        first = client.post(upload)
        again = client.post(upload)  # a retry after a lost answer: same key, no second observation
        with pytest.raises(SightingRejected, match="401"), SightingClient(url, "wrong") as intruder:
            intruder.post(upload)
    assert first.body == {"sighting_key": upload.key, "duplicate": False}
    assert again.body == {"sighting_key": upload.key, "duplicate": True}
    assert len(received) == 1
    assert received[0]["record"] == upload.sighting
    assert received[0]["evidence"] == upload.evidence_jpeg
    assert received[0]["content_type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(received[0]["evidence"], np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == (854, 1280, 3)


def test_client_against_the_plain_test_receiver() -> None:
    with http_receiver() as receiver, SightingClient(receiver.url, "tok") as client:
        client.post(sample_upload())
    (request,) = receiver.received()
    assert request.path == CAMERA_PATH
    assert request.headers["Authorization"] == "Bearer tok"
