"""The ``none`` policy: never migrates; the baseline every other policy is measured against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from simulator.policies.base import PolicyPlugin, as_dict, parse_params
from simulator.state import ClusterView, Move
from virtbalance.policy import Policy


@dataclass(frozen=True)
class NoneParams:
    """No parameters."""


class NonePolicy(PolicyPlugin):
    """Leave every VM where first fit put it."""

    name: ClassVar[str] = "none"
    chunk_aware: ClassVar[bool] = True

    def __init__(self, params: NoneParams) -> None:
        self.params = params

    @classmethod
    def build(cls, params: Mapping[str, Any] | None, policy: Policy) -> NonePolicy:
        return cls(parse_params(NoneParams, params, "policies.none", frozenset()))

    def decide(self, view: ClusterView) -> Sequence[Move]:
        return ()

    def parameters(self) -> dict[str, Any]:
        return as_dict(self.params)
