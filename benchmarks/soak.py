"""Soak: a steady stream into a real ``forewarn run --role ingest --role web`` for N minutes,
reporting memory and queue depth every few minutes.

    python benchmarks/soak.py --minutes 60 --rate 2000 --devices 10000 --database postgresql

The stream (normal readings, QoS 1, each device in turn) comes from its own process. Every
``--every`` seconds (default 300) the script prints: messages published, received by
forewarn and committed (from its ``/metrics``), the broker-side queue (published minus
received), the in-process queue (received minus committed), forewarn's RSS and its CPU
share since the last line, the broker's RSS and the load average. At the end it compares
the first and the last line: RSS is flat when it grew by less than 10% (after the first
interval, which includes the warm-up), and the queues are not growing when the last
line's total backlog is below two seconds of the stream.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from latency import background, fleet_yaml
from streams import broker, cpu_seconds, database, load, machine, rss_bytes

from forewarn.store.engine import make_engine
from forewarn.store.schema import upgrade

COMMAND = (sys.executable, "-m", "forewarn", "run")
_COUNTER = re.compile(r'^forewarn_ingest_messages_total\{outcome="(\w+)"\} ([0-9.e+]+)$', re.M)


def counters(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    return {outcome: float(value) for outcome, value in _COUNTER.findall(text)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--every", type=float, default=300, help="seconds between reports")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "FOREWARN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    print(machine())
    print(f"start: {load()}")
    with (
        broker(None) as mqtt,
        database(args.database, args.postgres_url) as url,
        tempfile.TemporaryDirectory() as workdir,
    ):
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        web_port = free_port()
        config = Path(workdir) / "forewarn.yaml"
        config.write_text(
            fleet_yaml(mqtt.port, args.devices, "200ms")
            + f"web:\n  host: 127.0.0.1\n  port: {web_port}\n"
        )
        log = Path(workdir) / "forewarn.log"
        with log.open("wb") as out:
            service = subprocess.Popen(
                [*COMMAND, "-c", str(config), "--role", "ingest", "--role", "web"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "FOREWARN_DATABASE_URL": url},
            )
        try:
            wait_up(web_port, service, log)
            soak(args, mqtt.port, mqtt.pid, web_port, service)
        finally:
            service.terminate()
            service.wait(60)
        errors = [line for line in log.read_text().splitlines() if "ERROR" in line]
        print(f"forewarn logged {len(errors)} ERROR lines" + (f": {errors[:3]}" if errors else ""))
    print(f"end: {load()}")


def wait_up(port: int, service: subprocess.Popen[bytes], log: Path) -> None:
    # Starting with 10 000 devices in the file syncs them all into the store first:
    # minutes on a loaded machine.
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if service.poll() is not None:
            sys.exit(f"forewarn exited:\n{log.read_text()[-3000:]}")
        try:
            if "received" in counters(port) and "connected to the MQTT" in log.read_text():
                time.sleep(1.0)  # the SUBACK follows the CONNACK
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"forewarn did not come up:\n{log.read_text()[-3000:]}")


def soak(
    args: argparse.Namespace,
    mqtt_port: int,
    broker_pid: int | None,
    web_port: int,
    service: subprocess.Popen[bytes],
) -> None:
    context = multiprocessing.get_context("spawn")
    sent = context.Value("q", 0)
    seconds = args.minutes * 60
    stream = context.Process(
        target=background, args=(mqtt_port, args.rate, args.devices, seconds, sent), daemon=True
    )
    started = time.monotonic()
    cpu_before, at_before = cpu_seconds(service.pid), started
    stream.start()
    print(
        f"{args.rate:,.0f} msg/s from {args.devices:,} devices for {args.minutes:g} min; "
        f"{args.database}; a line every {args.every:g} s"
    )
    print(
        "| minute | published | received | committed | broker queue | in-process queue "
        "| forewarn RSS MiB | forewarn CPU | broker RSS MiB | load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    lines: list[tuple[float, float]] = []  # (rss, backlog)
    next_report = started + args.every
    while True:
        finished = not stream.is_alive()
        now = time.monotonic()
        if now >= next_report or finished:
            seen = counters(web_port)
            published = sent.value
            received, committed = seen["received"], seen["accepted"] + seen["rejected"]
            cpu_now = cpu_seconds(service.pid)
            share = (cpu_now - cpu_before) / (now - at_before)
            cpu_before, at_before = cpu_now, now
            rss = rss_bytes(service.pid) / 2**20
            broker_rss = rss_bytes(broker_pid) / 2**20 if broker_pid else 0.0
            backlog = published - committed
            lines.append((rss, backlog))
            print(
                f"| {(now - started) / 60:.1f} | {published:,} | {received:,.0f} | "
                f"{committed:,.0f} | {published - received:,.0f} | {received - committed:,.0f} "
                f"| {rss:.0f} | {share:.0%} | {broker_rss:.0f} | "
                f"{load().removeprefix('load average ')} |",
                flush=True,
            )
            next_report += args.every
        if finished:
            break
        time.sleep(1.0)
    reached = sent.value / (time.monotonic() - started)
    drain_started = time.monotonic()
    while time.monotonic() - drain_started < 120:
        seen = counters(web_port)
        if seen["accepted"] + seen["rejected"] >= sent.value:
            break
        time.sleep(0.5)
    drained = time.monotonic() - drain_started
    first, last = lines[min(1, len(lines) - 1)], lines[-1]
    growth = (last[0] - first[0]) / first[0]
    flat = growth < 0.10
    queue_ok = last[1] < 2 * args.rate
    print(
        f"stream reached {reached:,.0f} msg/s; RSS {first[0]:.0f} -> {last[0]:.0f} MiB "
        f"({growth:+.0%}: {'flat' if flat else 'GROWING'}); backlog at the end "
        f"{last[1]:,.0f} messages ({'not growing' if queue_ok else 'GROWING'}); everything "
        f"committed {drained:.1f} s after the stream stopped"
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
