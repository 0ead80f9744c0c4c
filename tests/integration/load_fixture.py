"""A fixture exporter on 127.0.0.1: one host whose VMs' CPU demand follows a fixed schedule."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from tests.http_fixtures import QuietHandler, serving


@dataclass(frozen=True)
class Phase:
    """From ``start`` seconds after the exporter started, the VMs demand ``cores`` CPU cores."""

    start: float
    cores: float


@dataclass(frozen=True)
class Schedule:
    """A host of ``cpus`` CPUs whose demand steps through ``phases`` (sorted by start, the first at 0)."""

    cpus: float
    phases: tuple[Phase, ...]

    def cpu_seconds(self, elapsed: float) -> float:
        """The counter a scrape at ``elapsed`` reads: the integral of the demand so far (piecewise linear).

        A function of time only, so two backends scraping at different moments sample the same curve.
        """
        total = 0.0
        for phase, following in zip(self.phases, (*self.phases[1:], None), strict=True):
            end = elapsed if following is None else min(elapsed, following.start)
            if end <= phase.start:
                break
            total += (end - phase.start) * phase.cores
        return total


def render(schedule: Schedule, host: str, elapsed: float) -> str:
    """The exposition text of the series the host rules read (the lab exporter's names)."""
    return (
        "# TYPE libvirt_up gauge\n"
        "libvirt_up 1\n"
        "# TYPE libvirt_node_cpus gauge\n"
        f"libvirt_node_cpus {schedule.cpus}\n"
        "# TYPE libvirt_node_memory_total_bytes gauge\n"
        "libvirt_node_memory_total_bytes 8589934592\n"
        "# TYPE libvirt_node_memory_available_bytes gauge\n"
        "libvirt_node_memory_available_bytes 6442450944\n"
        "# TYPE libvirt_domain_info_cpu_time_seconds_total counter\n"
        f'libvirt_domain_info_cpu_time_seconds_total{{domain="{host}-vm"}} '
        f"{schedule.cpu_seconds(elapsed):.6f}\n"
    )


@contextmanager
def serve(schedule: Schedule, host: str) -> Iterator[tuple[str, float]]:
    """Serve the schedule on a free 127.0.0.1 port; yields (target host:port, wall-clock start)."""
    started = time.time()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            body = render(schedule, host, time.time() - started).encode()
            self.answer(200, body, "text/plain; version=0.0.4")

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        yield f"127.0.0.1:{port}", started


def phases(*steps: tuple[float, float]) -> tuple[Phase, ...]:
    """(start, cores) pairs -> phases, checked sorted and starting at 0."""
    out = tuple(Phase(start, cores) for start, cores in steps)
    starts: Sequence[float] = [p.start for p in out]
    if not out or starts[0] != 0 or list(starts) != sorted(starts):
        raise ValueError(f"phases must start at 0 and be sorted: {steps}")
    return out
