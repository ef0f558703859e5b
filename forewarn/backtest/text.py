"""A finished backtest as plain text (the CLI's default output)."""

from __future__ import annotations

from typing import Any

from forewarn.backtest.engine import Backtest


def describe(backtest: Backtest, draft_name: str = "the draft") -> list[str]:
    """The lines ``forewarn backtest`` prints: one table, current against draft."""
    data = backtest.as_dict()
    period = data["period"]
    cur, new = data["current"], data["draft"]
    currency = data["currency"]
    lines = [
        f"{draft_name} against the current rules, {data['scope']} ({data['devices']} devices), "
        f"{period['since'][:16]} to {period['until'][:16]} UTC",
        f"{data['readings']} readings replayed twice through the live path in "
        f"{data['elapsed_seconds']:.1f} s (technicians: ACK after "
        f"{data['crew']['accept_after'] or 'never'}, visits of {data['crew']['visit']}, "
        f"from {data['crew']['source']})",
        "",
        f"{'':34}{'current':>12}{'draft':>12}",
    ]

    def row(label: str, a: Any, b: Any) -> None:
        lines.append(f"{label:34}{_show(a):>12}{_show(b):>12}")

    row("alerts", cur["alerts"], new["alerts"])
    row("  held (silence, inhibition, flap)", cur["held"], new["held"])
    row("  flapping episodes", cur["flapping_episodes"], new["flapping_episodes"])
    row("tickets", cur["tickets"], new["tickets"])
    row("  reopened (repeat visits)", cur["reopened"], new["reopened"])
    row("  auto-closed before a visit", cur["auto_closed"], new["auto_closed"])
    row("  escalations", cur["escalations"], new["escalations"])
    row("  most in one day", cur["max_tickets_per_day"], new["max_tickets_per_day"])
    row("technician hours", cur["technician_hours"], new["technician_hours"])
    for channel in sorted(set(cur["messages"]) | set(new["messages"])):
        row(
            f"messages: {channel}", cur["messages"].get(channel, 0), new["messages"].get(channel, 0)
        )
    row("  SMS segments", cur["sms_segments"], new["sms_segments"])
    row("  merged into another message", cur["merged"], new["merged"])
    row("  dropped (the ticket moved on)", cur["dropped"], new["dropped"])
    row("  held for quiet hours", cur["quiet_hours_held"], new["quiet_hours_held"])
    row("  still waiting at the end", cur["waiting_at_end"], new["waiting_at_end"])
    row(f"cost ({currency})", f"{cur['cost']:.2f}", f"{new['cost']:.2f}")
    row(
        "most to one customer in 24 h",
        cur["max_per_customer_day"]["messages"],
        new["max_per_customer_day"]["messages"],
    )
    row(
        "most to one customer in 7 days",
        cur["max_per_customer_week"]["messages"],
        new["max_per_customer_week"]["messages"],
    )
    diff = data["diff"]
    lines += [
        "",
        f"changed rules: {', '.join(data['changed_rules']) or 'none'}",
        f"alerts that appear: {diff['appear_count']}, disappear: {diff['disappear_count']}, "
        f"unchanged: {diff['unchanged']}",
    ]
    for sign, key in (("+", "appear"), ("-", "disappear")):
        shown = diff[key][:10]
        for change in shown:
            lines.append(
                f"  {sign} {change['rule']} on {change['device']} from {change['from'][:16]}"
                f" to {(change['until'] or 'the end')[:16]}"
            )
        if diff[f"{key}_count"] > len(shown):
            lines.append(f"  {sign} ... and {diff[f'{key}_count'] - len(shown)} more")
    nff = data["no_fault_found"]
    if nff is None:
        lines.append("no-fault-found share: history has no closed tickets to compare with")
    else:
        share = nff["real_fault_share"]
        lines.append(
            f"the draft's tickets against real ones: {nff['real_fault']} real faults, "
            f"{nff['no_fault_found']} no fault found, {nff['no_visit']} closed without a visit, "
            f"{nff['unmatched']} with no real ticket"
            + (f" ({share:.0%} real)" if share is not None else "")
        )
    return lines


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
