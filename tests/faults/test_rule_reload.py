"""Hot reload across processes: a rule saved through one process's API judges the next
reading in another process, which is never restarted (real ``forewarn run`` processes on
PostgreSQL and a real Mosquitto; every wait bounded)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from tests.faults.process import Forewarn, wait_for
from tests.services import Mosquitto

FLEET = """
customers: [{id: c-silva, name: Marta Silva, email: marta@example.com}]
sites: [{id: s-cascais, name: Silva home, customer: c-silva, region: west}]
devices:
  - {id: inv-101, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: inv-102, site: s-cascais, model: SunPeak 5K, kind: inverter}
monitors:
  - {id: inverter-overheating, kind: threshold, metric: temperature, above: 80}
"""


def reading(broker: Mosquitto, device: str, value: float) -> None:
    body = {"ts": datetime.now(UTC).isoformat(), "temperature": value}
    publish.single(
        f"devices/{device}/telemetry",
        json.dumps(body),
        qos=1,
        hostname=broker.host,
        port=broker.port,
    )


@pytest.mark.mosquitto
@pytest.mark.timeout(180)
def test_a_rule_saved_in_the_web_process_fires_in_the_running_ingest_process(
    tmp_path: Path, migrated_postgres: str, mosquitto: Mosquitto
) -> None:
    roles = ("ingest", "scheduler", "sender")
    ingest = Forewarn(
        tmp_path, migrated_postgres, roles, mosquitto.port, "ingest", extra_yaml=FLEET
    )
    web = Forewarn(tmp_path, migrated_postgres, ("web",), mosquitto.port, "web", extra_yaml=FLEET)
    try:
        ingest.start()
        # The web process starts once the ingest process has provisioned version 1.
        wait_for(lambda: "rules: version 1" in ingest.log.read_text(errors="replace"), 30)
        web.start()
        web.wait_up()

        def alerts(device: str) -> list[dict[str, object]]:
            found = web.http.get(f"{web.url}/api/alerts", params={"show": "all"}).json()
            return [a for a in found["items"] if a["subject"] == device]

        def seen(device: str) -> bool:
            found = web.http.get(f"{web.url}/api/devices").json()["items"]
            return any(d["id"] == device and d["last_seen_at"] for d in found)

        reading(mosquitto, "inv-101", 70)  # below 80: nothing
        # Stored and judged in one transaction: once it is seen, it was judged.
        wait_for(lambda: seen("inv-101"), 20)
        assert alerts("inv-101") == []

        rule = {"id": "inverter-overheating", "kind": "threshold", "metric": "temperature"}
        saved_at = time.monotonic()
        saved = web.http.put(
            f"{web.url}/api/rules/inverter-overheating",
            json={"rule": {**rule, "above": 60}, "comment": "catch it earlier", "base_version": 1},
        )
        assert saved.status_code == 201, saved.text

        reading(mosquitto, "inv-102", 70)  # the first reading after the save
        fired_at = wait_for(lambda: bool(alerts("inv-102")), timeout=15)
        (alert,) = alerts("inv-102")
        assert alert["state"] == "firing"
        assert "70 > 60" in str(alert["summary"])
        ready = web.http.get(f"{web.url}/readyz").json()
        assert ready["rules"] == {"running": 2, "current": 2}
        print(f"FIGURE save to alert in the other process: {fired_at - saved_at:.2f}s")
        assert "now running version 2" in ingest.log.read_text(errors="replace")
    finally:
        for child in (web, ingest):
            child.stop()
            child.http.close()
