"""Phone numbers: read in any common written form, stored and sent as E.164.

Parsing and validation use ``phonenumbers`` (the Python port of Google's libphonenumber):
its per-country metadata knows which lengths and prefixes exist, which a regular
expression cannot. A number written without ``+country`` (``912 345 678``, ``(21)
99000-0009``) is read in a default region (``phone_region`` in the config, or the feed
mapping's own); everything leaves here as ``+351912345678``.

Messages never repeat the number itself: they end up in logs and quarantine reasons.
"""

from __future__ import annotations

import phonenumbers

REGIONS: frozenset[str] = frozenset(phonenumbers.SUPPORTED_REGIONS)
"""ISO 3166 alpha-2 codes ``phonenumbers`` has metadata for."""


class InvalidPhone(ValueError):
    """Not a usable phone number; the message says why, without the number."""


def to_e164(text: str, region: str | None = None) -> str:
    """``text`` as an E.164 number; raises :class:`InvalidPhone`.

    ``region`` is the ISO 3166 code for numbers written without ``+country``.
    """
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            reason = (
                "the number has no country code: write it as +<country> <number>, "
                "or set phone_region"
                if region is None
                else "the number has an unknown country code"
            )
        elif exc.error_type == phonenumbers.NumberParseException.NOT_A_NUMBER:
            reason = "not a phone number"
        else:
            reason = "too short or too long for a phone number"
        raise InvalidPhone(reason) from exc
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or "its country"
        raise InvalidPhone(f"not a valid phone number in {where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
