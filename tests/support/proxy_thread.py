"""A TcpProxy on an event loop of its own thread, for tests whose clients are other processes."""

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tests.support.tcp_proxy import TcpProxy

T = TypeVar("T")
BOUND_S = 30.0


class ProxyThread:
    """Forwards to the server a URL names from a background thread, so it keeps forwarding between async tests."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname and parts.port, url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self.proxy = TcpProxy(parts.hostname, parts.port)
        self.restore()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(BOUND_S)

    def through(self, url: str) -> str:
        """The same URL, pointing at the proxy."""
        return self.proxy.through(url)

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self._run(self.proxy.cut())

    def restore(self) -> None:
        """Accept and forward again, on the same port."""
        self._run(self.proxy.restore())

    def close(self) -> None:
        """Cut and stop the thread."""
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(BOUND_S)
        self._loop.close()
