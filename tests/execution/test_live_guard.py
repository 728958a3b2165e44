"""The live-trading guard: who may trade, and refusals that name what is missing (never values)."""

from __future__ import annotations

import pytest

from mqf_pipeline.config import Mode
from mqf_pipeline.execution.brokers.base import LiveTradingRefusedError
from mqf_pipeline.execution.live_guard import (
    LIVE_CONFIRM_ENV,
    LIVE_CONFIRM_VALUE,
    check_trading_allowed,
    describe_endpoint,
)

KEY, SECRET = "AKLIVE5X8Z1M3N", "sk-live-2b7e-never-print"
KEYS = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
LIVE_ENV = {**KEYS, LIVE_CONFIRM_ENV: LIVE_CONFIRM_VALUE}
LIVE_PROVIDERS = ["alpaca", "yahoo", "files"]


def _refusal(mode: Mode, providers: list[str], env: dict[str, str]) -> str:
    with pytest.raises(LiveTradingRefusedError) as info:
        check_trading_allowed(mode, providers, env)
    text = str(info.value)
    assert KEY not in text and SECRET not in text
    return text


def test_constants() -> None:
    assert LIVE_CONFIRM_ENV == "MQF_LIVE_TRADING_CONFIRM"
    assert LIVE_CONFIRM_VALUE == "I-UNDERSTAND-THIS-TRADES-REAL-MONEY"


@pytest.mark.parametrize("env", [{}, KEYS, LIVE_ENV])
def test_simulated_is_always_allowed(env: dict[str, str]) -> None:
    check_trading_allowed(Mode.SIMULATED, ["simulated"], env)


def test_paper_with_keys_is_allowed() -> None:
    check_trading_allowed(Mode.PAPER, ["yahoo", "alpaca", "files"], KEYS)
    check_trading_allowed(Mode.PAPER, ["simulated"], KEYS)  # only live refuses simulated data


def test_default_env_is_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    check_trading_allowed(Mode.PAPER, LIVE_PROVIDERS)
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    with pytest.raises(LiveTradingRefusedError, match="APCA_API_SECRET_KEY"):
        check_trading_allowed(Mode.PAPER, LIVE_PROVIDERS)


@pytest.mark.parametrize("mode", [Mode.PAPER, Mode.LIVE])
@pytest.mark.parametrize("missing", [["APCA_API_KEY_ID"], ["APCA_API_SECRET_KEY"], list(KEYS)])
def test_missing_keys_are_refused_by_name(mode: Mode, missing: list[str]) -> None:
    env = {k: v for k, v in LIVE_ENV.items() if k not in missing}
    text = _refusal(mode, LIVE_PROVIDERS, env)
    assert all(name in text for name in missing)
    assert all(name not in text for name in KEYS if name not in missing)


def test_blank_keys_count_as_missing() -> None:
    assert "APCA_API_KEY_ID" in _refusal(Mode.PAPER, LIVE_PROVIDERS, {**KEYS, "APCA_API_KEY_ID": "  "})


def test_live_with_every_safeguard_is_allowed() -> None:
    check_trading_allowed(Mode.LIVE, LIVE_PROVIDERS, LIVE_ENV)


@pytest.mark.parametrize("confirm", [None, "", "yes", LIVE_CONFIRM_VALUE.lower(), f" {LIVE_CONFIRM_VALUE}"])
def test_live_needs_the_exact_confirmation(confirm: str | None) -> None:
    env = dict(KEYS) if confirm is None else {**KEYS, LIVE_CONFIRM_ENV: confirm}
    assert LIVE_CONFIRM_ENV in _refusal(Mode.LIVE, LIVE_PROVIDERS, env)


@pytest.mark.parametrize("providers", [["simulated"], ["alpaca", "simulated"], ["alpaca", "Simulated"]])
def test_live_never_uses_simulated_data(providers: list[str]) -> None:
    assert "simulated" in _refusal(Mode.LIVE, providers, LIVE_ENV)


def test_live_refusal_names_every_missing_safeguard() -> None:
    text = _refusal(Mode.LIVE, ["simulated"], {})
    for name in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", LIVE_CONFIRM_ENV, "simulated", "Alpaca LIVE"):
        assert name in text


def test_describe_endpoint() -> None:
    assert describe_endpoint(Mode.SIMULATED) == "paper broker (simulator cost model)"
    assert describe_endpoint(Mode.PAPER) == "Alpaca paper"
    assert describe_endpoint(Mode.LIVE) == "Alpaca LIVE"
