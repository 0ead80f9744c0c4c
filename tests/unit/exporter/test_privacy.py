"""An interface's privacy: the declared lists first, then libvirt's networks, then the bridge's ports."""

from __future__ import annotations

import logging

import pytest

from virtbalance.exporter.privacy import PrivacyJudge
from virtbalance.exporter.topology import Interface


class Bridges:
    """Bridge answers from a dict (None: not visible); counts the lookups."""

    def __init__(self, answers: dict[str, bool | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def is_private(self, bridge: str) -> bool | None:
        self.asked.append(bridge)
        return self.answers.get(bridge)


def nic(*, bridge: str = "", network: str = "", kind: str = "bridge") -> Interface:
    return Interface(target="vnet0", kind=kind, bridge=bridge, network=network)


def test_a_declared_name_wins_over_libvirt_and_the_bridge_and_private_wins_over_public():
    judge = PrivacyJudge(
        Bridges({"br-up": False, "lan1": True}),
        private=frozenset({"br-up", "both"}),
        public=frozenset({"lan1", "both", "isonet"}),
    )
    assert judge.is_private(nic(bridge="br-up"), {}, {}) is True
    assert judge.is_private(nic(bridge="lan1"), {}, {}) is False
    assert judge.is_private(nic(bridge="both"), {}, {}) is True
    # the network's name is looked up before its bridge's
    assert judge.is_private(nic(bridge="br-up", network="isonet"), {"isonet": True}, {}) is False


def test_libvirt_networks_then_the_bridge_then_no_bridge_is_public():
    bridges = Bridges({"virbr1": False, "lan1": True})
    judge = PrivacyJudge(bridges)
    assert judge.is_private(nic(bridge="virbr1", network="isonet"), {"isonet": True}, {}) is True
    assert judge.is_private(nic(kind="direct"), {}, {}) is False
    answers: dict[str, bool] = {}
    assert judge.is_private(nic(bridge="lan1"), {}, answers) is True
    assert judge.is_private(nic(bridge="lan1"), {}, answers) is True
    assert bridges.asked == ["lan1"]  # once a scrape: the scrape's answers are reused
    assert answers == {"lan1": True}


def test_a_bridge_that_cannot_be_seen_counts_as_private_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    judge = PrivacyJudge(Bridges({}))
    with caplog.at_level(logging.WARNING, logger="virtbalance.exporter.privacy"):
        assert judge.is_private(nic(bridge="hidden"), {}, {}) is True
        assert judge.is_private(nic(bridge="hidden"), {}, {}) is True  # a later scrape
    assert [r.getMessage() for r in caplog.records] == [
        "bridge hidden is not visible; counted as private"
    ]
