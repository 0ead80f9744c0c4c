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

from virtbalance.actioner.config import WebhookConfig
from virtbalance.tls_server import SecureThreadingMixIn
from virtbalance.webconfig import TLSServerConfig

log = logging.getLogger(__name__)

IDENT = "virtbalance-actioner"
_RELAY_CHUNK = 64 * 1024
# Bytes from a client held for waitress at most; the relay stops reading the client beyond this.
_RELAY_BUFFER = 256 * 1024
# After waitress closed early, how long and how much the relay keeps reading so its close is no reset.
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 4 * 1024 * 1024
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
        backend.setblocking(False)
        with backend:
            try:
                _Pump(client, backend).run()
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS relay: connection from %s ended: %s", self.client_address, exc)


class _Pump:
    """Moves bytes both ways until waitress closes; never blocks writing to waitress.

    Writes to waitress are non-blocking and buffered (at most _RELAY_BUFFER), so the answer waitress
    sends while it refuses to read more (a 413 for a body over the cap) is always read and passed on.
    """

    def __init__(self, client: ssl.SSLSocket, backend: socket.socket) -> None:
        self.client = client
        self.backend = backend
        self.to_backend = bytearray()
        self.client_eof = False  # the client finished sending
        self.backend_deaf = False  # waitress no longer reads (it answered and is closing)
        self.watching_client = False
        self.selector = selectors.DefaultSelector()

    def run(self) -> None:
        with self.selector:
            self.selector.register(self.backend, selectors.EVENT_READ)
            while self._step():
                pass

    def _step(self) -> bool:
        reading_client = not self.client_eof and len(self.to_backend) < _RELAY_BUFFER
        if reading_client != self.watching_client:
            if reading_client:
                self.selector.register(self.client, selectors.EVENT_READ)
            else:
                self.selector.unregister(self.client)
            self.watching_client = reading_client
        writing = bool(self.to_backend) and not self.backend_deaf
        self.selector.modify(
            self.backend, selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
        )
        # Decrypted bytes already buffered by ssl are not visible to select.
        pending = reading_client and self.client.pending() > 0
        masks: dict[Any, int] = {}
        for key, mask in self.selector.select(0 if pending else None):
            masks[key.fileobj] = mask
        backend_mask = masks.get(self.backend, 0)
        if backend_mask & selectors.EVENT_READ:
            try:
                data = self.backend.recv(_RELAY_CHUNK)
            except ConnectionResetError:
                data = b""
            if not data:
                # waitress closed (after a 413, a Connection: close or its idle timeout).
                self._linger()
                return False
            self.client.sendall(data)
        if backend_mask & selectors.EVENT_WRITE:
            self._send_backend()
        if reading_client and (pending or masks.get(self.client, 0) & selectors.EVENT_READ):
            self._read_client()
        return True

    def _send_backend(self) -> None:
        if self.to_backend and not self.backend_deaf:
            try:
                sent = self.backend.send(self.to_backend)
            except BlockingIOError:
                return
            except (BrokenPipeError, ConnectionResetError):
                # waitress stopped reading: drop the rest, keep passing on what it answers.
                self.backend_deaf = True
                self.to_backend.clear()
                return
            del self.to_backend[:sent]
        if self.client_eof and not self.to_backend and not self.backend_deaf:
            # The client finished sending and all of it reached waitress, which may still answer.
            self.backend.shutdown(socket.SHUT_WR)
            self.backend_deaf = True

    def _read_client(self) -> None:
        try:
            data = self.client.recv(_RELAY_CHUNK)
        except ssl.SSLWantReadError:
            return
        if not data:
            self.client_eof = True
        elif not self.backend_deaf:
            self.to_backend += data
        # Once waitress no longer reads, what the client still sends is read and dropped: left
        # unread, it would make the close a TCP reset that can discard the answer at the client.
        self._send_backend()

    def _linger(self) -> None:
        """Close like a web server does after an early answer: FIN first, then drain for a moment."""
        if self.client_eof:
            return
        try:
            self.client.shutdown(socket.SHUT_WR)  # ends TLS too: what still arrives is dropped raw
            self.client.settimeout(_LINGER_SECONDS)
            drained = 0
            while drained < _LINGER_BYTES:
                data = self.client.recv(_RELAY_CHUNK)
                if not data:
                    return
                drained += len(data)
        except OSError:
            return


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

    def stop(self) -> None:
        """Make ``run()`` return, from any thread: waitress closes its sockets in its own loop."""
        dispatchers = self.waitress._map  # waitress's asyncore map: the server, channels, trigger

        def close_all() -> None:
            for dispatcher in list(dispatchers.values()):
                dispatcher.close()

        self.waitress.trigger.pull_trigger(close_all)

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
