"""The actioner as waitress serves it, plain and behind the TLS relay: body cap before the body, client certs."""

from __future__ import annotations

import dataclasses
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.actioner_fixtures import TOKEN, RecordingQueue, actioner_config, payload
from tests.tls_fixtures import Certs, make_certs
from virtbalance.actioner.app import create_app
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.services import Services
from virtbalance.actioner.serving import Served
from virtbalance.cli import main as cli_main
from virtbalance.webconfig import TLSServerConfig

pytestmark = pytest.mark.integration

CAP = 64 * 1024  # the fixture config's max_body_bytes
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Running:
    port: int
    scheme: str
    services: Services
    certs: Certs

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def connect(self, *, cert: tuple[Path, Path] | None = None) -> socket.socket:
        """A raw connection (TLS with the test CA and ``cert`` when the server speaks TLS)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if self.scheme == "http":
            return sock
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        if cert is None:
            cert = (self.certs.client_cert, self.certs.client_key)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        return context.wrap_socket(sock, server_hostname="127.0.0.1")

    def client_kwargs(self) -> dict[str, object]:
        if self.scheme == "http":
            return {}
        return {
            "verify": str(self.certs.ca),
            "cert": (str(self.certs.client_cert), str(self.certs.client_key)),
        }


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(params=["http", "https"])
def served(request, tmp_path, certs) -> Iterator[Running]:
    config = actioner_config(tmp_path)
    assert config.webhook.max_body_bytes == CAP
    journal = Journal(config.journal_path)
    services = Services(
        config=config, journal=journal, metrics=Metrics(), worker=RecordingQueue(), token=TOKEN
    )
    tls = None
    if request.param == "https":
        tls = TLSServerConfig(
            cert_file=certs.server_cert,
            key_file=certs.server_key,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=certs.ca,
        )
    webhook = dataclasses.replace(config.webhook, listen_port=0)  # any free port
    server = Served(create_app(config, services=services), webhook, tls)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield Running(server.port, server.scheme, services, certs)
    finally:
        server.stop()
        thread.join(10)
        assert not thread.is_alive()
        journal.close()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails (timeout) if it keeps the connection open."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            return received
        if not chunk:
            return received
        received += chunk


def _recv_briefly(sock: socket.socket) -> bytes:
    sock.settimeout(0.2)
    try:
        return sock.recv(65536)
    except (TimeoutError, ssl.SSLWantReadError):
        return b""
    finally:
        sock.settimeout(10)


def test_an_oversized_body_without_a_token_is_answered_and_closed_before_it_is_sent(served):
    sock = served.connect()
    with sock:
        sock.sendall(
            b"POST /api/v1/alerts HTTP/1.1\r\nHost: actioner\r\n"
            b"Content-Type: application/json\r\nContent-Length: 209715200\r\n\r\n"
        )
        # Not one byte of the 200 MiB body is sent: the answer comes from the headers alone.
        answer = read_until_closed(sock)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large", answer[:300]
    assert b"Connection: close" in rest
    assert served.services.journal.plans() == []


def test_a_chunked_body_is_cut_at_the_cap_and_the_connection_closed(served):
    sock = served.connect()
    chunk = b"x" * 16384
    sent = 0
    with sock:
        sock.sendall(
            b"POST /api/v1/alerts HTTP/1.1\r\nHost: actioner\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        answer = b""
        # A client that would send 200 MiB: it stops as soon as the server has answered.
        while sent < 200 * 1024 * 1024 and not answer:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                answer = _recv_briefly(sock)  # TLS 1.3 session tickets are readable, but no answer
                continue
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            sent += len(chunk)
        answer += read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large"), answer[:300]
    assert sent < 64 * 1024 * 1024  # far less than the body: the server did not read it all


def test_a_body_under_the_cap_without_a_token_is_refused(served):
    response = requests.post(
        f"{served.url}/api/v1/alerts",
        json=payload("firing_hv1"),
        timeout=10,
        **served.client_kwargs(),
    )
    assert response.status_code == 401
    assert served.services.journal.plans() == []
    ok = requests.post(
        f"{served.url}/api/v1/alerts",
        json=payload("firing_hv1"),
        headers=AUTH,
        timeout=10,
        **served.client_kwargs(),
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["queued_plan"] is not None


def test_malformed_bodies_get_a_400_through_the_real_server(served):
    for raw in (b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"1" * 5000 + b"}", b'{"a": "\\ud800"}'):
        response = requests.post(
            f"{served.url}/api/v1/alerts",
            data=raw,
            headers={**AUTH, "Content-Type": "application/json"},
            timeout=10,
            **served.client_kwargs(),
        )
        assert response.status_code == 400
        assert response.json()["error"]


@pytest.mark.parametrize("served", ["https"], indirect=True)
def test_tls_needs_a_client_certificate_from_the_trusted_ca(served):
    for cert in ((served.certs.rogue_cert, served.certs.rogue_key), None):
        try:
            if cert is None:
                context = ssl.create_default_context(cafile=str(served.certs.ca))
                sock = context.wrap_socket(
                    socket.create_connection(("127.0.0.1", served.port), timeout=10),
                    server_hostname="127.0.0.1",
                )
            else:
                sock = served.connect(cert=cert)
            with sock:
                # TLS 1.3: the server checks the certificate after the client's handshake ends.
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
                answer = read_until_closed(sock)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            answer = b""
        assert answer == b"", cert
    # Plain HTTP to the TLS port gets no HTTP answer either.
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as plain:
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert not read_until_closed(plain).startswith(b"HTTP/")
    response = requests.get(f"{served.url}/healthz", timeout=10, **served.client_kwargs())
    assert response.json() == {"status": "ok"}


def test_several_requests_share_one_connection(served):
    request = b"GET /metrics HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n" % TOKEN.encode()
    with served.connect() as sock:
        sock.sendall(request + b"\r\n" + request + b"\r\n" + request + b"Connection: close\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.count(b"virtbalance_webhook_requests_total") >= 3


@pytest.mark.parametrize("served", ["https"], indirect=True)
def test_the_drain_command_reaches_the_actioner_over_tls(served, tmp_path, capsys):
    config = tmp_path / "cli.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "hosts": {
                    "hv1": "qemu+tcp://192.0.2.1/system",
                    "hv2": "qemu+tcp://192.0.2.2/system",
                },
                "webhook": {"token_file": str(tmp_path / "token")},
                "journal": {"path": str(tmp_path / "cli-journal.sqlite")},
            }
        )
    )
    args = ["drain", "hv2", "--config", str(config), "--url", served.url]
    args += ["--cacert", str(served.certs.ca)]
    # Without the client certificate the handshake fails; with it the drain is queued.
    assert cli_main(args) == 1
    assert "did not answer" in capsys.readouterr().err
    args += ["--cert", str(served.certs.client_cert), "--key", str(served.certs.client_key)]
    assert cli_main(args) == 0
    assert "queued as plan" in capsys.readouterr().out
    assert len(served.services.worker.submitted) == 1
