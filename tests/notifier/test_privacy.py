from __future__ import annotations

import pytest

from forewarn.notifier.privacy import mask_address, mask_email, mask_phone, scrub


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+351912345678", "+35191****678"),
        ("+15005550006", "+1500****006"),
        ("+44 7700 900123", "+44770****123"),
        ("whatsapp:+351912345678", "whatsapp:+35191****678"),
        ("+1234567", "+1****67"),
        ("12345", "1****"),
        ("1234", "****"),
        ("", "****"),
    ],
)
def test_it_masks_phone_numbers(number: str, masked: str) -> None:
    assert mask_phone(number) == masked


def test_it_always_hides_at_least_four_digits() -> None:
    for length in range(1, 17):
        number = "9" * length
        assert mask_phone(number).count("*") == 4
        assert sum(char == "9" for char in mask_phone(number)) <= max(0, length - 4)


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("joana.silva@example.com", "j***@example.com"),
        ("j@example.com", "j***@example.com"),
        ("@example.com", "***@example.com"),
        ("not-an-address", "***"),
    ],
)
def test_it_masks_email_addresses_keeping_the_domain(address: str, masked: str) -> None:
    assert mask_email(address) == masked


def test_it_masks_either_kind_of_address() -> None:
    assert mask_address("joana@example.com") == "j***@example.com"
    assert mask_address("+351912345678") == "+35191****678"


def test_it_scrubs_numbers_and_addresses_out_of_free_text() -> None:
    text = (
        "Unable to create record: The 'To' number +351912345678 is not valid; "
        "copy sent to joana.silva@example.com (code 21211, 2026-11-03, "
        "sid SM0123456789abcdef0123456789abcdef)"
    )

    assert scrub(text) == (
        "Unable to create record: The 'To' number +35191****678 is not valid; "
        "copy sent to j***@example.com (code 21211, 2026-11-03, "
        "sid SM0123456789abcdef0123456789abcdef)"
    )
