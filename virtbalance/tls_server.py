"""A socketserver mixin: a bounded number of connection threads, each doing its own TLS handshake."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from socketserver import ThreadingMixIn
from typing import Any

log = logging.getLogger(__name__)

# A client that opens a connection and sends nothing holds a thread no longer than this.
HANDSHAKE_TIMEOUT = 10.0
# Connections served at once; more are closed at accept (waitress's own default limit is 100 too).
MAX_CONNECTIONS = 100


class SecureThreadingMixIn(ThreadingMixIn):
    """Serve each connection in a thread, at most ``max_connections`` at once, over TLS when
    ``ssl_context`` is set.

    The handshake happens in the connection's thread, not at accept: a client that stalls it cannot
    hold up the others (wrapping the listening socket would handshake in the accept loop).
    """

    daemon_threads = True
    # socketserver's default backlog of 5 drops connections under a burst; the thread cap limits work.
    request_queue_size = 128
    ssl_context: ssl.SSLContext | None = None
    max_connections = MAX_CONNECTIONS
    _slots: threading.BoundedSemaphore | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._slots is None:
            self._slots = threading.BoundedSemaphore(self.max_connections)
        if not self._slots.acquire(blocking=False):
            log.warning(
                "over %d connections: closing one from %s", self.max_connections, client_address
            )
            request.close()
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            assert self._slots is not None
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)  # type: ignore[misc]
            return
        tls = self._handshake(request, client_address)
        if tls is None:
            return
        try:
            super().finish_request(tls, client_address)  # type: ignore[misc]
        finally:
            # The plain socket was detached by the wrap; the caller's shutdown only sees that one.
            tls.close()

    def _handshake(self, sock: socket.socket, client_address: Any) -> ssl.SSLSocket | None:
        assert self.ssl_context is not None
        # Requests and answers go out as several small TLS records: without this, Nagle's algorithm
        # and the peer's delayed ACK hold each one back (40 ms a request, measured).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            # A scanner, a plain-HTTP client or a certificate we do not trust: nothing to answer.
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return None
        tls.settimeout(None)
        return tls
