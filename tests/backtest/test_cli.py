"""``forewarn backtest`` from the shell: JSON out, a bad draft is one line and exit 2."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forewarn.cli import app as cli
from tests.backtest.history import CONFIG, START, config, store, week

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    cfg = config(tmp_path / "history.db")
    store(cfg, week({"inv-1": [(10 * H, 40 * M, 90.0)], "inv-3": [(D, H, 72.0)]}))
    (tmp_path / "forewarn.yaml").write_text(CONFIG)
    return tmp_path


def invoke(folder: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["backtest", "-c", str(folder / "forewarn.yaml"), *args],
        env={"FOREWARN_DATABASE_URL": f"sqlite:///{folder / 'history.db'}"},
    )
    return result.exit_code, result.stdout, result.stderr


def draft(folder: Path, text: str) -> str:
    path = folder / "draft.yaml"
    path.write_text(text)
    return str(path)


LOWER = "monitors:\n  - {id: hot, kind: threshold, metric: temperature, above: 70, for: 10m}\n"
PERIOD = ["--since", START.isoformat(), "--until", (START + 7 * D).isoformat()]


def test_it_prints_the_json_of_both_rule_sets(stored: Path) -> None:
    code, out, err = invoke(stored, "--rules", draft(stored, LOWER), *PERIOD, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["readings"] == 3 * 7 * 24 * 12
    assert result["current"]["alerts"] == 1
    assert result["draft"]["alerts"] == 2
    assert result["diff"]["appear"][0]["device"] == "inv-3"
    assert result["currency"] == "EUR"


def test_a_scope_narrows_the_devices_and_the_readings(stored: Path) -> None:
    code, out, err = invoke(
        stored, "--rules", draft(stored, LOWER), *PERIOD, "--scope", "site:s-porto", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert (result["scope"], result["devices"]) == ("site:s-porto", 1)
    assert result["readings"] == 7 * 24 * 12
    assert (result["current"]["alerts"], result["draft"]["alerts"]) == (0, 1)


def test_the_text_report_and_the_html_file(stored: Path) -> None:
    page = stored / "report.html"
    code, out, err = invoke(stored, "--rules", draft(stored, LOWER), *PERIOD, "--html", str(page))
    assert code == 0, err
    assert "alerts that appear: 1, disappear: 0" in out
    html = page.read_text()
    assert "<svg" in html and "alert-span draft" in html
    assert "<script" not in html and "http" not in html.split("<main>")[1].split("</main>")[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "monitors:\n  - id: hot\n    kind: threshold\n    metric: temperature\n"
            "    above: hot\n",
            "draft.yaml:5: monitors[0].above: Input should be a valid number",
        ),
        (
            "monitors: [{id: x, kind: sideways}]\n",
            "draft.yaml:1: monitors[0]: unknown monitor kind 'sideways'",
        ),
        ("monitors: [\n", "draft.yaml:2: not valid YAML"),
        ("sites: []\n", "draft.yaml:1: sites: only the monitors section belongs in a draft"),
    ],
)
def test_a_bad_draft_is_one_line_and_exit_2(stored: Path, text: str, message: str) -> None:
    code, out, err = invoke(stored, "--rules", draft(stored, text), *PERIOD)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_an_unknown_scope_or_period_is_exit_2(stored: Path) -> None:
    rules = draft(stored, LOWER)
    assert invoke(stored, "--rules", rules, "--scope", "site:nowhere")[0] == 2
    code, _, err = invoke(stored, "--rules", rules, "--since", "yesterday-ish")
    assert code == 2 and "neither a duration" in err
    code, _, err = invoke(stored, "--rules", str(stored / "missing.yaml"))
    assert code == 2 and "no such file" in err
