"""A test's HTTP server answering in a thread while a block runs, always stopped and closed after."""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse


class QuietHandler(BaseHTTPRequestHandler):
    """A test server's request handler that logs nothing (every request would print a line)."""

    def answer(self, status: int, body: bytes, content_type: str | None = None) -> None:
        """Send ``body`` with ``status``, its length and, when given, its content type."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[int]:
    """Run ``server`` in a daemon thread for the block; yields its port."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class ApiFake(Protocol):
    """A fake of an HTTP API: the JSON answer to a GET's query parameters."""

    def answer(self, params: dict[str, str]) -> dict[str, Any]: ...


@contextlib.contextmanager
def serving_api() -> Iterator[Callable[[ApiFake], str]]:
    """A function that serves a fake on 127.0.0.1 and gives its URL; every server stops after the block."""
    servers = contextlib.ExitStack()

    def start(fake: ApiFake) -> str:
        class Handler(QuietHandler):
            def do_GET(self) -> None:
                params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                self.answer(200, json.dumps(fake.answer(params)).encode(), "application/json")

        port = servers.enter_context(serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)))
        return f"http://127.0.0.1:{port}"

    with servers:
        yield start
