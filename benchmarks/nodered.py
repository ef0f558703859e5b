"""A Node-RED flow as the benchmarks' second reference: mqtt in -> json -> threshold -> count.

The flow persists nothing: MQTT.js acknowledges each QoS-1 message on receipt, the json
node parses it, a switch node compares ``temperature`` with 85 and a function node counts
every message (and the hot ones). The function node prints the time and the process CPU
between the first and the last message, so Node-RED's start-up is not counted.

Node-RED is installed with ``npm`` into a temporary folder (about 2 minutes and 280
packages); ``--node-red-dir`` keeps and reuses an install. When ``npm`` or the registry
is missing, :func:`install` returns the reason and the benchmark skips this reference.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from streams import SESSION_EXPIRY, TOPIC

NODE_RED_VERSION = "4"
_DONE = re.compile(r"BENCH-DONE (\d+) (\d+) (\d+)")


def install(folder: Path) -> str | None:
    """Install Node-RED into ``folder`` (kept if already there); the reason on failure."""
    red = folder / "node_modules" / "node-red" / "red.js"
    if red.exists():
        return None
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return "node/npm are not installed"
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"node-red@{NODE_RED_VERSION}",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0 or not red.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"npm install node-red failed: {tail[0]}"
    return None


def version(folder: Path) -> str:
    package = folder / "node_modules" / "node-red" / "package.json"
    return str(json.loads(package.read_text())["version"])


@dataclass(frozen=True)
class NodeRedRun:
    seconds: float
    """From the first message to the last one counted."""
    cpu_seconds: float
    """Node's process CPU over the same span (process.cpuUsage)."""


def flow(port: int, client_id: str, messages: int) -> list[dict[str, object]]:
    count = f"""
const n = (context.get('n') || 0) + 1;
context.set('n', n);
if (n === 1) {{
    context.set('t0', Date.now());
    context.set('cpu0', global.get('process').cpuUsage());
}}
if (msg.hot) {{ context.set('hot', (context.get('hot') || 0) + 1); }}
if (n === {messages}) {{
    const cpu = global.get('process').cpuUsage(context.get('cpu0'));
    const took = Date.now() - context.get('t0');
    node.warn('BENCH-DONE ' + n + ' ' + took + ' ' + (cpu.user + cpu.system));
}}
return null;
"""
    return [
        {"id": "f0a1tab", "type": "tab", "label": "bench"},
        {
            "id": "f0a2broker",
            "type": "mqtt-broker",
            "name": "bench",
            "broker": "127.0.0.1",
            "port": str(port),
            "clientid": client_id,
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "5",
            "keepalive": "60",
            "cleansession": False,
            "sessionExpiry": str(SESSION_EXPIRY),
        },
        {
            "id": "f0a3in",
            "type": "mqtt in",
            "z": "f0a1tab",
            "topic": TOPIC,
            "qos": "1",
            "datatype": "utf8",
            "broker": "f0a2broker",
            "nl": False,
            "rap": True,
            "rh": 1,
            "inputs": 0,
            "wires": [["f0a4json"]],
        },
        {
            "id": "f0a4json",
            "type": "json",
            "z": "f0a1tab",
            "property": "payload",
            "action": "obj",
            "pretty": False,
            "wires": [["f0a5threshold"]],
        },
        {
            "id": "f0a5threshold",
            "type": "switch",
            "z": "f0a1tab",
            "property": "payload.temperature",
            "propertyType": "msg",
            "rules": [{"t": "gt", "v": "85", "vt": "num"}, {"t": "else"}],
            "checkall": "false",
            "outputs": 2,
            "wires": [["f0a6hot"], ["f0a7count"]],
        },
        {
            "id": "f0a6hot",
            "type": "change",
            "z": "f0a1tab",
            "rules": [{"t": "set", "p": "hot", "pt": "msg", "to": "true", "tot": "bool"}],
            "wires": [["f0a7count"]],
        },
        {
            "id": "f0a7count",
            "type": "function",
            "z": "f0a1tab",
            "func": count,
            "outputs": 0,
            "wires": [],
        },
    ]


SETTINGS = """
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: 0,
    httpAdminRoot: false,
    httpNodeRoot: false,
    flowFile: "flows.json",
    credentialSecret: false,
    functionGlobalContext: { process: process },
    logging: { console: { level: "warn", metrics: false, audit: false } },
};
"""


def run(folder: Path, workdir: Path, port: int, client_id: str, messages: int) -> NodeRedRun:
    """Start Node-RED on the flow and wait until it counted ``messages``."""
    user = workdir / "node-red"
    user.mkdir(parents=True, exist_ok=True)
    (user / "settings.js").write_text(SETTINGS)
    (user / "flows.json").write_text(json.dumps(flow(port, client_id, messages)))
    red = folder / "node_modules" / "node-red" / "red.js"
    log = user / "log.txt"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["node", str(red), "--userDir", str(user), "--settings", str(user / "settings.js")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            found = _DONE.search(log.read_text())
            if found:
                return NodeRedRun(int(found.group(2)) / 1e3, int(found.group(3)) / 1e6)
            if process.poll() is not None:
                raise RuntimeError(f"Node-RED exited:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"Node-RED did not count {messages} messages in 600 s")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
