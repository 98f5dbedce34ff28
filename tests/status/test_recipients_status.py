"""``strawfire status`` names the units with open fires that nobody is alerted for, as a monitoring timer runs it
on the configured database, and stops once ``strawfire alerts add-recipient`` has added their recipients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from service.config import Settings
from service.db import make_session_factory, open_database, transaction
from service.demo import load_demo
from service.flows import ingest_observations
from service.regions.service import RegionIndexCache
from tests.alerts.test_outbox import ADMIN, observation

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))


def test_the_status_command_names_the_units_nobody_is_alerted_for(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STRAWFIRE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    assert run("db", "upgrade").returncode == 0
    engine = open_database(Settings(data_dir=tmp_path / "var").effective_database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            load_demo(session)
            ingest_observations(  # a fire in 东河乡 (DEMO02)
                session,
                [observation(0, 125.73, 44.36)],
                indexes=RegionIndexCache(500),
                settings=Settings(),
                actor=ADMIN,
            )
    finally:
        engine.dispose()
    before = run("status")
    assert before.returncode == 1, before.stderr
    lines = before.stderr.splitlines()
    assert (
        "problem: 1 unit(s) with open fires have no alert recipients: 东河乡 (DEMO) (DEMO02); their fires alert nobody "
        "there and go straight to the county: add a recipient (strawfire alerts add-recipient --unit CODE)"
    ) in lines
    assert any(line.startswith("problem: 1 county(ies) with open fires have no supervisor recipient") for line in lines)
    for args in (("--unit", "DEMO02"), ("--unit", "DEMO00", "--role", "county")):
        added = run(
            "alerts", "add-recipient", "值班", "--channel", "webhook", "--target", "https://example.invalid/h", *args
        )
        assert added.returncode == 0, added.stderr
    after = json.loads(run("status", "--json").stdout)
    # Only that no alert worker ran here, and that the recipients' alert links point at the default loopback address.
    assert [p["code"] for p in after["problems"]] == ["component_never_run", "alert_links_unreachable"]
