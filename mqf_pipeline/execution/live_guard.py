"""The gate in front of a broker: which mode may trade, and with which safeguards.

* simulated: always allowed (the paper broker; no keys, no network).
* paper with the local broker (``execution.broker: local``, your own data): allowed, no keys (nothing leaves
  the machine).
* paper: Alpaca's paper endpoint; needs ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY``.
* live: real money; needs both keys, ``MQF_LIVE_TRADING_CONFIRM`` set to exactly
  ``I-UNDERSTAND-THIS-TRADES-REAL-MONEY``, and bar providers that never include "simulated".

Refusals name every missing safeguard (variable names, never their values).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from mqf_pipeline.execution.brokers.alpaca import KEY_ENV, SECRET_ENV
from mqf_pipeline.execution.brokers.base import LiveTradingRefusedError
from mqf_pipeline.modes import Mode

LIVE_CONFIRM_ENV = "MQF_LIVE_TRADING_CONFIRM"
LIVE_CONFIRM_VALUE = "I-UNDERSTAND-THIS-TRADES-REAL-MONEY"
SIMULATED_PROVIDER = "simulated"

_ENDPOINTS = {
    Mode.SIMULATED: "paper broker (simulator cost model)",
    Mode.PAPER: "Alpaca paper",
    Mode.LIVE: "Alpaca LIVE",
}


def check_trading_allowed(
    mode: Mode, bar_providers: Sequence[str], env: Mapping[str, str] | None = None, broker: str = "alpaca"
) -> None:
    """Raise :class:`LiveTradingRefusedError` unless ``mode`` may trade (module docstring).

    ``bar_providers``: the mode's bar providers (names); ``env`` defaults to ``os.environ``; ``broker``:
    ``local`` (the built-in paper broker) or ``alpaca``.
    """
    mode = Mode(mode)
    if mode is Mode.LIVE and broker == "local":
        raise LiveTradingRefusedError("live trading refused: the local broker is a paper broker")
    if mode is Mode.SIMULATED or broker == "local":
        return
    env = os.environ if env is None else env
    problems: list[str] = []
    missing = [name for name in (KEY_ENV, SECRET_ENV) if not env.get(name, "").strip()]
    if missing:
        problems.append(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set")
    if mode is Mode.LIVE:
        if env.get(LIVE_CONFIRM_ENV) != LIVE_CONFIRM_VALUE:
            problems.append(f"{LIVE_CONFIRM_ENV} is not set to {LIVE_CONFIRM_VALUE}")
        if SIMULATED_PROVIDER in {p.strip().lower() for p in bar_providers}:
            problems.append(f"bar providers include {SIMULATED_PROVIDER!r} (live trading never uses simulated data)")
    if problems:
        raise LiveTradingRefusedError(
            f"{mode.value} trading refused ({describe_endpoint(mode)}): {'; '.join(problems)}"
        )


def describe_endpoint(mode: Mode, broker: str = "alpaca") -> str:
    """Where ``mode``'s orders go, for logs."""
    return _ENDPOINTS[Mode.SIMULATED] if broker == "local" else _ENDPOINTS[Mode(mode)]
