"""Sightings the service cannot take now wait on disk and are sent again (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.httpserver import Recorded, http_receiver
from tests.video.test_client import sample_upload
from video.client import SightingClient
from video.spool import FlushReport, SpoolSink


def client(url: str) -> SightingClient:
    return SightingClient(url, "tower-token", retries=0, sleep=lambda s: None)


def test_an_outage_keeps_the_sighting_on_disk_until_the_service_takes_it(tmp_path: Path) -> None:
    confirmed, ended = sample_upload("confirmed"), sample_upload("ended")
    spool = tmp_path / "spool"
    with http_receiver() as receiver:
        receiver.respond = lambda r: (503, {}, b"down for maintenance")
        sink = SpoolSink(client(receiver.url), spool, retry_every_s=3600)
        outcome = sink.send(confirmed)
        assert (outcome.posted, outcome.queued) == (False, True)
        assert sink.send(confirmed).queued  # the same sighting again: one copy waits
        assert sink.pending() == 1
        assert sink.flush().waiting == 1  # still down: it stays
        receiver.respond = lambda r: (201, {}, b'{"incident_id": 7}')
        report = sink.flush()
        assert (report.sent, report.refused, report.waiting) == (1, 0, 0)
        assert sink.send(ended).posted
        keys = [r.headers["Idempotency-Key"] for r in receiver.received()]  # the requests it answered 2xx
        sink.close()
    assert keys == [confirmed.key, ended.key]  # once back: the outage's sighting first, then the new one
    assert sink.pending() == 0


def test_a_restarted_patrol_sends_what_the_last_one_kept_and_drops_what_is_refused(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with http_receiver() as receiver:
        receiver.respond = lambda r: (503, {}, b"")
        first = SpoolSink(client(receiver.url), spool, retry_every_s=3600)
        first.send(sample_upload("confirmed"))
        first.send(sample_upload("ended"))
        first.close()  # the patrol stops with two sightings waiting
        assert first.pending() == 2
        answers = iter([(422, {}, b'{"detail": "sighting: bad"}'), (201, {}, b"{}")])

        def answer(request: Recorded) -> tuple[int, dict[str, str], bytes]:
            return next(answers)

        receiver.respond = answer
        restarted = SpoolSink(client(receiver.url), spool, retry_every_s=0.05)  # its thread sends them
        deadline = time.monotonic() + 10
        while restarted.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        restarted.close()
    assert restarted.pending() == 0  # one refused for good (logged, removed), one sent
    assert not list(spool.glob("*.unreadable"))


def test_an_unreadable_spool_file_is_set_aside(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "00000000000000000001-abc.sighting.json").write_text("{not json")
    with http_receiver() as receiver:
        sink = SpoolSink(client(receiver.url), spool, retry_every_s=3600)
        report = sink.flush()
        sink.close()
    assert (report.sent, report.waiting) == (0, 0)
    assert [p.name for p in spool.iterdir()] == ["00000000000000000001-abc.sighting.unreadable"]


def test_the_embedded_runtime_spools_and_the_distributed_one_queues_tasks(tmp_path: Path) -> None:
    """Without a broker an eager task's retry only raises, so embedded workers keep sightings on disk."""
    from tests.video.figlib import figlib_registry
    from video.registry import save_registry
    from video.tasks import QueueingSink, runtime_from_env

    env = {
        "STRAWFIRE_VIDEO__REGISTRY": str(save_registry(figlib_registry(), tmp_path / "cameras.json")),
        "STRAWFIRE_VIDEO__SERVICE_URL": "http://127.0.0.1:9",
        "STRAWFIRE_VIDEO__DETECTOR": "rules",
        "STRAWFIRE_DATA_DIR": str(tmp_path / "data"),
    }
    embedded = runtime_from_env(env).pipeline.sink
    assert isinstance(embedded, SpoolSink)
    assert embedded.folder == tmp_path / "data" / "sighting-spool"
    chosen = runtime_from_env({**env, "STRAWFIRE_VIDEO__SPOOL_DIR": str(tmp_path / "here")}).pipeline.sink
    assert isinstance(chosen, SpoolSink)
    assert chosen.folder == tmp_path / "here"
    distributed = runtime_from_env({**env, "STRAWFIRE_VIDEO__BROKER_URL": "redis://127.0.0.1:6379/0"}).pipeline.sink
    assert isinstance(distributed, QueueingSink)


def test_a_refused_token_keeps_the_sightings_until_it_is_mended(tmp_path: Path) -> None:
    """401/403 say nothing about the sighting (a password changed, a token expired): spooled sightings used to be
    deleted as refused, and new ones dropped."""
    spool = tmp_path / "spool"
    with http_receiver() as receiver:
        receiver.respond = lambda r: (503, {}, b"")
        sink = SpoolSink(client(receiver.url), spool, retry_every_s=3600)
        sink.send(sample_upload("confirmed"))
        receiver.respond = lambda r: (401, {}, b'{"detail": "invalid or expired token"}')
        report = sink.flush()
        assert (report.refused, report.waiting) == (0, 1)
        assert sink.send(sample_upload("ended")).queued  # a new one waits too
        assert sink.pending() == 2
        receiver.respond = lambda r: (201, {}, b"{}")  # a new token installed
        assert sink.flush() == FlushReport(2, 0, 0)
        sink.close()
