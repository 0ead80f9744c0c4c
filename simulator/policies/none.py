"""The ``none`` policy: never migrates; the baseline every other policy is measured against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from virtbalance.policy import Policy
from virtbalance.simulator.policies.base import PolicyPlugin, as_dict, parse_params
from virtbalance.simulator.state import ClusterView, Move


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
