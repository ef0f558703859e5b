"""A channel that delivers to the terminal and a JSON-lines file, for the demo and development.

It is what runs when no provider credentials are configured, so it follows the same
privacy rule as the real channels: the recipient is shown masked.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import TextIO

from forewarn.notifier.channels import Medium, Outbound, Receipt
from forewarn.notifier.privacy import mask_address

_RULE = "─" * 64


class DevelopmentChannel:
    """Prints each message as a framed block and appends it to ``log_path`` as JSON."""

    provider = "development"

    def __init__(
        self, medium: Medium, stream: TextIO | None = None, log_path: Path | None = None
    ) -> None:
        self.medium: Medium = medium
        self._stream = stream
        self._log_path = log_path
        # Sender threads share one channel; blocks must not interleave on the terminal.
        self._lock = threading.Lock()

    def send(self, message: Outbound) -> Receipt:
        recipient = mask_address(message.to)
        lines = [
            _RULE,
            f"  {self.medium.upper()} #{message.notification_id} to {recipient}"
            + (f" ({message.to_name})" if message.to_name else ""),
        ]
        if message.subject is not None:
            lines.append(f"  Subject: {message.subject}")
        lines += [_RULE, message.body, _RULE]
        record = {
            "notification_id": message.notification_id,
            "medium": self.medium,
            "to": recipient,
            "subject": message.subject,
            "body": message.body,
            "html": message.html,
        }
        with self._lock:
            # Resolved per call: pytest's capsys and the CLI runner swap sys.stdout.
            stream = self._stream if self._stream is not None else sys.stdout
            stream.write("\n".join(lines) + "\n")
            stream.flush()
            if self._log_path is not None:
                with self._log_path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(record, ensure_ascii=False) + "\n")
        return Receipt(provider=self.provider, provider_message_id=f"dev-{message.notification_id}")
