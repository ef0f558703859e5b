"""``forewarn demo``: the whole path on embedded defaults, in well under a minute.

A temporary SQLite store, a private Mosquitto on a free port when the binary is installed,
a simulated fleet of six devices with three injected faults (an overheating inverter, a
grid isolation fault code, a battery gone silent) and one malformed message, and forewarn
itself running exactly as ``forewarn run`` does. Without provider credentials messages go
to the development channel (printed and stored) and the demo says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import orjson
from sqlalchemy import func, select

from forewarn.clock import SystemClock
from forewarn.config import Config, parse_config
from forewarn.notifier.privacy import mask_address
from forewarn.service import ROLES, Runtime
from forewarn.simulator import Fault, Fleet, Publisher
from forewarn.store.engine import make_engine
from forewarn.store.models import Alert, Notification, Quarantine, Reading, Technician, Ticket
from forewarn.store.schema import upgrade

FAULTS = (
    Fault("inv-101", "overheat", timedelta(seconds=2)),
    Fault("inv-301", "code", timedelta(seconds=3), code="E021"),
    Fault("bat-202", "silence", timedelta(seconds=1)),
    Fault("inv-201", "garbage", timedelta(seconds=4)),
)
EXPECTED_TICKETS = 3
NO_BROKER = (
    "--no-broker: the simulated readings go straight into forewarn's ingest pipeline "
    "(the same gate, store and monitors) instead of through an MQTT broker."
)
INSTALL_HINT = (
    "Mosquitto is not installed, so the demo feeds the simulated readings straight into "
    "forewarn's ingest pipeline instead of going through an MQTT broker. To see the real "
    "path: apt-get install mosquitto (Debian/Ubuntu) or brew install mosquitto (macOS)."
)


def demo_config(workdir: Path, broker_port: int, web_port: int) -> Config:
    text = resources.files("forewarn.config").joinpath("demo.yaml").read_text(encoding="utf-8")
    config = parse_config(text, {}, source="demo.yaml")
    s = config.settings
    settings = s.model_copy(
        update={
            "database": s.database.model_copy(update={"url": f"sqlite:///{workdir / 'demo.db'}"}),
            "broker": s.broker.model_copy(update={"port": broker_port}),
            "web": s.web.model_copy(update={"port": web_port}),
            "notifications": s.notifications.model_copy(
                update={"development_log": str(workdir / "messages.jsonl")}
            ),
        }
    )
    return dataclasses.replace(config, settings=settings)


@contextlib.contextmanager
def private_mosquitto(workdir: Path, *, wanted: bool = True) -> Iterator[int | None]:
    """A Mosquitto on a free port for the demo's lifetime; ``None`` when not installed
    (or not ``wanted``)."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if not wanted:
        binary = None
    if binary is None:
        yield None
        return
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest none\nmax_queued_messages 0\n"
    )
    process = subprocess.Popen(  # noqa: S603 - the local mosquitto with our own config
        [binary, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C stops forewarn first, then we stop the broker
    )
    try:
        _wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class DirectFeed:
    """Without a broker: the fleet's messages go through the ingester's own parse/store path."""

    def __init__(self, fleet: Fleet, runtime: Runtime, interval: timedelta) -> None:
        self._fleet = fleet
        self._runtime = runtime
        self._interval = interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="direct-feed", daemon=True)
        self.published = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        ingester = self._runtime.ingester
        assert ingester is not None
        started = datetime.now(UTC)
        while not self._stop.is_set():
            now = datetime.now(UTC)
            messages = self._fleet.messages(now, now - started)
            ingester.ingest_payloads([(topic, payload, False) for topic, payload in messages])
            self.published += len(messages)
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_demo(
    *, headless: bool, json_output: bool, port: int, timeout: float, broker: bool = True
) -> int:
    """Run the scenario; returns the exit status."""
    out = sys.stdout
    console: TextIO = io.StringIO() if json_output else out

    def say(message: str) -> None:
        if not json_output:
            print(message, file=out, flush=True)

    with tempfile.TemporaryDirectory(prefix="forewarn-demo-") as tmp:
        workdir = Path(tmp)
        with private_mosquitto(workdir, wanted=broker) as broker_port:
            config = demo_config(workdir, broker_port or 1, port)
            engine = make_engine(config.database_url)
            upgrade(engine)
            engine.dispose()
            roles = tuple(r for r in ROLES if r != "web" or not headless)
            if broker_port is None:
                say(INSTALL_HINT if broker else NO_BROKER)
            else:
                say(f"Mosquitto started on 127.0.0.1:{broker_port} (private, for this demo).")
            runtime = Runtime.start(config, roles, console=console, direct=broker_port is None)
            for note in runtime.app.channel_notes:
                say(f"Note: {note}.")
            fleet = Fleet(config.settings.devices, FAULTS)
            interval = timedelta(milliseconds=500)
            feed: Publisher | DirectFeed
            if broker_port is None:
                feed = DirectFeed(fleet, runtime, interval)
            else:
                feed = Publisher(
                    fleet, "127.0.0.1", broker_port, interval, clock=lambda: datetime.now(UTC)
                )
            say("Publishing a fleet of 6 devices every 0.5 s; faults start in a few seconds...")
            feed.start()
            try:
                finished = _wait_for_story(runtime, timeout, say)
                runtime.app.sender.drain()
                summary = _summary(runtime, broker_port, feed.published)
                summary["completed"] = finished
                if json_output:
                    out.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
                else:
                    _print_summary(summary, out)
                if not headless and runtime.web is not None:
                    # The fleet keeps reporting while the console is open: stopping it
                    # would (rightly) raise an offline alarm for every device.
                    say(f"\nThe console is at {runtime.web.url} -- press Ctrl-C to stop.")
                    with contextlib.suppress(KeyboardInterrupt):
                        threading.Event().wait()
            finally:
                feed.stop()
                runtime.stop()
    return 0 if finished else 1


