"""Phone numbers: E.164 from what a resident types, the HMAC that names a number everywhere, and its mask."""

import hashlib
import hmac

import phonenumbers
from phonenumbers import PhoneNumberType
from pydantic import SecretStr

# A number without a country code is read as Ukrainian: 067 123 45 67, 0671234567, 380671234567.
DEFAULT_REGION = "UA"
# Only numbers that can receive an SMS on a handset: mobile, or where the plan cannot tell (e.g. the US).
SENDABLE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
REFUSED = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.FIXED_LINE: "a fixed-line number, which cannot receive SMS",
    PhoneNumberType.VOIP: "a VoIP number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.UAN: "a company's universal access number",
    PhoneNumberType.VOICEMAIL: "a voicemail number",
}


class InvalidPhone(ValueError):
    """A number notify will not send to; the message says why, for the person who typed it."""


def parse(raw: str) -> str:
    """The number in E.164 (+380671234567) if it is a valid mobile number, else InvalidPhone saying why."""
    cleaned = raw.strip()
    if cleaned.startswith("00"):  # the international prefix many people type instead of +
        cleaned = "+" + cleaned[2:]
    try:
        number = phonenumbers.parse(cleaned, DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone("not a phone number: give it as +380XXXXXXXXX or 0XXXXXXXXX") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid phone number for its country: check the digits")
    kind = phonenumbers.number_type(number)
    if kind not in SENDABLE:
        what = REFUSED.get(kind, "not a mobile number")
        raise InvalidPhone(f"{what}: only mobile numbers can subscribe")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_hash(key: SecretStr, e164: str) -> str:
    """The number's name in logs, metrics and exports: HMAC-SHA256 under the phone key, hex."""
    return hmac.new(key.get_secret_value().encode(), e164.encode(), hashlib.sha256).hexdigest()


def mask(e164: str) -> str:
    """The number as people may see it: country code and two digits, then stars, then the last two (+38067*****67)."""
    try:
        country = str(phonenumbers.parse(e164).country_code)
    except phonenumbers.NumberParseException:
        country = ""
    head = 1 + len(country) + 2
    if len(e164) <= head + 2:
        return "*" * len(e164)
    return e164[:head] + "*" * (len(e164) - head - 2) + e164[-2:]
