"""Phone numbers: what residents type becomes E.164, numbers that cannot take an SMS are refused with a reason."""

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType
from pydantic import SecretStr

from poi_notify.phones.service import InvalidPhone, mask, parse, phone_hash


@pytest.mark.parametrize(
    "raw",
    ["+380671234567", "0671234567", "067 123 45 67", "(067) 123-45-67", "380671234567", "00380671234567"],
)
def test_ukrainian_mobiles_in_any_usual_spelling(raw: str) -> None:
    assert parse(raw) == "+380671234567"


@pytest.mark.parametrize("raw", ["+447911123456", "+4915112345678", "+48512345678"])
def test_foreign_mobiles_are_accepted(raw: str) -> None:
    assert parse(raw) == raw


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (PhoneNumberType.PREMIUM_RATE, "premium-rate"),
        (PhoneNumberType.TOLL_FREE, "toll-free"),
        (PhoneNumberType.FIXED_LINE, "fixed-line"),
    ],
)
def test_non_mobile_ukrainian_numbers_are_refused_saying_why(kind: int, reason: str) -> None:
    example = phonenumbers.example_number_for_type("UA", kind)
    assert example is not None
    with pytest.raises(InvalidPhone, match=reason):
        parse(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))


def test_premium_rate_abroad_is_refused() -> None:
    example = phonenumbers.example_number_for_type("GB", PhoneNumberType.PREMIUM_RATE)
    assert example is not None
    with pytest.raises(InvalidPhone, match="premium-rate"):
        parse(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))


@pytest.mark.parametrize("raw", ["", "hello", "+380", "067123", "+3806712345678901", "+999123456789"])
def test_what_is_not_a_valid_number_is_refused(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        parse(raw)


def test_the_hash_is_stable_per_key_and_hides_the_number() -> None:
    key, other = SecretStr("test-phone-key"), SecretStr("another-key")
    digest = phone_hash(key, "+380671234567")
    assert digest == phone_hash(key, "+380671234567") and len(digest) == 64
    assert digest != phone_hash(other, "+380671234567") and digest != phone_hash(key, "+380671234568")
    assert "380671234567" not in digest


def test_masks_keep_the_country_operator_and_last_two_digits() -> None:
    assert mask("+380671234567") == "+38067*****67"
    assert mask("+447911123456") == "+4479******56"
    assert mask("+12025550123") == "+120******23"
