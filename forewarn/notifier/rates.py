"""How fast each sender may go: per sending number (Twilio) or API key (SendGrid).

Providers meter each sender: Twilio sends 1 SMS a second from a long code, 3 from a
toll-free number and 100 from a short code (faster requests queue at Twilio, for up to
10 hours, or come back as 429, error 20429); SendGrid limits requests per API key.
forewarn keeps one token bucket per sender in the database (``sender_buckets``), shared by
every sender process and thread: a sender claims a message only with a token for it, so
a burst of thousands drains at the provider's pace, critical messages first, instead of
a storm of 429s and retries.

Why a bucket in the database rather than a rate-limiting library: the senders are several
processes (``--role sender`` on more than one machine), and the limit belongs to the
number, not to a process. ``limits`` (the well-kept Python library) keeps its counters in
process memory, Redis, Memcached or MongoDB, none of which forewarn runs, and it reads
the wall clock inside its storage, which the tests replace with an injected clock. The
database is already what every sender shares and what the claim runs in: taking the
tokens in the claim's own transaction means a claimed message always has its slot, and a
sender that dies gives back nothing it did not use (its rows are reclaimed later with new
tokens).

:func:`grant` is the arithmetic (pure); ``forewarn/store/send_rates.py`` keeps the buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

TWILIO_RATES = {"long_code": 1.0, "toll_free": 3.0, "short_code": 100.0}
"""Messages per second Twilio sends from one number of each type (US, 2026)."""


@dataclass(frozen=True)
class SendRate:
    """The pace of one sender: ``per_second`` on average, at most ``burst`` at once."""

    sender: str
    """The bucket's key: ``twilio:+15550001111``, ``sendgrid:<key digest>``."""
    per_second: float
    burst: float

    @classmethod
    def of(cls, sender: str, per_second: float, burst: float | None = None) -> SendRate:
        """A rate whose burst defaults to one second's worth (at least one message)."""
        return cls(sender, per_second, burst if burst is not None else max(1.0, per_second))


def grant(
    tokens: float, since: datetime, now: datetime, rate: SendRate, want: int
) -> tuple[int, float]:
    """How many of ``want`` messages may go at ``now`` from a bucket that held ``tokens``
    at ``since``, and what the bucket holds afterwards. A clock that went backwards adds
    nothing."""
    elapsed = max(0.0, (now - since).total_seconds())
    available = min(rate.burst, tokens + elapsed * rate.per_second)
    granted = max(0, min(want, int(available + 1e-9)))
    return granted, available - granted
