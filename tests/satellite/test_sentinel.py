"""Sentinel Hub: settings and secrets, evalscripts equal to the numpy rules, and the Catalog/Process flow.

Nothing here reaches Sentinel Hub or Copernicus. A threaded HTTP server on 127.0.0.1 (port 0) plays the OAuth token
endpoint, the Catalog search (two pages from ``data/sentinel/``) and the Process API (a GeoTIFF built here with
rasterio from the numpy pixel rules); ``SHConfig.sh_base_url``/``sh_token_url`` point at it. oauthlib refuses plain
http unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set, which the server fixture does for its own tests only.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pytest
import shapely
from affine import Affine
from pydantic import SecretStr
from rasterio.io import MemoryFile

from satellite.errors import (
    SatelliteError,
    SentinelHubAuthError,
    SentinelHubRequestError,
    SentinelHubResponseError,
)
from satellite.evalscripts import OUTPUT_BANDS, evalscript, input_bands
from satellite.raster import (
    BAND_ORDER,
    LANDSAT_THRESHOLDS,
    SENTINEL2_THRESHOLDS,
    SLSTR_THRESHOLDS,
    LandsatThresholds,
    PixelFlag,
    RuleSet,
    Sensor,
    landsat_pixel_codes,
    pixel_codes,
    pixel_thresholds,
    scan_bands,
    sentinel2_pixel_codes,
)
from satellite.sentinel import (
    CDSE_BASE_URL,
    CDSE_TOKEN_URL,
    SENTINEL_HUB_BASE_URL,
    SENTINEL_HUB_TOKEN_URL,
    Collection,
    Endpoint,
    SceneRecord,
    SentinelHubClient,
    SentinelHubSettings,
    build_process_request,
    parse_scene,
    process_grid,
    scrub,
    sh_config,
    solar_zenith_deg,
)

DATA = Path(__file__).parent / "data" / "sentinel"
SECRET = "s3cr3t-Client-Secret-0123456789abcdef"
CLIENT_ID = "strawfire-test-client"
TOKEN = "fake-access-token-Zq81xPwLm"
BBOX = (125.30, 43.90, 125.33, 43.92)
"""A 2.4 km x 2.2 km area of cropland east of Changchun (UTM zone 51N)."""
NODE = shutil.which("node")

T_OBJECT = re.compile(r"^const T = (\{.*\});$", re.MULTILINE)


def js_thresholds(script: str) -> dict[str, float]:
    match = T_OBJECT.search(script)
    assert match, "evalscript has no 'const T = {...};' line"
    parsed: dict[str, float] = json.loads(match.group(1))
    return parsed


# --- settings, configuration and secrets ------------------------------------------------------------------------


def test_endpoints_and_token_urls() -> None:
    cdse = SentinelHubSettings.for_endpoint("cdse", client_id=CLIENT_ID, client_secret=SECRET)
    assert (cdse.base_url, cdse.token_url) == (CDSE_BASE_URL, CDSE_TOKEN_URL)
    assert CDSE_TOKEN_URL == ("https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token")
    sh = SentinelHubSettings.for_endpoint(Endpoint.SENTINEL_HUB, client_id=CLIENT_ID, client_secret=SECRET)
    assert (sh.base_url, sh.token_url) == (SENTINEL_HUB_BASE_URL, SENTINEL_HUB_TOKEN_URL)
    inferred = SentinelHubSettings.for_base_url("https://sh.dataspace.copernicus.eu/", client_id="a", client_secret="b")
    assert inferred.token_url == CDSE_TOKEN_URL
    with pytest.raises(SentinelHubRequestError, match="no known token URL"):
        SentinelHubSettings.for_base_url("https://example.org", client_id="a", client_secret="b")
    with pytest.raises(SentinelHubRequestError, match="client_secret is empty"):
        SentinelHubSettings(CLIENT_ID, SecretStr(""))

    config = sh_config(cdse)
    assert (config.sh_base_url, config.sh_token_url) == (CDSE_BASE_URL, CDSE_TOKEN_URL)
    assert (config.sh_client_id, config.sh_client_secret) == (CLIENT_ID, SECRET)


def test_secret_never_appears_in_reprs() -> None:
    settings = SentinelHubSettings.for_endpoint("cdse", client_id=CLIENT_ID, client_secret=SECRET)
    client = SentinelHubClient(settings)
    config = sh_config(settings)
    for text in (repr(settings), str(settings), repr(client), repr(config), str(config), str(config.to_dict())):
        assert SECRET not in text
        assert SECRET[-4:] not in text  # sentinelhub-py's own masking would show the last four characters
    assert CLIENT_ID in repr(client)
    assert isinstance(settings.client_secret, SecretStr)


def test_scrub_masks_tokens_and_secrets() -> None:
    text = (
        f"body grant_type=client_credentials&client_id=x&client_secret={SECRET} "
        f"{{'access_token': '{TOKEN}', 'expires_in': 3600}} Authorization: Bearer {TOKEN} and {SECRET}"
    )
    clean = scrub(text, SECRET)
    assert SECRET not in clean
    assert TOKEN not in clean
    assert "client_secret=***" in clean
    assert "'expires_in': 3600" in clean


# --- evalscripts: the same numbers and the same decisions as the numpy rules -------------------------------------


@pytest.mark.parametrize(
    ("sensor", "thresholds"),
    [
        ("landsat8", LANDSAT_THRESHOLDS),
        ("sentinel2", SENTINEL2_THRESHOLDS),
        ("slstr", SLSTR_THRESHOLDS),
        ("landsat9", LandsatThresholds(unamb_rho7=0.45, cand_d75=0.2)),
    ],
)
def test_evalscript_thresholds_are_the_numpy_thresholds(sensor: str, thresholds: Any) -> None:
    script = evalscript(sensor, thresholds=thresholds)
    assert script.startswith("//VERSION=3\n")
    embedded = js_thresholds(script)
    assert embedded == pixel_thresholds(thresholds)
    body = script[script.index("function evaluatePixel") :]
    helpers = script[script.index("function setup") :]
    for name in embedded:
        assert f"T.{name}" in helpers, f"threshold {name} is not used by the script"
    # No threshold may be written into the logic: every number there is a flag, 0, or comes from T.
    literals = {float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", body)}
    assert literals <= {0.0}
    flags = dict(re.findall(r"(\w+) = (\d+)", script.split("\n")[4]))
    assert flags == {flag.name: str(flag.value) for flag in PixelFlag}
    assert f"output: {{bands: {len(OUTPUT_BANDS[Sensor.parse(sensor).ruleset])}" in script


def random_samples(ruleset: RuleSet, n: int, seed: int) -> dict[str, np.ndarray]:
    """Float32 band values: random, plus values exactly on the thresholds, NaN, zeros and dataMask 0."""
    rng = np.random.default_rng(seed)
    names = (*BAND_ORDER[ruleset], "dataMask")
    if ruleset is RuleSet.SLSTR:
        edges = np.array([0.0, 0.05, 0.23, 250.0, 311.0, 320.0, 360.0, 372.5], dtype=np.float32)
        thermal = rng.uniform(250, 400, (2, n)).astype(np.float32)
        swir = rng.uniform(0, 0.6, (3, n)).astype(np.float32)
        values = np.concatenate([thermal, swir])
    else:
        edges = np.array([0.0, 0.01, 0.05, 0.1, 0.17, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.1], dtype=np.float32)
        values = rng.uniform(0, 1.3, (len(names) - 1, n)).astype(np.float32)
    on_edge = rng.random(values.shape) < 0.25
    values[on_edge] = rng.choice(edges, on_edge.sum())
    values[rng.random(values.shape) < 0.01] = np.nan
    samples = {name: values[i] for i, name in enumerate(names[:-1])}
    samples["dataMask"] = (rng.random(n) > 0.02).astype(np.float32)
    return samples


def run_evalscript(script: str, samples: dict[str, np.ndarray]) -> tuple[dict[str, Any], list[list[float]]]:
    """setup() and evaluatePixel() of ``script`` under Node.js, one call per sample."""
    assert NODE is not None
    rows = [
        {k: (None if np.isnan(v[i]) else float(v[i])) for k, v in samples.items()}
        for i in range(len(next(iter(samples.values()))))
    ]
    harness = (
        script
        + """
