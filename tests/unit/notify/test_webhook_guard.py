"""Webhook signing, the SSRF guard and the retry schedule, without I/O."""

import asyncio
import hashlib
import hmac

import pytest

from poi_notify.settings import NotifySettings
from poi_notify.webhooks.delivery import UnsafeURL, allowed_address, check_target, check_url, retry_delay, signature


def test_signature_is_v1_hex_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"1","data":{"state":"open"}}'
    expected = hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_test", 1700000000, body) == f"v1={expected}"
    assert signature("whsec_test", 1700000001, body) != signature("whsec_test", 1700000000, body)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 -- an address to refuse, not one to bind
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "127.0.0.1",
        "192.0.2.1",
    ],
)
def test_private_link_local_loopback_and_reserved_addresses_are_refused(address: str) -> None:
    assert not allowed_address(address, allow_loopback=False)


def test_public_addresses_pass_and_loopback_only_with_the_setting() -> None:
    assert allowed_address("93.184.215.14", allow_loopback=False)
    assert allowed_address("2606:4700:4700::1111", allow_loopback=False)
    assert allowed_address("127.0.0.1", allow_loopback=True) and allowed_address("::1", allow_loopback=True)
    assert not allowed_address("10.0.0.1", allow_loopback=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",
        "ftp://93.184.215.14/",
        "https://user:pw@93.184.215.14/",
        "https:///path",
        "https://93.184.215.14/#x",
        "not a url",
    ],
)
def test_only_plain_https_urls_are_taken(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url, allow_loopback_http=False)


@pytest.mark.parametrize("url", ["https://127.0.0.1/hook", "https://localhost/hook", "https://10.0.0.8:8443/"])
def test_hosts_resolving_to_loopback_or_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL, match="not public"):
        asyncio.run(check_target(url, allow_loopback_http=False))


def test_a_public_address_literal_is_taken_without_asking_dns() -> None:
    parsed, addresses = asyncio.run(check_target("https://93.184.215.14/hook", allow_loopback_http=False))
    assert addresses == ["93.184.215.14"] and parsed.path == "/hook"


def test_retries_double_from_the_initial_delay_up_to_the_cap_with_jitter() -> None:
    settings = NotifySettings(webhook_retry_initial_s=10, webhook_retry_max_s=100)
    delays = [retry_delay(n, settings) for n in range(1, 8)]
    assert 8 <= delays[0] <= 10 and 16 <= delays[1] <= 20 and 32 <= delays[2] <= 40
    assert all(80 <= d <= 100 for d in delays[4:])
