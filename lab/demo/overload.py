"""Which host the demo overloads and which guests' load dials it turns, chosen from the live topology."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Percent of one vCPU that a guest's load dial can be set to.
MAX_GUEST_LOAD = 100


@dataclass(frozen=True)
class Overload:
    """The load to set: ``loads`` maps each domain of ``host`` to a percent of one CPU."""

    host: str
    loads: dict[str, int]
    cpus: float

    @property
    def cores(self) -> float:
        return sum(self.loads.values()) / 100.0

    @property
    def ratio(self) -> float:
        """The CPU demand ratio the host should reach."""
        return self.cores / self.cpus


def choose_overload(
    chunks: Mapping[str, Mapping[str, list[str]]],
    cpus: Mapping[str, float],
    ratio: float,
    host: str | None = None,
) -> Overload:
    """Overload the host with the most multi-domain chunks by loading those chunks evenly.

    ``chunks`` is host -> chunk id -> member domains. Loading two or more chunks evenly means that
    moving one chunk relieves the host and fits on an idle peer, so the demo shows a whole chunk
    moving rather than a lone guest. With a single chunk, the load goes to every domain of the host.
    """
    if not chunks:
        raise ValueError("no host with domains to overload")
    if host is None:
        host = max(
            sorted(chunks),
            key=lambda h: (
                sum(1 for members in chunks[h].values() if len(members) > 1),
                sum(len(m) for m in chunks[h].values()),
            ),
        )
    if host not in chunks or not chunks[host]:
        raise ValueError(f"host {host!r} runs no domain")
    host_chunks = chunks[host]
    groups = [sorted(m) for _, m in sorted(host_chunks.items()) if len(m) > 1]
    if len(groups) < 2:
        groups = [sorted(d for members in host_chunks.values() for d in members)]
    per_group = ratio * cpus[host] * 100.0 / len(groups)
    loads: dict[str, int] = {}
    for members in groups:
        share = per_group / len(members)
        if share > MAX_GUEST_LOAD:
            raise ValueError(
                f"host {host}: {ratio:.0%} of {cpus[host]:g} CPUs needs more than one busy vCPU per guest"
            )
        for domain in members:
            loads[domain] = round(share)
    return Overload(host=host, loads=loads, cpus=cpus[host])


@dataclass(frozen=True)
class DemoScript:
    """What the demo does to a scenario: optional staging moves, then the overload."""

    overload: Overload
    # Moves made by hand before the overload, to set the scene (domain -> host).
    gather: dict[str, str]
    story: str


# The shipped scenarios' scripts. Percentages are dial steps (multiples of 1/9 of a core), and the
# loads stay within the lab's 150% budget together with the scenario's initial loads.
_SCRIPTS: dict[str, DemoScript] = {
    # hv2 runs a pinned guest, the cache chunk and a worker. The pinned load cannot move and moving
    # the worker alone is not enough, so only moving the whole cache chunk brings hv2 under its target.
    # The sizes leave room on both sides of the move: the demand signal counts vCPU wait on the shared
    # machine too (about 10% above the dials), so the chunk (1/3 core) must still fit under another
    # host's 65% target next to its own ~15%, and what stays (ops1 and worker1) under hv2's.
    "default": DemoScript(
        overload=Overload(host="hv2", loads={"ops1": 44, "cache1": 22, "cache2": 11}, cpus=1.0),
        gather={},
        story=(
            "hv2 runs a pinned guest (ops1), the chunk group:cache (cache1, cache2) and worker1; "
            "only moving the whole chunk can relieve it"
        ),
    ),
    # The thesis's node0 held both chunks of project ft. Chunk 2 joins chunk 1 on ft1 first; then
    # both are loaded and one whole chunk must leave, as XenGuard moved chunk 1 to the idle node.
    "thesis-ft": DemoScript(
        overload=Overload(
            host="ft1",
            loads={
                "h1": 11,
                "h2": 11,
                "h3": 22,
                "home": 11,
                "fly": 11,
                "away": 11,
                "north": 11,
            },
            cpus=1.0,
        ),
        gather={d: "ft1" for d in ("home", "fly", "away", "north", "east", "south", "west")},
        story=(
            "as in the thesis, both chunks of project ft share one host (ft1): "
            "chunk lan21 (h1-h3) and chunk lan11+lan12 (seven guests); one whole chunk must leave"
        ),
    ),
}


def script_for(
    scenario: str,
    chunks: Mapping[str, Mapping[str, list[str]]],
    cpus: Mapping[str, float],
    ratio: float,
) -> DemoScript:
    """The shipped scenario's script, or a generic overload of the host with the most chunks."""
    script = _SCRIPTS.get(scenario)
    if script is not None:
        overload = script.overload
        return DemoScript(
            overload=Overload(host=overload.host, loads=overload.loads, cpus=cpus[overload.host]),
            gather=script.gather,
            story=script.story,
        )
    overload = choose_overload(chunks, cpus, ratio)
    return DemoScript(
        overload=overload,
        gather={},
        story=f"{overload.host} runs the most chunks; its guests' load rises together",
    )
