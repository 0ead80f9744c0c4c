"""The ``none`` policy: never migrates; the baseline every other policy is measured against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from virtbalance.simulator.policies.base import ParamsPlugin
from virtbalance.simulator.state import ClusterView, Move


@dataclass(frozen=True)
class NoneParams:
    """No parameters."""


class NonePolicy(ParamsPlugin[NoneParams]):
    """Leave every VM where first fit put it."""

    name: ClassVar[str] = "none"
    chunk_aware: ClassVar[bool] = True
    params_type = NoneParams

    def decide(self, view: ClusterView) -> Sequence[Move]:
        return ()
