"""The lab's error types; scenario problems are ``virtbalance.errors.ValidationError``."""

from __future__ import annotations


class LabError(RuntimeError):
    """The lab cannot do what was asked; the message says why and what to run."""


class LabAlreadyUp(LabError):  # noqa: N818 (the name other components code against)
    """A lab with this id exists already; nothing was changed."""


class LabNotUp(LabError):  # noqa: N818
    """No lab with this id is up."""
