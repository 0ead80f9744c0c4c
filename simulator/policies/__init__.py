"""Policy plug-ins for the simulator: none, virtbalance and the policies of earlier systems."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from virtbalance.errors import ValidationError
from virtbalance.policy import Policy
from virtbalance.simulator.policies.base import PolicyPlugin
from virtbalance.simulator.policies.drs import DrsPolicy
from virtbalance.simulator.policies.livemigrationspec import LiveMigrationSpecPolicy
from virtbalance.simulator.policies.mcollective import McollectivePolicy
from virtbalance.simulator.policies.none import NonePolicy
from virtbalance.simulator.policies.thrmmt import ThrMmtPolicy
from virtbalance.simulator.policies.virtbalance import VirtbalancePolicy
from virtbalance.simulator.policies.virtbalance_consolidate import VirtbalanceConsolidatePolicy
from virtbalance.simulator.policies.xenguard import XenGuardPolicy

Builder = Callable[[Mapping[str, Any] | None, Policy], PolicyPlugin]

PLUGINS: dict[str, Builder] = {
    "none": NonePolicy.build,
    "virtbalance": VirtbalancePolicy.build,
    "xenguard": XenGuardPolicy.build,
    "livemigrationspec": LiveMigrationSpecPolicy.build,
    "mcollective": McollectivePolicy.build,
    "drs": DrsPolicy.build,
    "thr-mmt": ThrMmtPolicy.build,
    "virtbalance-consolidate": VirtbalanceConsolidatePolicy.build,
}


def build_plugins(
    names: list[str], params: Mapping[str, Mapping[str, Any] | None], policy: Policy
) -> list[PolicyPlugin]:
    """Build the named plug-ins with their parameters; ValidationError listing every problem."""
    problems = [
        f"{n}: unknown policy (known: {', '.join(PLUGINS)})" for n in names if n not in PLUGINS
    ]
    problems += [
        f"policies.{n}: parameters for a policy that is not known"
        for n in params
        if n not in PLUGINS
    ]
    plugins: list[PolicyPlugin] = []
    for name in names:
        if name not in PLUGINS:
            continue
        try:
            plugins.append(PLUGINS[name](params.get(name), policy))
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError("simulation", problems)
    return plugins
