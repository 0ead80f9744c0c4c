"""virtbalance lab: a real multi-host libvirt cluster on one machine, in namespaces."""

from virtbalance.lab.api import Lab, LabHost
from virtbalance.lab.errors import LabAlreadyUp, LabError, LabNotUp
from virtbalance.namespace import require_namespace

require_namespace(__name__)

__all__ = ["Lab", "LabAlreadyUp", "LabError", "LabHost", "LabNotUp"]
