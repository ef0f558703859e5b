"""forewarn: proactive monitoring that opens the work order and tells the customer first."""

from __future__ import annotations

__version__ = "0.1.0"
