"""virtbalance lab: a real multi-host libvirt cluster on one machine, in namespaces."""

from lab.api import Lab, LabHost
from lab.errors import LabAlreadyUp, LabError, LabNotUp

__all__ = ["Lab", "LabAlreadyUp", "LabError", "LabHost", "LabNotUp"]