const rows = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = rows.map((r) => {
  const s = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? NaN : v]));
  return evaluatePixel(s).map((x) => (Number.isNaN(x) ? null : x));
});
process.stdout.write(JSON.stringify({setup: setup(), out: out}));
"""
    )
    done = subprocess.run(
        [NODE, "-e", harness], input=json.dumps(rows), capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(done.stdout)
    return result["setup"], result["out"]


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed: the evalscripts cannot be executed here")
@pytest.mark.parametrize(
    ("ruleset", "options"),
    [
        (RuleSet.LANDSAT, {}),
        (RuleSet.SENTINEL2, {}),
        (RuleSet.SLSTR, {"daytime": True, "swir": False}),
        (RuleSet.SLSTR, {"daytime": True, "swir": True}),
        (RuleSet.SLSTR, {"daytime": False, "swir": True}),
    ],
)
def test_evalscript_gives_the_numpy_codes_pixel_for_pixel(ruleset: RuleSet, options: dict[str, bool]) -> None:
    daytime, swir = options.get("daytime", True), options.get("swir", False)
    samples = random_samples(ruleset, 4000, seed=len(ruleset) + 3 * len(options) + int(swir))
    script = evalscript(ruleset, daytime=daytime, swir=swir)
    setup, out = run_evalscript(script, samples)
    assert setup["input"][0]["bands"] == list(input_bands(ruleset, swir=swir))
    assert setup["output"] == {"bands": len(OUTPUT_BANDS[ruleset]), "sampleType": "FLOAT32"}

    js_codes = np.array([row[0] for row in out], dtype=np.uint8)
    bands = {k: v for k, v in samples.items() if k != "dataMask"}
    np_codes = pixel_codes(ruleset, bands, valid=samples["dataMask"] != 0, daytime=daytime, swir=swir)
    np.testing.assert_array_equal(js_codes, np_codes)
    # The test is only meaningful if every outcome occurs.
    seen = {int(c) for c in np.unique(np_codes)}
    expected = {
        RuleSet.LANDSAT: {0, 1, 2, 4, 16},
        RuleSet.SENTINEL2: {0, 1, 8, 16},
        RuleSet.SLSTR: {0, 1, 16},
    }[ruleset]
    assert expected <= seen

    valid = np_codes != PixelFlag.NODATA
    js_value = np.array([np.nan if row[1] is None else row[1] for row in out], dtype=np.float64)
    if ruleset is RuleSet.SLSTR:
        from satellite.raster import slstr_mir

        np_value = slstr_mir(samples["F1"], samples["S7"])
    else:
        np_value = samples[OUTPUT_BANDS[ruleset][1]].astype(np.float64)
    np.testing.assert_array_equal(js_value[valid], np_value[valid])


# --- grid and request body (pure) -------------------------------------------------------------------------------


def test_process_grid_covers_the_bbox_on_a_snapped_utm_grid() -> None:
    grid = process_grid(BBOX, 30.0)
    assert grid.epsg == 32651
    minx, miny, maxx, maxy = grid.bounds
    assert all(v % 30 == 0 for v in grid.bounds)
    assert (grid.width, grid.height) == (round((maxx - minx) / 30), round((maxy - miny) / 30))
    assert 75 <= grid.width <= 90
    assert 70 <= grid.height <= 80
    assert grid.transform == (30.0, 0.0, minx, 0.0, -30.0, maxy)
    from pyproj import Transformer

    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
    for lon in (BBOX[0], BBOX[2]):
        for lat in (BBOX[1], BBOX[3]):
            x, y = to_utm.transform(lon, lat)
            assert minx <= x <= maxx
            assert miny <= y <= maxy
    with pytest.raises(SentinelHubRequestError, match="allows 2500 a side"):
        process_grid((124.3, 43.0, 127.1, 45.3), 30.0)
    with pytest.raises(SentinelHubRequestError, match="bbox"):
        process_grid((125.4, 43.9, 125.3, 44.0), 30.0)


def test_process_request_body() -> None:
    settings = SentinelHubSettings.for_endpoint("cdse", client_id=CLIENT_ID, client_secret=SECRET)
    grid = process_grid(BBOX, 20.0)
    start = datetime(2025, 4, 23, 2, 34, tzinfo=UTC)
    request = build_process_request(
        sh_config(settings), "s2l1c", grid, start, start + timedelta(minutes=2), max_cloud_cover=30
    )
    (download,) = request.download_list
    assert download.url == f"{CDSE_BASE_URL}/api/v1/process"
    body = download.post_values
    assert body is not None
    assert body["input"]["bounds"]["bbox"] == list(grid.bounds)
    assert body["input"]["bounds"]["properties"]["crs"].endswith("/EPSG/0/32651")
    (data,) = body["input"]["data"]
    assert data["type"] == "sentinel-2-l1c"
    assert data["dataFilter"] == {
        "timeRange": {"from": "2025-04-23T02:34:00Z", "to": "2025-04-23T02:36:00Z"},
        "mosaickingOrder": "mostRecent",
        "maxCloudCoverage": 30.0,
    }
    assert data["processing"] == {"upsampling": "NEAREST", "downsampling": "NEAREST"}
    assert (body["output"]["width"], body["output"]["height"]) == (grid.width, grid.height)
    assert js_thresholds(body["evalscript"]) == pixel_thresholds(SENTINEL2_THRESHOLDS)
    region = shapely.Polygon([(125.305, 43.902), (125.325, 43.905), (125.31, 43.918)])
    clipped = build_process_request(
        sh_config(settings), "s2l1c", grid, start, start + timedelta(minutes=2), region=region
    ).download_list[0]
    assert clipped.post_values is not None
    geometry = shapely.geometry.shape(clipped.post_values["input"]["bounds"]["geometry"])
    minx, miny, maxx, maxy = grid.bounds
    assert shapely.box(minx, miny, maxx, maxy).contains(geometry)  # sent in the grid's UTM coordinates
    assert geometry.area == pytest.approx(region.area * 111_000**2 * math.cos(math.radians(43.91)), rel=0.02)
    with pytest.raises(SentinelHubRequestError, match="tz-aware"):
        build_process_request(sh_config(settings), "s2l1c", grid, datetime(2025, 4, 23), datetime(2025, 4, 24))
    with pytest.raises(SentinelHubRequestError, match="unknown collection"):
        Collection.parse("modis")


def test_solar_zenith_tells_day_from_night_over_changchun() -> None:
    # 10:30 Beijing time at the June solstice: the sun is ~65 degrees high (zenith ~25).
    assert solar_zenith_deg(datetime(2024, 6, 21, 2, 30, tzinfo=UTC), 125.3, 43.9) == pytest.approx(25.0, abs=1.0)
    # 01:30 Beijing time: night.
    assert solar_zenith_deg(datetime(2024, 6, 21, 17, 30, tzinfo=UTC), 125.3, 43.9) > 100
    # Equinox, local noon at the equator: overhead.
    assert solar_zenith_deg(datetime(2024, 3, 20, 12, 7, tzinfo=UTC), 0.0, 0.0) < 1.0


def test_catalog_items_are_parsed_into_typed_records() -> None:
    page = json.loads((DATA / "catalog_landsat_page1.json").read_text(encoding="utf-8"))
    record = parse_scene(page["features"][0], Collection.LANDSAT_OT_L1)
    assert record.scene_id == "LC09_L1TP_118029_20250423_20250423_02_T1"
    assert record.acquired == datetime(2025, 4, 23, 2, 35, 41, 123456, tzinfo=UTC)
    assert record.cloud_cover == 12.5
    assert record.sensor is Sensor.LANDSAT9
    assert record.footprint is not None
    assert record.footprint.contains(shapely.Point(125.3, 43.9))
    with pytest.raises(SentinelHubResponseError, match="datetime"):
        parse_scene({"id": "x", "properties": {"datetime": "yesterday"}}, Collection.SENTINEL2_L1C)


# --- the local Sentinel Hub ---------------------------------------------------------------------------------------


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def landsat_response_bands(height: int, width: int) -> dict[str, np.ndarray]:
    """What Sentinel Hub would deliver for the grid: cropland, a 3x3 fire and a lone potential fire."""
    rng = np.random.default_rng(11)
    base = {"B01": 0.10, "B02": 0.08, "B03": 0.07, "B04": 0.05, "B05": 0.30, "B06": 0.20, "B07": 0.10}
    b = {k: (v + rng.normal(0, 0.004, (height, width))).astype(np.float32) for k, v in base.items()}
    b["B05"][20:23, 30:33], b["B06"][20:23, 30:33], b["B07"][20:23, 30:33] = 0.30, 0.40, 0.90
    b["B05"][50, 60], b["B06"][50, 60], b["B07"][50, 60] = 0.30, 0.30, 0.60
    return b


def sentinel2_response_bands(height: int, width: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12)
    base = {"B02": 0.06, "B03": 0.08, "B04": 0.07, "B11": 0.22, "B12": 0.14}
    b = {k: (v + rng.normal(0, 0.003, (height, width))).astype(np.float32) for k, v in base.items()}
    b["B04"][5:7, 5:9], b["B11"][5:7, 5:9], b["B12"][5:7, 5:9] = 0.08, 0.6, 1.1
    b["B02"][30:40, 30:40] = 0.6  # a cloud
    return b


def geotiff(layers: list[np.ndarray], body: dict[str, Any]) -> bytes:
    west, south, east, north = body["input"]["bounds"]["bbox"]
    epsg = int(body["input"]["bounds"]["properties"]["crs"].rsplit("/", 1)[1])
    height, width = layers[0].shape
    transform = Affine((east - west) / width, 0.0, west, 0.0, -(north - south) / height, north)
    with MemoryFile() as memory:
        with memory.open(
            driver="GTiff",
            width=width,
            height=height,
            count=len(layers),
            dtype="float32",
            crs=f"EPSG:{epsg}",
            transform=transform,
        ) as dst:
            for i, layer in enumerate(layers, start=1):
                dst.write(layer.astype(np.float32), i)
        return bytes(memory.read())


@dataclass
class FakeSentinelHub:
    """Token endpoint, Catalog search and Process API, answering like Sentinel Hub does (as far as we use it)."""

    client_id: str = CLIENT_ID
    client_secret: str = SECRET
    requests: list[Recorded] = field(default_factory=list)
    process_status: int = 200
    process_payload: bytes | None = None
    base_url: str = ""

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        self.requests.append(Recorded(path, headers, body))
        if path == "/oauth/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            if (
                form.get("grant_type") != "client_credentials"
                or form.get("client_id") != self.client_id
                or form.get("client_secret") != self.client_secret
            ):
                # Echo the secret back, as a careless server might: it must not reach our errors.
                refusal = {"error": "invalid_client", "error_description": f"bad secret {form.get('client_secret')}"}
                return 401, "application/json", json.dumps(refusal).encode()
            answer = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}
            return 200, "application/json", json.dumps(answer).encode()
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, "application/json", b'{"error": {"status": 401, "reason": "Unauthorized"}}'
        if path == "/api/v1/catalog/1.0.0/search":
            page = 2 if json.loads(body).get("next") == 1 else 1
            return 200, "application/json", (DATA / f"catalog_landsat_page{page}.json").read_bytes()
        if path == "/api/v1/process":
            if self.process_status != 200:
                detail: dict[str, Any] = {
                    "error": {"status": self.process_status, "reason": f"rejected client_secret={SECRET}"}
                }
                return self.process_status, "application/json", json.dumps(detail).encode()
            if self.process_payload is not None:
                return 200, "image/tiff", self.process_payload
            request = json.loads(body)
            height, width = request["output"]["height"], request["output"]["width"]
            if request["input"]["data"][0]["type"] == "landsat-ot-l1":
                b = landsat_response_bands(height, width)
                layers = [landsat_pixel_codes(b), b["B07"], b["B05"]]
            else:
                b = sentinel2_response_bands(height, width)
                layers = [sentinel2_pixel_codes(b), b["B12"]]
            return 200, "image/tiff", geotiff(layers, request)
        return 404, "application/json", b'{"error": "not found"}'


def serve(fake: FakeSentinelHub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, ctype, payload = fake.handle(self.path, dict(self.headers.items()), self.rfile.read(length))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    return server, thread


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def fake_hub(local_env: None) -> Iterator[FakeSentinelHub]:
    fake = FakeSentinelHub()
    server, thread = serve(fake)
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def client_at(url: str, secret: str = SECRET, **options: float) -> SentinelHubClient:
    """A client of the stand-in service at ``url``: one attempt per request, no sleep between attempts."""
    settings = SentinelHubSettings.for_base_url(
        url,
        client_id=CLIENT_ID,
        client_secret=secret,
        token_url=f"{url}/oauth/token",
        timeout_s=10,
        max_attempts=1,
        retry_sleep_s=0,
        **options,
    )
    return SentinelHubClient(settings)


def client_for(fake: FakeSentinelHub, secret: str = SECRET) -> SentinelHubClient:
    return client_at(fake.base_url, secret)


def test_search_and_scan_against_the_local_service(fake_hub: FakeSentinelHub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(fake_hub)
    start, end = datetime(2025, 4, 14, tzinfo=UTC), datetime(2025, 4, 24, tzinfo=UTC)
    scenes = client.search("landsat", BBOX, start, end, max_cloud_cover=30, limit=1)

    assert [s.scene_id for s in scenes] == [
        "LC08_L1TP_118029_20250415_20250415_02_T1",
        "LC09_L1TP_118029_20250423_20250423_02_T1",
    ]
    assert all(isinstance(s, SceneRecord) and s.acquired.tzinfo is UTC for s in scenes)
    assert [s.sensor for s in scenes] == [Sensor.LANDSAT8, Sensor.LANDSAT9]

    token_call, page1, page2 = fake_hub.requests
    assert token_call.path == "/oauth/token"
    search = page1.json()
    assert search["collections"] == ["landsat-ot-l1"]
    assert search["bbox"] == list(BBOX)
    assert search["datetime"] == "2025-04-14T00:00:00Z/2025-04-24T00:00:00Z"
    assert search["filter"] == "eo:cloud_cover <= 30"
    assert search["limit"] == 1
    assert "next" not in search
    assert page2.json()["next"] == 1

    fires = client.scan_scene(scenes[1], BBOX)
    process = fake_hub.requests[-1]
    assert process.path == "/api/v1/process"
    assert process.headers["Authorization"] == f"Bearer {TOKEN}"
    assert process.headers["accept"] == "image/tiff"
    body = process.json()
    grid = process_grid(BBOX, 30.0)
    assert body["input"]["bounds"]["bbox"] == list(grid.bounds)
    assert body["input"]["data"][0]["type"] == "landsat-ot-l1"
    assert body["input"]["data"][0]["dataFilter"]["timeRange"] == {
        "from": "2025-04-23T02:34:41Z",
        "to": "2025-04-23T02:36:41Z",
    }
    assert js_thresholds(body["evalscript"]) == pixel_thresholds(LANDSAT_THRESHOLDS)
    assert sum(r.path == "/oauth/token" for r in fake_hub.requests) == 1  # one session for all calls

    # Sentinel Hub's codes + strawfire's contextual test give what the local rules give on the same bands.
    local = scan_bands(landsat_response_bands(grid.height, grid.width), grid.transform, "EPSG:32651", Sensor.LANDSAT9)
    assert fires.scan.fire_points == local.fire_points
    assert [(p.pixel_count, p.row, p.col) for p in fires.scan.fire_points] == [(9, 21.0, 31.0), (1, 50.0, 60.0)]
    assert fires.scan.source_name == scenes[1].scene_id
    assert fires.scan.sensor is Sensor.LANDSAT9
    for p in fires.scan.fire_points:
        assert BBOX[0] - 0.01 < p.longitude < BBOX[2] + 0.01
        assert BBOX[1] - 0.01 < p.latitude < BBOX[3] + 0.01

    assert "client_secret=***" in caplog.text  # requests_oauthlib logged the token request, scrubbed
    assert SECRET not in caplog.text
    assert TOKEN not in caplog.text


def test_search_over_a_region_polygon_sends_intersects(fake_hub: FakeSentinelHub) -> None:
    county = shapely.Polygon([(125.0, 43.8), (125.6, 43.8), (125.6, 44.1), (125.0, 44.1)]).difference(
        shapely.box(125.2, 43.9, 125.3, 44.0)
    )
    client_for(fake_hub).search(
        "sentinel-2-l2a", county, datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC)
    )
    search = fake_hub.requests[1].json()
    assert "bbox" not in search
    assert shapely.geometry.shape(search["intersects"]).equals(county)
    with pytest.raises(SentinelHubRequestError, match="Polygon"):
        client_for(fake_hub).search(
            "s2l2a", shapely.Point(125.3, 43.9), datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC)
        )


def test_sentinel2_scene_reports_clouds(fake_hub: FakeSentinelHub) -> None:
    client = client_for(fake_hub)
    scene = SceneRecord(
        "S2B_MSIL1C_20250423T023549", Collection.SENTINEL2_L1C, datetime(2025, 4, 23, 2, 35, tzinfo=UTC)
    )
    fires = client.scan_scene(scene, BBOX)
    assert [(p.pixel_count, p.row, p.col) for p in fires.scan.fire_points] == [(8, 5.5, 6.5)]
    assert fires.scan.cloud_pixels == 100
    assert fires.scan.value_unit == "B12 reflectance"


def test_refused_credentials_raise_an_auth_error_without_the_secret(
    fake_hub: FakeSentinelHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + SECRET
    client = client_for(fake_hub, secret=wrong)
    with pytest.raises(SentinelHubAuthError) as info:
        client.search("s2l2a", BBOX, datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC))
    message = str(info.value)
    assert CLIENT_ID in message
    assert "invalid_client" in message
    assert wrong not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert wrong not in caplog.text
    assert isinstance(info.value, SatelliteError)


def test_service_errors_are_scrubbed_and_carry_the_status(fake_hub: FakeSentinelHub) -> None:
    client = client_for(fake_hub)
    scene = SceneRecord("LC09_X", Collection.LANDSAT_OT_L1, datetime(2025, 4, 23, 2, 35, tzinfo=UTC))
    fake_hub.process_status = 400
    with pytest.raises(SentinelHubResponseError) as info:
        client.scan_scene(scene, BBOX)
    assert info.value.status == 400
    assert "process request for LC09_X: HTTP 400" in str(info.value)
    assert SECRET not in str(info.value)

    fake_hub.process_status = 200
    fake_hub.process_payload = b"<html>maintenance</html>"
    with pytest.raises(SentinelHubResponseError, match="not a readable TIFF"):
        client.scan_scene(scene, BBOX)


def test_plain_http_token_url_needs_the_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    settings = SentinelHubSettings.for_base_url(
        "http://127.0.0.1:9", client_id=CLIENT_ID, client_secret=SECRET, token_url="http://127.0.0.1:9/oauth/token"
    )
    with pytest.raises(SentinelHubAuthError, match="must use https"):
        SentinelHubClient(settings).search(
            "slstr", BBOX, datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC)
        )


def test_unreachable_token_endpoint(local_env: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    settings = SentinelHubSettings.for_base_url(
        base, client_id=CLIENT_ID, client_secret=SECRET, token_url=f"{base}/oauth/token", max_attempts=1
    )
    with pytest.raises(SentinelHubAuthError, match="OAuth token request") as info:
        SentinelHubClient(settings).search(
            "slstr", BBOX, datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC)
        )
    assert SECRET not in str(info.value)


def test_process_grid_covers_the_whole_bbox_edge_where_it_crosses_the_central_meridian() -> None:
    # 122.7-123.3 E straddles 123 E, the central meridian of UTM zone 51N. In UTM a parallel bows towards the pole
    # away from the central meridian, so the bbox's southern edge reaches furthest south *on* the meridian, between
    # the corners; a grid built from the four corners alone left a ~40 m strip of the area unscanned there.
    from pyproj import Transformer

    bbox = (122.7, 43.5, 123.3, 43.9)
    grid = process_grid(bbox, 20.0)
    assert grid.epsg == 32651
    minx, miny, maxx, maxy = grid.bounds
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
    edge = np.linspace(0.0, 1.0, 601)
    lons = np.concatenate([bbox[0] + edge * (bbox[2] - bbox[0])] * 2 + [np.full(601, bbox[0]), np.full(601, bbox[2])])
    lats = np.concatenate([np.full(601, bbox[1]), np.full(601, bbox[3])] + [bbox[1] + edge * (bbox[3] - bbox[1])] * 2)
    x, y = to_utm.transform(lons, lats)
    assert minx <= x.min()
    assert x.max() <= maxx
    assert miny <= y.min()
    assert y.max() <= maxy
    assert all(v % 20 == 0 for v in grid.bounds)


def test_solar_zenith_refuses_a_naive_time_instead_of_reading_it_in_the_host_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    # A server in Changchun runs in Asia/Shanghai. Before the fix a naive 02:30 (meant as the UTC acquisition time of
    # a ~10:30 local pass) was read as 02:30 *Beijing* time by astimezone(), i.e. 18:30 UTC the day before: night,
    # so an SLSTR day scene would have been scanned with the 320 K night threshold.
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        with pytest.raises(SentinelHubRequestError, match="tz-aware"):
            solar_zenith_deg(datetime(2024, 6, 21, 2, 30), 125.3, 43.9)
        aware = solar_zenith_deg(datetime(2024, 6, 21, 2, 30, tzinfo=UTC), 125.3, 43.9)
        assert aware == pytest.approx(25.0, abs=1.0)
    finally:
        monkeypatch.undo()
        time.tzset()
