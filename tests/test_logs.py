"""What forewarn writes to its log: readable at INFO, parseable as JSON, never a secret."""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from forewarn.logs import configure_logging
from forewarn.notifier.webhooks import TWILIO_INBOUND_PATH
from forewarn.store.engine import make_engine
from forewarn.store.schema import upgrade
from tests.fakes.providers import FakeSendGrid, FakeTwilio
from tests.services import Mosquitto, free_port

TWILIO_TOKEN = "sekrit-twilio-auth-token-0123456789"
SENDGRID_KEY = "SG.sekrit-sendgrid-key.0123456789abcdefghij"
OPS_TOKEN = "sekrit-ops-api-token-0123456789"
SMTP_PASSWORD = "sekrit-smtp-password-42"
CUSTOMER_PHONE = "+351912000101"
CUSTOMER_EMAIL = "marta.silva@example.com"
TECHNICIAN_PHONE = "+351913000201"
TECHNICIAN_EMAIL = "ana.costa@example.com"
SMS_TEXT = "private-words-of-the-customer"
SECRETS = (
    TWILIO_TOKEN,
    SENDGRID_KEY,
    "sekrit-sendgrid-key",
    OPS_TOKEN,
    SMTP_PASSWORD,
    CUSTOMER_PHONE,
    CUSTOMER_PHONE.removeprefix("+"),
    CUSTOMER_EMAIL,
    TECHNICIAN_PHONE,
    TECHNICIAN_PHONE.removeprefix("+"),
    TECHNICIAN_EMAIL,
    SMS_TEXT,
)
SENDER = "+15005550006"

CONFIG = """
database: {{url: "sqlite:///{db}"}}
broker: {{port: {broker}, client_id: log-test}}
ingest: {{batch_interval: 50ms}}
customers:
  - {{id: c-silva, name: Marta Silva, phone: "{customer_phone}", email: {customer_email},
     timezone: UTC, channels: [sms, email]}}
sites:
  - {{id: s-1, name: Silva home, customer: c-silva, address: "Rua das Flores 12",
     region: west, timezone: UTC}}
devices:
  - {{id: inv-1, site: s-1, model: SunPeak 5K, kind: inverter}}
technicians:
  - {{id: t-ana, name: Ana Costa, phone: "{technician_phone}", email: {technician_email},
     skills: [inverter], regions: [west], timezone: UTC}}
monitors:
  - id: inverter-faults
    kind: fault_code
    applies_to: {{kinds: [inverter]}}
    codes:
      E021: {{severity: critical, description: grid isolation fault}}
notifications:
  merge_window: 0s
  twilio: {{from_number: "{sender}", api_url: "{twilio}"}}
  sendgrid: {{from_email: alerts@example.com, api_url: "{sendgrid}"}}
scheduler: {{outbox_interval: 200ms, offline_check_interval: 1s}}
web: {{host: 127.0.0.1, port: {web}, public_url: "http://127.0.0.1:{web}"}}
"""


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes the root logger of this (pytest) process: put it back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def providers() -> Iterator[tuple[FakeTwilio, FakeSendGrid]]:
    with FakeTwilio(auth_token=TWILIO_TOKEN) as twilio, FakeSendGrid(SENDGRID_KEY) as sendgrid:
        yield twilio, sendgrid


