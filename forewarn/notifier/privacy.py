"""Masking of phone numbers and email addresses for logs, errors and the console.

Customer phone numbers and emails are never written in clear outside the rows that need
them to deliver. These functions keep enough to tell two recipients apart while debugging
(country and operator prefix, last digits, the email domain) and nothing more.
"""

from __future__ import annotations

import re

_HIDDEN = "****"

# A word-bounded run of 8 to 15 digits, optionally after "+": the shape of an E.164
# number as providers quote it back in their error messages ("The 'To' number +1… is
# not a valid phone number"). The bounds keep SIDs ("SM8f3a…") and years out of it.
_PHONE_IN_TEXT = re.compile(r"(?<![\w+])\+?\d{8,15}(?!\w)")
# The lookbehind lets a match start only where a run of such characters starts. Without
# them, a long run with no "@" (100 kB of digits or letters in an inbound SMS) is scanned
# to its end from every position in it: quadratic, 40 s for 100 kB. With them the scan is
# linear and the matches are the same (a match inside a run extends to the run's start).
_EMAIL_IN_TEXT = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def mask_phone(number: str) -> str:
    """``"+351912345678"`` → ``"+35191****678"``.

    At least four characters are always hidden, so a short code or a malformed value
    shows less rather than everything. A channel prefix such as ``whatsapp:`` is kept.
    """
    scheme, colon, rest = number.strip().rpartition(":")
    prefix = f"{scheme}{colon}"
    digits = rest.replace(" ", "")
    if len(digits) <= len(_HIDDEN):
        return prefix + _HIDDEN
    tail = 3 if len(digits) >= 10 else 2 if len(digits) >= 7 else 0
    head = min(6, len(digits) - tail - len(_HIDDEN))
    return f"{prefix}{digits[:head]}{_HIDDEN}{digits[len(digits) - tail :] if tail else ''}"


def mask_email(address: str) -> str:
    """``"joana.silva@example.com"`` → ``"j***@example.com"``; the domain stays readable."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_address(value: str) -> str:
    """Mask a recipient of either medium: an email if it has an ``@``, else a phone number."""
    return mask_email(value) if "@" in value else mask_phone(value)


def scrub(text: str) -> str:
    """Mask every email address and E.164-looking number inside free text.

    For text we did not write, such as a provider's error message, which may quote the
    recipient back.
    """
    text = _EMAIL_IN_TEXT.sub(lambda match: mask_email(match.group()), text)
    return _PHONE_IN_TEXT.sub(lambda match: mask_phone(match.group()), text)
