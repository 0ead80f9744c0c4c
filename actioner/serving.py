"""How the actioner's WSGI app is served: waitress, with its body cap; over TLS through an in-process relay.

waitress has no TLS. With a ``tls_server_config``, waitress listens on a Unix socket in a private
directory (0700) and a relay accepts the TLS connections, verifies client certificates and passes
the plaintext through, so the waitress limits (body cap before the body is read, connection limit,
idle timeout) hold either way.
"""

from __future__ import annotations

import logging
import selectors
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import waitress
import waitress.server

from actioner.config import WebhookConfig
from virtbalance.tls_server import SecureThreadingMixIn
from virtbalance.webconfig import TLSServerConfig

log = logging.getLogger(__name__)

IDENT = "virtbalance-actioner"
_RELAY_CHUNK = 64 * 1024
# waitress closes a connection idle this long; the relay follows when waitress closes its side.
CHANNEL_TIMEOUT = 120

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def waitress_options(webhook: WebhookConfig) -> dict[str, Any]:
    """The waitress settings derived from the webhook config (one place for both ways of serving)."""
    return {
        "threads": webhook.threads,
        "ident": IDENT,
        # waitress answers 413 from the headers and closes, before reading a body over the cap.
        "max_request_body_size": webhook.max_body_bytes,
        # A body under the cap stays in memory: nothing an unauthenticated client sends reaches disk.
        "inbuf_overflow": webhook.max_body_bytes + 1,
        "channel_timeout": CHANNEL_TIMEOUT,
    }


class _RelayHandler(socketserver.BaseRequestHandler):
    """Pass one TLS connection's bytes to waitress and back until either side closes."""

    server: TLSRelay

    def handle(self) -> None:
        client: ssl.SSLSocket = self.request
        backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            backend.connect(self.server.backend_path)
        except OSError as exc:
            log.error("TLS relay: waitress is not reachable: %s", exc)
            backend.close()
            return
        client.settimeout(CHANNEL_TIMEOUT)
        with backend, selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(backend, selectors.EVENT_READ)
            try:
                self._pump(client, backend, selector)
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS relay: connection from %s ended: %s", self.client_address, exc)

    @staticmethod
    def _pump(client: ssl.SSLSocket, backend: socket.socket, selector: Any) -> None:
        client_open = True
        while True:
            # Decrypted bytes already buffered by ssl are not visible to select.
            pending = client_open and client.pending() > 0
            ready = {key.fileobj for key, _ in selector.select(0 if pending else None)}
            if client_open and (pending or client in ready):
                try:
                    data = client.recv(_RELAY_CHUNK)
                except ssl.SSLWantReadError:
                    data = None
                if data == b"":
                    # The client finished sending; waitress may still answer.
                    client_open = False
                    selector.unregister(client)
                    backend.shutdown(socket.SHUT_WR)
                elif data:
                    backend.sendall(data)
            if backend in ready:
                data = backend.recv(_RELAY_CHUNK)
                if not data:
                    return  # waitress closed (after a 413, a Connection: close or its idle timeout)
                client.sendall(data)


class TLSRelay(SecureThreadingMixIn, socketserver.TCPServer):
    """Accepts TLS connections and relays them to waitress on a Unix socket."""

    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], context: ssl.SSLContext, backend_path: str
    ) -> None:
        self.ssl_context = context
        self.backend_path = backend_path
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _RelayHandler)


class Served:
    """A running actioner server: ``run()`` blocks until ``close()`` or KeyboardInterrupt."""

    def __init__(
        self,
        app: WsgiApp,
        webhook: WebhookConfig,
        tls: TLSServerConfig | None,
    ) -> None:
        self._relay: TLSRelay | None = None
        self._relay_thread: threading.Thread | None = None
        self._socket_dir: Path | None = None
        options = waitress_options(webhook)
        if tls is None:
            self.waitress = waitress.server.create_server(
                app, host=webhook.listen_host, port=webhook.listen_port, **options
            )
            self.port = int(self.waitress.effective_port)
            self.scheme = "http"
            return
        self._socket_dir = Path(tempfile.mkdtemp(prefix="virtbalance-actioner-"))
        path = str(self._socket_dir / "waitress.sock")
        try:
            self.waitress = waitress.server.create_server(
                app, unix_socket=path, unix_socket_perms="600", **options
            )
            self._relay = TLSRelay(
                (webhook.listen_host, webhook.listen_port), tls.ssl_context(), path
            )
        except BaseException:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            raise
        self._relay.max_connections = int(self.waitress.adj.connection_limit)
        self.port = int(self._relay.server_address[1])
        self.scheme = "https"

    def run(self) -> None:
        if self._relay is not None:
            self._relay_thread = threading.Thread(
                target=self._relay.serve_forever, name="tls-relay", daemon=True
            )
            self._relay_thread.start()
        try:
            self.waitress.run()
        finally:
            self.close()

    def close(self) -> None:
        if self._relay is not None:
            if self._relay_thread is not None:
                self._relay.shutdown()
            self._relay.server_close()
            self._relay = None
        self.waitress.close()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
