"""The VaR model of the seed 000 section 7.4 "var_95" limit is selectable (configs/risk.yaml ``var.model``): the
seed's unconditional hybrid VaR or the conditional FHS + GPD forecast, computed for every book and stored in
risk_state beside the hybrid."""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing

import numpy as np
import polars as pl
import pytest

from mqf_pipeline.config import ConfigError, load_settings
from mqf_pipeline.config.risk import VarSettings
from mqf_pipeline.risk import breakers
from mqf_pipeline.risk import limits as lim
from mqf_pipeline.risk.book import (
    HYBRID_FALLBACK,
    VAR_MODELS,
    ReturnsWindow,
    RiskParams,
    book_risk,
    limit_checks,
)
from mqf_pipeline.risk.conditional_var import fhs_var_next
from mqf_pipeline.stages import params
from mqf_pipeline.stages.decision_rows import risk_state_row
from mqf_pipeline.storage.schema import conform

BOOK = {"A": 0.4, "B": 0.3, "C": -0.1}
SECTORS = {"A": "TECH", "B": "ENERGY", "C": "HEALTH"}


def _window(days: int = 252, calm: float = 0.008, stormy: float = 0.03, storm_days: int = 30) -> ReturnsWindow:
    """Returns of A-D, calm then a volatility jump over the last ``storm_days``: the conditional VaR follows the
    jump, the equal-weight hybrid VaR of the whole window lags far behind it."""
    rng = np.random.default_rng(11)
    scale = np.where(np.arange(days) < days - storm_days, calm, stormy)[:, None]
    returns = rng.standard_t(5, size=(days, 4)) * scale / np.sqrt(5 / 3)
    return ReturnsWindow(("A", "B", "C", "D"), returns, returns.mean(axis=1))


def _var_check(risk, p: RiskParams) -> dict[str, object]:
    return next(c for c in limit_checks(risk, 0.0, p) if c["name"] == "var_95")


def test_the_selected_model_is_the_var_the_var_95_limit_checks() -> None:
    """Same book and window, two models: the "var_95" check sees exactly (==) the selected model's VaR, and a
    limit between the two breaches only under the conditional model."""
    window = _window()
    hybrid = book_risk(BOOK, window, SECTORS, RiskParams(var_model="hybrid"))
    conditional = book_risk(BOOK, window, SECTORS, RiskParams(var_model="fhs_evt"))
    assert (hybrid.var_model, conditional.var_model) == ("hybrid", "fhs_evt")
    assert hybrid.var_hybrid == conditional.var_hybrid and hybrid.var_conditional == conditional.var_conditional
    assert conditional.var_conditional > 1.5 * conditional.var_hybrid  # the storm: the two models differ
    limit = (conditional.var_hybrid + conditional.var_conditional) / 2
    for model, risk, want, breached in (
        ("hybrid", hybrid, hybrid.var_hybrid, False),
        ("fhs_evt", conditional, conditional.var_conditional, True),
    ):
        p = RiskParams(var_model=model, limits=lim.with_values({"var_95": limit}))
        assert risk.var_for_limits == want
        check = _var_check(risk, p)
        assert check["value"] == want and check["breached"] is breached, (model, check)


def test_the_conditional_var_of_a_book_is_the_next_session_forecast_of_its_portfolio_returns() -> None:
    """Independent path: the portfolio series ``window.columns(names) @ weights`` through ``fhs_var_next`` with the
    book's level, GPD threshold and hybrid share, over the whole window. Tolerance 1e-14 relative: the same
    series and function; only the BLAS summation order of the matrix product could differ."""
    window = _window()
    p = RiskParams()
    names = sorted(BOOK)
    weights = np.array([BOOK[s] for s in names])
    series = window.columns(names) @ weights
    want = fhs_var_next(series, p.level, window=series.size, threshold_quantile=p.evt_threshold_quantile)
    risk = book_risk(BOOK, window, SECTORS, p)
    assert want.model == "fhs_evt" and want.residuals == 252 - 20
    assert risk.var_conditional == pytest.approx(want.var, rel=1e-14, abs=0)


def test_a_short_window_falls_back_to_the_hybrid_and_says_so() -> None:
    """Under 120 sessions the conditional model has no residual tail: its VaR is the hybrid (exactly: the same
    function on the same series) and ``var_model`` records the fallback; the hybrid model is unaffected."""
    window = _window(days=80, storm_days=10)
    risk = book_risk(BOOK, window, SECTORS, RiskParams(var_model="fhs_evt"))
    assert risk.var_model == HYBRID_FALLBACK
    assert risk.var_conditional == risk.var_hybrid == risk.var_for_limits == _var_check(risk, RiskParams())["value"]
    assert book_risk(BOOK, window, SECTORS, RiskParams(var_model="hybrid")).var_model == "hybrid"


@pytest.mark.parametrize("model", VAR_MODELS)
def test_an_empty_book_has_no_var_under_either_model(model: str) -> None:
    risk = book_risk({"A": 0.0}, _window(), SECTORS, RiskParams(var_model=model))
    assert (risk.var_hybrid, risk.var_conditional, risk.var_for_limits, risk.var_model) == (0.0, 0.0, 0.0, model)
    assert _var_check(risk, RiskParams(var_model=model))["value"] == 0.0


def test_config_selects_the_model_and_rejects_an_unknown_one() -> None:
    shipped = load_settings("configs")
    assert shipped.risk.var.model == "fhs_evt" and params.risk_params(shipped).var_model == "fhs_evt"
    chosen = load_settings("configs", risk={"var": {"model": "hybrid"}})
    assert params.risk_params(chosen).var_model == "hybrid"
    with pytest.raises(ConfigError, match=r"risk.yaml: risk.var.model: Input should be 'hybrid' or 'fhs_evt'"):
        load_settings("configs", risk={"var": {"model": "garch"}})
    # one list of models: the settings' Literal is the risk engine's, and RiskParams refuses any other value
    assert typing.get_args(VarSettings.model_fields["model"].annotation) == VAR_MODELS
    with pytest.raises(ValueError, match=r"var_model must be one of \['hybrid', 'fhs_evt'\], got 'garch'"):
        RiskParams(var_model="garch")  # type: ignore[arg-type]
    assert dataclasses.replace(RiskParams(), var_model="hybrid").var_model == "hybrid"


def test_risk_state_row_stores_both_vars_and_the_model_in_the_declared_schema() -> None:
    risk = book_risk(BOOK, _window(), SECTORS, RiskParams())
    checks = limit_checks(risk, 0.0, RiskParams())
    row = risk_state_row(
        dt.date(2024, 1, 2),
        "c1",
        1.0e6,
        1.0e6,
        0.0,
        risk,
        checks,
        0.10,
        None,
        1.0,
        1.0,
        breakers.BreakerState(),
        1.0,
        None,
        dict(BOOK),
        "decided",
    )
    assert (row["var_conditional"], row["var_model"]) == (risk.var_conditional, "fhs_evt")
    frame = conform("risk_state", pl.DataFrame([row], infer_schema_length=None))
    assert frame.schema["var_conditional"] == pl.Float64 and frame.schema["var_model"] == pl.String
