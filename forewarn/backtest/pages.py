"""A finished backtest as HTML: the console's fragment, and a self-contained report file."""

from __future__ import annotations

from markupsafe import Markup

from forewarn.backtest.chart import chart_svg
from forewarn.backtest.engine import Backtest


def chart_of(result: dict[str, object]) -> Markup | None:
    """The chart of a backtest's JSON as inline SVG, or None when it has none."""
    data = result.get("chart")
    return chart_svg(data) if isinstance(data, dict) else None


def report_html(backtest: Backtest, name: str) -> str:
    """One HTML file with everything inline (styles, the SVG chart; no script, no link
    to fetch): ``forewarn backtest --html``."""
    from forewarn.web.rendering import make_environment

    result = backtest.as_dict()
    template = make_environment().get_template("backtest_report.html")
    return template.render(result=result, chart=chart_of(result), name=name)
