"""The fund's operating modes: on the built-in simulator, paper trading, or live."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    SIMULATED = "simulated"
    PAPER = "paper"
    LIVE = "live"
