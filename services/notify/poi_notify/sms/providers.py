"""SMS gateways: Kannel's sendsms in production, a log sink where none is configured; others fit the Provider shape."""

import logging
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlencode
from uuid import UUID

import aiohttp
import yarl
from pydantic import SecretStr

from poi_notify.phones.service import mask
from poi_notify.settings import NotifySettings
from poi_notify.sms import text

log = logging.getLogger(__name__)
# Kannel's delivery-report types: 1 delivered to the phone, 2 not delivered, 4 queued at the SMSC,
# 8 accepted by the SMSC, 16 refused by the SMSC. 31 asks for every one.
DLR_MASK = 31


@dataclass(frozen=True)
class OutgoingSms:
    """One message as a gateway needs it."""

    id: UUID
    e164: str
    body: str


class TemporaryFailure(Exception):
    """The gateway could not take the message now (busy, down, unreachable): queue it again later."""


class PermanentFailure(Exception):
    """The gateway refused the message: sending it again would be refused again."""


class Provider(Protocol):
    """A gateway that takes one message and answers with its own id for it."""

    name: str

    async def send(self, message: OutgoingSms) -> str:
        """Hand the message over; its gateway id. TemporaryFailure or PermanentFailure otherwise."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class LogSink:
    """Sends nothing: logs the exact text with the number masked (the default without a gateway)."""

    name = "log"

    async def send(self, message: OutgoingSms) -> str:
        log.info("SMS not sent (no gateway configured) to %s: %s", mask(message.e164), message.body)
        return f"log:{message.id}"

    async def aclose(self) -> None:
        return None


class KannelProvider:
    """Kannel's sendsms HTTP interface, with a delivery-report URL pointing back at notify.

    aiohttp rather than httpx here: sendsms is called once per message, and at gateway speed (thousands a second)
    httpx's per-request cost made notify the bottleneck (about 300/s against aiohttp's 3,800/s on one machine).
    """

    name = "kannel"

    def __init__(
        self,
        *,
        url: str,
        username: SecretStr,
        password: SecretStr,
        sender: str,
        callback_url: str,
        gateway_token: SecretStr | None,
        timeout_s: float,
        concurrency: int,
        dlr_mask: int = DLR_MASK,
    ) -> None:
        self._dlr_mask = dlr_mask
        self._sendsms = url.rstrip("/") + "/cgi-bin/sendsms"
        self._login = {"username": username.get_secret_value(), "password": password.get_secret_value()}
        self._sender = sender
        self._callback = callback_url.rstrip("/") + "/v1/sms/dlr"
        self._token = gateway_token
        fixed = {**self._login, "from": self._sender, "charset": "UTF-8"}
        if dlr_mask:
            fixed["dlr-mask"] = str(dlr_mask)
        self._fixed_url = f"{self._sendsms}?{urlencode(fixed, quote_via=quote)}"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )

    def dlr_url(self, id: UUID) -> str:
        """Where Kannel reports on the message; it fills in %d (the report type) itself."""
        query = {"id": str(id)}
        if self._token is not None:
            query["token"] = self._token.get_secret_value()
        return f"{self._callback}?{urlencode(query)}&type=%d"

    def request_url(self, message: OutgoingSms) -> yarl.URL:
        """The sendsms URL for the message, encoded here (the %d in the report URL must reach Kannel as is)."""
        params = {"to": message.e164, "text": message.body}
        if self._dlr_mask:
            params["dlr-url"] = self.dlr_url(message.id)
        if not text.is_gsm7(message.body):
            params["coding"] = "2"  # UCS-2: Cyrillic
        # What is the same for every message was encoded once: at thousands a second, encoding is notify's cost.
        return yarl.URL(f"{self._fixed_url}&{urlencode(params, quote_via=quote)}", encoded=True)

    async def send(self, message: OutgoingSms) -> str:
        try:
            async with self._session.get(self.request_url(message)) as answer:
                status, body = answer.status, await answer.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TemporaryFailure(f"gateway unreachable: {exc!r}") from exc
        if status in (200, 202):
            # Kannel answers "0: Accepted for delivery" or "3: Queued for later delivery". Anything else (a proxy's
            # page, a captive portal) is no acceptance: the message waits and goes again, never marked sent.
            if body.lstrip().startswith(("0:", "3:")):
                return str(message.id)
            raise TemporaryFailure(f"gateway answered {status} with no Kannel acceptance: {body.strip()[:100]!r}")
        reason = f"gateway answered {status}: {body.strip()[:200]}"
        if status >= 500 or status == 429:
            raise TemporaryFailure(reason)
        raise PermanentFailure(reason)

    async def aclose(self) -> None:
        await self._session.close()


def provider_from(settings: NotifySettings) -> Provider:
    """Kannel when its URL and login are configured, else the log sink (saying so: no SMS leaves)."""
    if settings.kannel_url is None:
        log.warning("no SMS gateway configured (POI_NOTIFY_KANNEL_URL): SMS are NOT sent, only logged")
        return LogSink()
    if settings.kannel_username is None or settings.kannel_password is None:
        raise RuntimeError("POI_NOTIFY_KANNEL_URL is set without POI_NOTIFY_KANNEL_USERNAME and _PASSWORD")
    log.info("SMS go through Kannel at %s", settings.kannel_url)
    return KannelProvider(
        url=settings.kannel_url,
        username=settings.kannel_username,
        password=settings.kannel_password,
        sender=settings.sms_from,
        callback_url=settings.gateway_callback_url,
        gateway_token=settings.gateway_token,
        timeout_s=settings.sms_send_timeout_s,
        concurrency=settings.sms_concurrency,
        dlr_mask=settings.sms_dlr_mask,
    )
