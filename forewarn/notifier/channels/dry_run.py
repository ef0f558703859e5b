"""A channel that accepts every message and sends nothing: a backtest's notifier.

The sender does everything else as live (policy, merge, quiet hours, budget, rendering),
and the rendered text is kept on the notification row, so a backtest can count SMS
segments and messages per customer from what would have gone out.
"""

from __future__ import annotations

from forewarn.notifier.channels import Medium, Outbound, Receipt


class DryRunChannel:
    """Accepts every message of ``medium``; nothing leaves the process."""

    provider = "dry-run"

    def __init__(self, medium: Medium) -> None:
        self.medium: Medium = medium

    def send(self, message: Outbound) -> Receipt:
        return Receipt(self.provider, None)