def _wait_for_story(runtime: Runtime, timeout: float, say: Callable[[str], None]) -> bool:
    """Until every expected ticket exists and none of its messages is still waiting."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        with runtime.app.sessions() as session:
            tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
            for ticket in tickets:
                if ticket.id not in seen:
                    seen.add(ticket.id)
                    who = ticket.technician_id or "the dispatcher queue"
                    say(f"  ticket #{ticket.id} {ticket.device_id}: {ticket.fault} -> {who}")
            waiting = session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status.in_(("queued", "sending")))
            )
        if len(tickets) >= EXPECTED_TICKETS and not waiting:
            return True
        time.sleep(0.25)
    return False


def _summary(runtime: Runtime, broker_port: int | None, published: int) -> dict[str, Any]:
    clock = SystemClock()
    with runtime.app.sessions() as session:
        names = dict(session.execute(select(Technician.id, Technician.name)).tuples().all())
        tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
        notes = session.scalars(select(Notification).order_by(Notification.id)).all()
        alerts = session.scalars(select(Alert).order_by(Alert.id)).all()
        readings = session.scalar(select(func.count()).select_from(Reading)) or 0
        quarantine = session.scalars(select(Quarantine).order_by(Quarantine.id)).all()
        return {
            "generated_at": clock.now().isoformat(),
            "broker": f"mosquitto 127.0.0.1:{broker_port}" if broker_port else "none (direct)",
            "channels": {m: c.provider for m, c in runtime.app.channels.items()},
            "messages_published": published,
            "readings_stored": readings,
            "quarantined": [{"origin": q.origin, "reason": q.reason} for q in quarantine],
            "alerts": [
                {
                    "id": a.id,
                    "rule": a.rule_id,
                    "device": a.subject,
                    "state": a.state,
                    "severity": a.severity,
                    "summary": a.summary,
                    "ticket": a.ticket_id,
                }
                for a in alerts
            ],
            "tickets": [
                {
                    "id": t.id,
                    "device": t.device_id,
                    "site": t.site_id,
                    "technician": t.technician_id,
                    "technician_name": names.get(t.technician_id or ""),
                    "status": t.status,
                    "priority": t.priority,
                    "fault": t.fault,
                    "dispatch_reason": t.dispatch.get("reason"),
                }
                for t in tickets
            ],
            "notifications": [
                {
                    "id": n.id,
                    "ticket": n.ticket_id,
                    "template": n.event,
                    "channel": n.channel,
                    "recipient_role": n.recipient_role,
                    "recipient": mask_address(n.address),
                    "locale": n.locale,
                    "status": n.status,
                    "provider": n.provider,
                    "attempts": n.attempts,
                    "error": n.last_error,
                }
                for n in notes
            ],
        }


def _print_summary(summary: dict[str, Any], out: TextIO) -> None:
    print("\nWhat happened:", file=out)
    for ticket in summary["tickets"]:
        tech = ticket["technician_name"] or "nobody eligible (dispatcher queue)"
        print(
            f"  Ticket #{ticket['id']} {ticket['priority']} on {ticket['device']}: "
            f"{ticket['fault']}\n    assigned to {tech}: {ticket['dispatch_reason']}",
            file=out,
        )
    print("  Notifications:", file=out)
    for n in summary["notifications"]:
        print(
            f"    #{n['id']} {n['template']:<13} {n['channel']:<5} to {n['recipient_role']:<10}"
            f" {n['recipient']:<22} {n['status']} via {n['provider']}",
            file=out,
        )
    for q in summary["quarantined"]:
        print(f"  Quarantined a bad message from {q['origin']}: {q['reason']}", file=out)
    print(
        f"  {summary['readings_stored']} readings stored from "
        f"{summary['messages_published']} messages.",
        file=out,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("mosquitto exited at start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start listening")
