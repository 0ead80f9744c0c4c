"""Chunk detection over private networks and explicit groups."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from virtbalance.chunks import ChunkMember, chunk_of, find_chunks


def test_thesis_project_ft_forms_two_chunks():
    members = [ChunkMember(n, ("lan21",)) for n in ("h1", "h2", "h3")]
    members += [ChunkMember(n, ("lan11",)) for n in ("home", "fly", "away")]
    members += [ChunkMember("north", ("lan11", "lan12"))]
    members += [ChunkMember(n, ("lan12",)) for n in ("east", "south", "west")]
    chunks = find_chunks(members)
    assert [(c.id, c.members) for c in chunks] == [
        ("lan11+lan12", ("away", "east", "fly", "home", "north", "south", "west")),
        ("lan21", ("h1", "h2", "h3")),
    ]


def test_groups_merge_with_networks_and_lone_domains_are_chunks_of_one():
    members = [
        ChunkMember("web1", ("priv",)),
        ChunkMember("web2", (), group="web"),
        ChunkMember("db", ("priv",), group="web"),
        ChunkMember("solo"),
    ]
    assert chunk_of(members) == {
        "web1": "priv+group:web",
        "web2": "priv+group:web",
        "db": "priv+group:web",
        "solo": "domain:solo",
    }


def test_a_network_shared_by_nobody_else_still_names_the_chunk():
    assert chunk_of([ChunkMember("a", ("br-a",)), ChunkMember("b", ("br-b",))]) == {
        "a": "br-a",
        "b": "br-b",
    }


names = st.text(alphabet="abcdef", min_size=1, max_size=3)


@given(
    st.dictionaries(
        names,
        st.tuples(
            st.lists(st.sampled_from(["n1", "n2", "n3", "n4"]), max_size=2), st.none() | names
        ),
        max_size=12,
    )
)
def test_partition_properties(spec):
    members = [ChunkMember(n, tuple(nets), g) for n, (nets, g) in spec.items()]
    chunks = find_chunks(members)
    # Every domain is in exactly one chunk.
    assert sorted(n for c in chunks for n in c.members) == sorted(spec)
    # Domains sharing a network or group are in the same chunk.
    mapping = chunk_of(members)
    for a in members:
        for b in members:
            linked = set(a.private_networks) & set(b.private_networks) or (
                a.group and a.group == b.group
            )
            if linked:
                assert mapping[a.name] == mapping[b.name]
    # Deterministic whatever the input order.
    assert find_chunks(reversed(members)) == chunks