def publish_fault(broker: Mosquitto) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        payload = orjson.dumps({"ts": time.time(), "fault": "E021", "temperature": 41.0})
        client.publish("devices/inv-1/telemetry", payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.mark.mosquitto
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_it_logs_no_secret_phone_number_or_email_at_debug(
    mosquitto: Mosquitto,
    providers: tuple[FakeTwilio, FakeSendGrid],
    tmp_path: Path,
    log_format: str,
) -> None:
    twilio, sendgrid = providers
    db, web = tmp_path / "forewarn.db", free_port()
    config = tmp_path / "forewarn.yaml"
    config.write_text(
        CONFIG.format(
            db=db,
            broker=mosquitto.port,
            web=web,
            twilio=twilio.base_url,
            sendgrid=sendgrid.base_url,
            sender=SENDER,
            customer_phone=CUSTOMER_PHONE,
            customer_email=CUSTOMER_EMAIL,
            technician_phone=TECHNICIAN_PHONE,
            technician_email=TECHNICIAN_EMAIL,
        )
    )
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "SENDGRID_API_KEY": SENDGRID_KEY,
        "FOREWARN_TOKENS": f"ops:{OPS_TOKEN}",
        "SMTP_PASSWORD": SMTP_PASSWORD,
    }
    env.pop("FOREWARN_DATABASE_URL", None)
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        child = subprocess.Popen(
            [
                *(sys.executable, "-m", "forewarn", "run", "-c", str(config)),
                *("--log-level", "DEBUG", "--log-format", log_format),
            ],
            stdout=out,
            stderr=err,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{web}"

            def healthy() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return child.poll() is not None  # died: stop waiting, fail below

            wait_for(healthy, 30, "the console to answer")
            assert child.poll() is None, stderr.read_text()
            # A fault: work order and notices go out through the real SDKs.
            publish_fault(mosquitto)
            wait_for(
                lambda: len(twilio.messages) >= 2 and len(sendgrid.messages) >= 1,
                30,
                "SMS and email to the customer and the technician",
            )
            # An inbound SMS whose insert the database refuses: a 500 with a traceback.
            with sqlite3.connect(db) as connection:
                connection.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON inbound_messages "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            url = base + TWILIO_INBOUND_PATH
            params, signature = twilio.inbound_sms(
                url, CUSTOMER_PHONE, SENDER, f"{SMS_TEXT} call {CUSTOMER_PHONE}"
            )
            answer = httpx.post(
                url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10
            )
            assert answer.status_code == 500
            # The console's API with the ops token, a request at DEBUG.
            assert (
                httpx.get(
                    f"{base}/api/silences",
                    headers={"Authorization": f"Bearer {OPS_TOKEN}"},
                    timeout=10,
                ).status_code
                == 200
            )
        finally:
            child.terminate()
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
    log = stdout.read_text(errors="replace") + stderr.read_text(errors="replace")
    if log_format == "json":
        for line in stderr.read_text().splitlines():
            entry = json.loads(line)  # every line is one object
            assert {"time", "level", "logger", "message"} <= entry.keys()
    assert "refused by the test" in log, "the database error was not logged"
    assert "DEBUG" in log, "the service did not log at DEBUG"
    leaked = [secret for secret in SECRETS if secret in log]
    assert not leaked, f"the log holds {leaked}:\n{log[-4000:]}"


def test_it_hides_known_secrets_phones_emails_and_url_passwords() -> None:
    out = io.StringIO()
    configure_logging(
        "INFO",
        environ={
            "FOREWARN_WEBHOOK_SECRET": "hook-secret-123",
            "BROKER_PW": "broker-pw-xyz",
            "GIT_AUTHOR_NAME": "forewarn",  # not a credential: must not hide the word
        },
        secret_names=["BROKER_PW"],
        stream=out,
    )
    log = logging.getLogger("forewarn.test")
    log.info(
        "secret %s and %s to %s / %s via postgresql://u:dbpass99@db/x with Bearer abc.def-ghi",
        "hook-secret-123",
        "broker-pw-xyz",
        "+351912000101",
        "joana@example.com",
    )
    try:
        raise ValueError("failed for To=%2B351912000101")
    except ValueError:
        log.exception("send failed")
    log.info("forewarn started")
    text = out.getvalue()
    assert "forewarn started" in text
    for clear in ("hook-secret-123", "broker-pw-xyz", "912000101", "joana@", "dbpass99", "abc.def"):
        assert clear not in text
    assert "+35191****101" in text and "j***@example.com" in text


def test_it_writes_one_json_object_per_line_with_extra_fields() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", environ={"TWILIO_AUTH_TOKEN": "tok-tok-tok"}, stream=out)
    logging.getLogger("forewarn.test").warning(
        "sent %d", 3, extra={"job": "outbox", "token": "tok-tok-tok"}
    )
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("forewarn.test").exception("failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "forewarn.test"
    assert first["message"] == "sent 3" and first["job"] == "outbox"
    assert first["token"] == "****" and first["time"].endswith("+00:00")
    assert "RuntimeError: boom" in second["exception"]


def test_it_holds_per_run_and_per_request_lines_at_info() -> None:
    out = io.StringIO()
    configure_logging("INFO", environ={}, stream=out)
    logging.getLogger("apscheduler.executors.default").info('Running job "outbox"')
    logging.getLogger("twilio.http_client").info("-- BEGIN Twilio API Request --")
    logging.getLogger("forewarn.scheduler").info("this process is now the scheduler leader")
    assert out.getvalue().count("\n") == 1 and "leader" in out.getvalue()
    configure_logging("DEBUG", environ={}, stream=out)
    logging.getLogger("python_http_client.client").debug("HEADERS: {'Authorization': ...}")
    assert "HEADERS" not in out.getvalue()


def test_it_refuses_an_unknown_log_format_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "forewarn", "--log-format", "xml", "check", "-c", "x.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --log-format must be text or json, not 'xml'"


def test_it_keeps_apschedulers_skipped_tick_out_of_the_log_below_debug() -> None:
    # APScheduler's own words when a tick finds the previous run (a long sender batch)
    # still working: normal, and ten a second with a 100 ms outbox interval.
    skipped = (
        'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
        "outbox (trigger: interval[0:00:00.100000], next run at: ...)",
        1,
    )
    out = io.StringIO()
    configure_logging("INFO", environ={}, stream=out)
    logging.getLogger("apscheduler.scheduler").warning(*skipped)
    logging.getLogger("apscheduler.scheduler").warning('Run time of job "outbox" was missed')
    assert "skipped" not in out.getvalue()
    assert "was missed" in out.getvalue()
    configure_logging("DEBUG", environ={}, stream=out)
    logging.getLogger("apscheduler.scheduler").warning(*skipped)
    assert "skipped: maximum number of running instances" in out.getvalue()
