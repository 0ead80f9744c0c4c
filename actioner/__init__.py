"""virtbalance actioner: the Alertmanager webhook receiver that plans and live-migrates chunks."""

from virtbalance.namespace import require_namespace

require_namespace(__name__)
