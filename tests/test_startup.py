"""Clear starts and stops: every failure to start is one line on stderr and exit status 2,
never a traceback; a SIGTERM to the demo cleans up like Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forewarn.store.engine import make_engine
from forewarn.store.schema import upgrade
from tests.services import free_port, mosquitto_binary, unavailable


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'forewarn.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def run(
    tmp_path: Path, yaml_text: str, *roles: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "forewarn.yaml"
    config.write_text(yaml_text)
    args = [sys.executable, "-m", "forewarn", "run", "-c", str(config)]
    for role in roles:
        args += ["--role", role]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environ, **(env or {})},
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_run_says_in_one_line_that_the_database_is_unreachable(tmp_path: Path) -> None:
    closed = free_port()
    done = run(
        tmp_path,
        "",
        "sender",
        env={"FOREWARN_DATABASE_URL": f"postgresql://forewarn@127.0.0.1:{closed}/forewarn"},
    )

    line = one_line_error(done)
    assert line.startswith("error: cannot reach the database: ")
    assert str(closed) in line


def test_run_refuses_a_web_port_that_is_taken(tmp_path: Path, migrated_sqlite: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run(
            tmp_path,
            f"database: {{url: '{migrated_sqlite}'}}\nweb: {{host: 127.0.0.1, port: {port}}}\n",
            "web",
        )

    line = one_line_error(done)
    assert f"cannot listen on 127.0.0.1:{port}" in line


def test_run_refuses_an_api_token_that_is_too_short(tmp_path: Path, migrated_sqlite: str) -> None:
    done = run(
        tmp_path,
        f"database: {{url: '{migrated_sqlite}'}}\nweb: {{port: {free_port()}}}\n",
        "web",
        env={"FOREWARN_API_TOKEN": "short"},
    )

    line = one_line_error(done)
    assert "at least 16 characters" in line
    assert "short" not in line.removeprefix("error: ").replace("shorter", "")


def test_run_refuses_an_open_console_on_a_public_address(
    tmp_path: Path, migrated_sqlite: str
) -> None:
    done = run(
        tmp_path,
        f"database: {{url: '{migrated_sqlite}'}}\nweb: {{host: 0.0.0.0, port: {free_port()}}}\n",
        "web",
    )

    line = one_line_error(done)
    assert "refusing to serve an open console" in line
    assert "web.allow_open_console" in line


def test_run_serves_an_open_console_on_a_public_address_only_when_told_to(
    tmp_path: Path, migrated_sqlite: str
) -> None:
    port = free_port()
    config = tmp_path / "forewarn.yaml"
    config.write_text(
        f"database: {{url: '{migrated_sqlite}'}}\n"
        f"web: {{host: 0.0.0.0, port: {port}, allow_open_console: true}}\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    with subprocess.Popen(
        [sys.executable, "-m", "forewarn", "run", "-c", str(config), "--role", "web"],
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    ) as child:
        try:
            assert child.stderr is not None
            lines = _lines_until(child.stderr, "console at", timeout=60)
        finally:
            child.terminate()
            child.wait(timeout=20)
    assert any("every caller gets ops rights" in line for line in lines)
    assert f"console at http://0.0.0.0:{port}/" in lines[-1]
    assert "open: no access token is set" in lines[-1]
    assert child.returncode == 0


def _lines_until(stream: object, marker: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} never came:\n{''.join(lines)}")


@pytest.fixture
def demo_tmp(tmp_path: Path) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.mosquitto
def test_a_sigterm_stops_the_demo_its_broker_and_removes_its_folder(demo_tmp: Path) -> None:
    if mosquitto_binary() is None:
        unavailable("the demo's broker needs the mosquitto binary")
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "forewarn", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(demo_tmp)},
    ) as child:
        try:
            assert child.stdout is not None
            _lines_until(child.stdout, "press Ctrl-C to stop", timeout=150)
            (workdir,) = list(demo_tmp.iterdir())
            assert _processes_mentioning(str(workdir)), "the demo's mosquitto is not running"
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert "Traceback" not in (child.stderr.read() if child.stderr else "")
    assert list(demo_tmp.iterdir()) == []
    assert _processes_mentioning(str(workdir)) == []


def test_the_demo_fails_with_one_line_when_its_console_port_is_taken(demo_tmp: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "forewarn", "demo", "--no-broker", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "TMPDIR": str(demo_tmp)},
        )
    line = one_line_error(done)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert list(demo_tmp.iterdir()) == []
