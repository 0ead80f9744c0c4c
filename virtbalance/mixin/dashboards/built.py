"""A builder that hands a finished SDK model to the dashboard builder, which takes builders only."""

from __future__ import annotations

from typing import Generic, TypeVar

from grafana_foundation_sdk.cog.builder import Builder

T = TypeVar("T")


class Built(Builder[T], Generic[T]):
    """For the SDK models extended here with fields the SDK lacks: they are made, not built."""

    def __init__(self, model: T) -> None:
        self._model = model

    def build(self) -> T:
        return self._model
