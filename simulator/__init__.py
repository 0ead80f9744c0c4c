"""virtbalance simulator: replay VM utilisation traces through the policy and its predecessors."""

from virtbalance.namespace import require_namespace

require_namespace(__name__)
