"""Fuzz the actioner's webhook through the real server (waitress, optionally the TLS relay) and count answers.

Each request is one of: a recorded Alertmanager notification with fields replaced by random JSON,
random JSON, nesting up to 3,000 levels, numbers up to 6,000 digits, JSON-escaped lone surrogates
in every string field, raw bytes, truncated bodies, bodies over the cap, a wrong or missing token.
Goal: no answer 5xx and no connection closed without an answer.

    nice -n 10 .venv/bin/python benchmarks/fuzz_webhook.py --requests 100000 [--tls] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import copy
import dataclasses
import http.client
import json
import random
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import checkout  # noqa: F401 (puts this tree first on sys.path)

from tests.actioner_fixtures import (
    PAYLOAD_FIELDS,
    PAYLOAD_WORDS,
    RecordingQueue,
    payload,
)
from virtbalance.actioner.app import create_app
from virtbalance.actioner.config import parse_config
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.services import Services
from virtbalance.actioner.serving import Served
from virtbalance.webconfig import TLSServerConfig

TOKEN = "fuzz-token"
CAP = 64 * 1024
KINDS = (
    "mutated",
    "surrogate",
    "json",
    "deep",
    "number",
    "bytes",
    "truncated",
    "oversize",
    "no_token",
    "valid",
)
_STRING_FIELDS = [
    ("groupKey",),
    ("receiver",),
    ("alerts", 0, "startsAt"),
    ("alerts", 0, "fingerprint"),
    ("alerts", 0, "labels", "host"),
    ("alerts", 0, "annotations", "summary"),
]


class Bodies:
    """Seeded generator of hostile bodies (kind, bytes, headers)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.templates = [
            payload(name) for name in ("firing_hv1", "resolved_hv1", "firing_two_hosts")
        ]
        self.counter = 0

    def _string(self) -> str:
        rng = self.rng
        pool = [chr(rng.randrange(0xD800, 0xE000)), "\x00", '"', "\\", "\n", "é", "\U0001f600"]
        return "".join(rng.choice([*pool, "a", "b", "1"]) for _ in range(rng.randrange(0, 12)))

    def _value(self, depth: int = 0) -> Any:
        rng = self.rng
        choice = rng.randrange(9 if depth < 3 else 6)
        if choice == 0:
            return None
        if choice == 1:
            return rng.choice([True, False])
        if choice == 2:
            return rng.randrange(-(10**30), 10**30)
        if choice == 3:
            return rng.uniform(-1e300, 1e300)
        if choice == 4:
            return self._string()
        if choice == 5:
            return rng.choice(PAYLOAD_WORDS)
        if choice in (6, 7):
            return [self._value(depth + 1) for _ in range(rng.randrange(4))]
        return {self._string(): self._value(depth + 1) for _ in range(rng.randrange(4))}

    @staticmethod
    def _set(body: Any, path: tuple[Any, ...], value: Any) -> None:
        target = body
        try:
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
        except (IndexError, KeyError, TypeError):
            pass

    def _fresh(self) -> dict[str, Any]:
        body = copy.deepcopy(self.rng.choice(self.templates))
        self.counter += 1
        for alert in body["alerts"]:
            alert["startsAt"] = (
                f"2026-01-01T00:00:00.{self.counter:09d}Z"  # new: reaches the journal
            )
        return body

    def next(self) -> tuple[str, bytes, dict[str, str]]:
        rng = self.rng
        kind = rng.choice(KINDS)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        body = self._fresh()
        if kind == "mutated":
            for _ in range(rng.randrange(1, 4)):
                self._set(body, rng.choice(PAYLOAD_FIELDS), self._value())
            raw = json.dumps(body, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        elif kind == "surrogate":
            self._set(body, rng.choice(_STRING_FIELDS), "x" + chr(rng.randrange(0xD800, 0xE000)))
            raw = json.dumps(body).encode()
        elif kind == "json":
            raw = json.dumps(self._value()).encode()
        elif kind == "deep":
            depth = rng.randrange(30, 3000)
            opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
            raw = (opener * depth + "1" + closer * depth).encode()
        elif kind == "number":
            digits = rng.randrange(1, 6000)
            text = json.dumps(body)
            raw = text.replace('"version": "4"', '"version": ' + "9" * digits, 1).encode()
        elif kind == "bytes":
            raw = rng.randbytes(rng.randrange(0, 300))
        elif kind == "truncated":
            full = json.dumps(body).encode()
            raw = full[: rng.randrange(0, len(full))]
        elif kind == "oversize":
            raw = json.dumps(body).encode() + b" " * CAP
        elif kind == "no_token":
            headers.pop("Authorization")
            if rng.random() < 0.5:
                guess = "".join(c for c in self._string() if c.isascii() and c.isprintable())
                headers["Authorization"] = f"Bearer {guess}"
            raw = json.dumps(body).encode()
        else:
            raw = json.dumps(body).encode()
        return kind, raw, headers


def run(count: int, seed: int, tls: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "token").write_text(TOKEN)
        config = parse_config(
            {
                "hosts": {
                    "hv1": "qemu+tcp://192.0.2.1/system",
                    "hv2": "qemu+tcp://192.0.2.2/system",
                },
                "journal": {"path": str(base / "journal.sqlite")},
                "webhook": {"token_file": str(base / "token"), "max_body_bytes": CAP},
            },
            base=base,
        )
        journal = Journal(config.journal_path)
        services = Services(config, journal, Metrics(), RecordingQueue(), TOKEN)
        tls_config = None
        context: ssl.SSLContext | None = None
        if tls:
            from tests.tls_fixtures import make_certs  # noqa: PLC0415 - only with --tls

            certs = make_certs(base / "certs")
            tls_config = TLSServerConfig(certs.server_cert, certs.server_key)
            context = ssl.create_default_context(cafile=str(certs.ca))
        webhook = dataclasses.replace(config.webhook, listen_port=0)
        server = Served(create_app(config, services=services), webhook, tls_config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()

        def connect() -> http.client.HTTPConnection:
            if context is not None:
                return http.client.HTTPSConnection(
                    "127.0.0.1", server.port, timeout=30, context=context
                )
            return http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

        bodies = Bodies(seed)
        by_status: collections.Counter[int] = collections.Counter()
        by_kind: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        no_answer = 0
        examples_5xx: list[str] = []
        conn = connect()
        started = time.perf_counter()
        for _ in range(count):
            kind, raw, headers = bodies.next()
            try:
                conn.request("POST", "/api/v1/alerts", body=raw, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = connect()
            except (OSError, http.client.HTTPException):
                no_answer += 1
                conn.close()
                conn = connect()
                continue
            by_status[status] += 1
            by_kind[kind][status] += 1
            if status >= 500 and len(examples_5xx) < 5:
                examples_5xx.append(raw[:200].decode("utf-8", "backslashreplace"))
        seconds = time.perf_counter() - started
        conn.close()
        server.stop()
        thread.join(10)
        plans = len(journal.plans(100000))
        journal.close()
    return {
        "requests": count,
        "seed": seed,
        "tls": tls,
        "seconds": round(seconds, 1),
        "requests_per_s": round(count / seconds),
        "by_status": dict(sorted(by_status.items())),
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
        "no_answer": no_answer,
        "5xx": sum(n for s, n in by_status.items() if s >= 500),
        "examples_5xx": examples_5xx,
        "plans_journaled": plans,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tls", action="store_true", help="through the TLS relay")
    args = parser.parse_args()
    result = run(args.requests, args.seed, args.tls)
    print(json.dumps(result, indent=2))
    return 0 if result["5xx"] == 0 and result["no_answer"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
