"""Chunk detection: domains on one host chained by private networks or an explicit group move as one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GROUP_PREFIX = "group:"
LONE_PREFIX = "domain:"


@dataclass(frozen=True)
class ChunkMember:
    """What chunk detection needs to know about one domain on one host."""

    name: str
    private_networks: tuple[str, ...] = ()
    group: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A set of domains that must share a host; ``id`` is stable across scrapes and hosts."""

    id: str
    members: tuple[str, ...]
    private_networks: tuple[str, ...]
    groups: tuple[str, ...]


def chunk_id(private_networks: Iterable[str], groups: Iterable[str], lone_domain: str) -> str:
    """Derive a chunk id from what links it: sorted network names and ``group:NAME`` tokens.

    A domain linked to nothing is a chunk of one, named ``domain:NAME``. Because the id depends only on
    names, the same chunk gets the same id on every scrape and after it moves to another host.
    """
    tokens = sorted(set(private_networks)) + sorted(GROUP_PREFIX + g for g in set(groups))
    return "+".join(tokens) if tokens else LONE_PREFIX + lone_domain


def find_chunks(members: Iterable[ChunkMember]) -> list[Chunk]:
    """Connected components of the domains of ONE host through private networks and groups.

    Networks and groups are host-local identities: call this per host, never across hosts.
    The result is sorted by chunk id, members sorted by name, so it is deterministic.
    """
    domains = sorted(members, key=lambda m: m.name)
    parent = list(range(len(domains)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps the trees flat
            i = parent[i]
        return i

    first_by_link: dict[str, int] = {}
    for index, member in enumerate(domains):
        links = list(member.private_networks)
        if member.group:
            links.append(GROUP_PREFIX + member.group)
        for link in links:
            other = first_by_link.setdefault(link, index)
            root_a, root_b = find(index), find(other)
            if root_a != root_b:
                parent[max(root_a, root_b)] = min(root_a, root_b)

    components: dict[int, list[ChunkMember]] = {}
    for index, member in enumerate(domains):
        components.setdefault(find(index), []).append(member)

    chunks = []
    for group_members in components.values():
        networks = sorted({n for m in group_members for n in m.private_networks})
        groups = sorted({m.group for m in group_members if m.group})
        chunks.append(
            Chunk(
                id=chunk_id(networks, groups, group_members[0].name),
                members=tuple(m.name for m in group_members),
                private_networks=tuple(networks),
                groups=tuple(groups),
            )
        )
    return sorted(chunks, key=lambda c: c.id)


def chunk_of(members: Iterable[ChunkMember]) -> dict[str, str]:
    """Map each domain name to its chunk id (domains of one host)."""
    return {name: chunk.id for chunk in find_chunks(members) for name in chunk.members}
