-- MQF pipeline: every table of seed 000 (section 11) and seed 002 (appendix A), declared once.
--
-- DuckDB dialect. This file is the single declaration: mqf_pipeline/storage/schema.py derives the
-- polars schemas, keys and catalog views from it. Conventions against the seeds' SQLite DDL:
--   * TEXT dates are DATE, TEXT timestamps are TIMESTAMPTZ (UTC), REAL is DOUBLE, INTEGER is BIGINT.
--   * `id INTEGER PRIMARY KEY AUTOINCREMENT` becomes `id BIGINT NOT NULL`, filled by the writer with a
--     stable 63-bit hash of the table's natural key (its UNIQUE or PRIMARY KEY), so a rerun gives the
--     same id. Tables the seeds left without a natural key get one here.
--   * `created_at`, `ingestion_timestamp` and `updated_at` record when a row was first written (and
--     `solve_time_ms` how long a solve took); they are left out of content hashes, and a rewrite with unchanged content keeps the original file.
--   * Extra columns beyond the seeds are marked "-- extra".
--   * Seed 000 names ten supporting tables without columns (cycle_meta, positions, model_outputs,
--     features, corporate_actions, data_quality, ingestion_audit, provider_metrics,
--     backfill_failures, trading_eligibility); their columns are ours.

-- ---------------------------------------------------------------- seed 000: core tables
CREATE TABLE price_history (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    open DOUBLE,
    high DOUBLE,
    low DOUBLE,
    close DOUBLE,                      -- raw (unadjusted) close
    adjusted_close DOUBLE,             -- split- and dividend-adjusted; use ratios (returns), not levels
    volume BIGINT,                     -- shares
    provider VARCHAR NOT NULL,
    raw_hash VARCHAR NOT NULL,         -- sha256 of the archived raw records (runtime/raw/...)
    validation_flags VARCHAR,          -- JSON list of row-level flags set at ingestion
    ingestion_timestamp TIMESTAMPTZ NOT NULL,
    spread_bps DOUBLE,                 -- extra: average quoted spread, bps of mid, when known
    n_duplicates INTEGER NOT NULL,     -- extra: extra copies of this (symbol, date) the provider sent
    PRIMARY KEY (symbol, date)
);

CREATE TABLE decisions (
    id BIGINT NOT NULL,
    cycle_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    final_decision VARCHAR NOT NULL,
    position_size DOUBLE,
    stop_loss DOUBLE,
    reason_codes_json VARCHAR NOT NULL,
    mu_hat DOUBLE,
    sigma_hat DOUBLE,
    conviction DOUBLE,
    data_quality_score DOUBLE,
    provider_confidence DOUBLE,
    metadata_json VARCHAR,
    date DATE NOT NULL,                -- extra: the session decided (the lake partition)
    agent_results_json VARCHAR,        -- extra: audit field agent_results (per agent mu, sigma, confidence, weight)
    risk_checks_json VARCHAR,          -- extra: audit field risk_checks (each rule's value and limit)
    UNIQUE (cycle_id, symbol)
);

CREATE TABLE orders (
    id BIGINT NOT NULL,
    order_id VARCHAR NOT NULL UNIQUE,
    cycle_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL,
    qty DOUBLE,
    price DOUBLE,
    order_type VARCHAR,
    time_in_force VARCHAR,
    status VARCHAR NOT NULL,
    commission DOUBLE,
    slippage DOUBLE,
    date DATE NOT NULL,                -- extra: the cycle's session (orders made at D trade during D+1)
    leg INTEGER NOT NULL,              -- extra: 0, or 1 for the second order of a trade crossing zero
    strategy VARCHAR,                  -- extra: child-order schedule (MARKET, LIMIT, TWAP, POV, VWAP, WAIT)
    limit_price DOUBLE,                -- extra
    stop_price DOUBLE,                 -- extra
    target_weight DOUBLE,              -- extra: the portfolio target the order moves towards, fraction of NAV
    broker VARCHAR,                    -- extra: paper | alpaca-paper | alpaca-live
    broker_order_id VARCHAR,           -- extra: the broker's id (order_id is our deterministic client order id)
    reason VARCHAR                     -- extra: why an order was not submitted or was rejected
);

CREATE TABLE audit_log (
    id BIGINT NOT NULL,
    cycle_id VARCHAR,
    timestamp TIMESTAMPTZ NOT NULL,
    component VARCHAR NOT NULL,
    level VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    payload_json VARCHAR,
    event_key VARCHAR NOT NULL,        -- extra: natural key of the event (e.g. symbol + decision), unique per cycle
    date DATE NOT NULL,                -- extra: the session of the cycle (the lake partition)
    UNIQUE (cycle_id, component, event_key)
);

-- ---------------------------------------------------------------- seed 000: supporting tables
CREATE TABLE cycle_meta (
    cycle_id VARCHAR NOT NULL UNIQUE,
    date DATE NOT NULL,
    strategy VARCHAR NOT NULL,
    mode VARCHAR NOT NULL,
    run_id VARCHAR,
    n_symbols BIGINT,
    n_eligible BIGINT,
    n_decisions BIGINT,
    n_orders BIGINT,
    regime VARCHAR,
    nav DOUBLE,
    gross_exposure DOUBLE,
    net_exposure DOUBLE,
    status VARCHAR NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);

CREATE TABLE positions (
    date DATE NOT NULL,
    symbol VARCHAR NOT NULL,
    qty DOUBLE NOT NULL,
    avg_price DOUBLE,
    market_price DOUBLE,
    market_value DOUBLE,
    weight DOUBLE,
    unrealized_pnl DOUBLE,
    realized_pnl DOUBLE,
    UNIQUE (date, symbol)
);

CREATE TABLE model_outputs (
    date DATE NOT NULL,
    cycle_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    agent VARCHAR NOT NULL,
    mu DOUBLE,                         -- expected return over the agent's horizon, decimal
    sigma DOUBLE,
    confidence DOUBLE,                 -- [0, 1]
    signal DOUBLE,                     -- [-1, 1]
    horizon_days INTEGER,
    reason_codes_json VARCHAR,
    model_version VARCHAR,
    UNIQUE (cycle_id, symbol, agent)
);

CREATE TABLE features (
    date DATE NOT NULL,
    symbol VARCHAR NOT NULL,
    feature VARCHAR NOT NULL,
    value DOUBLE,
    feature_version VARCHAR NOT NULL,
    UNIQUE (date, symbol, feature)
);

CREATE TABLE corporate_actions (
    date DATE NOT NULL,                -- ex-date
    symbol VARCHAR NOT NULL,
    action_type VARCHAR NOT NULL,      -- SPLIT | DIVIDEND
    value DOUBLE NOT NULL,             -- SPLIT: new shares per old share; DIVIDEND: cash per share
    provider VARCHAR NOT NULL,
    raw_hash VARCHAR,
    UNIQUE (date, symbol, action_type)
);

CREATE TABLE data_quality (
    date DATE NOT NULL,
    symbol VARCHAR NOT NULL,
    quality_score DOUBLE NOT NULL,     -- seed 000 section 4.2 formula, in [0, 1]
    missing_dates_pct DOUBLE NOT NULL, -- fraction (not percent) of expected sessions missing or stale in the window
    duplicate_pct DOUBLE NOT NULL,     -- fraction of received rows in the window that were duplicates
    zero_negative_flag INTEGER NOT NULL,   -- 1 if the bar has an unusable price (zero, negative, NaN, OHLC inconsistent, bad type)
    extreme_spike_flag INTEGER NOT NULL,   -- 1 if the bar's price or volume departs extremely from its trailing norm
    validation_flags VARCHAR NOT NULL, -- JSON list of flags
    status VARCHAR NOT NULL,           -- ACCEPT | REJECT
    window_sessions INTEGER NOT NULL,
    provider VARCHAR,
    UNIQUE (date, symbol)
);

CREATE TABLE ingestion_audit (
    date DATE NOT NULL,
    run_id VARCHAR NOT NULL,
    providers VARCHAR NOT NULL,        -- JSON list
    n_symbols_expected BIGINT NOT NULL,
    n_rows BIGINT NOT NULL,
    n_symbols_missing BIGINT NOT NULL,
    n_duplicates BIGINT NOT NULL,
    n_cast_failed BIGINT NOT NULL,
    n_requests BIGINT NOT NULL,
    n_retries BIGINT NOT NULL,
    n_fallbacks BIGINT NOT NULL,
    latency_ms DOUBLE,
    raw_hashes VARCHAR NOT NULL,       -- JSON list of raw archive hashes for this session
    content_hash VARCHAR NOT NULL,     -- hash of the price_history partition written
    status VARCHAR NOT NULL,           -- OK | PARTIAL | EMPTY
    ingestion_timestamp TIMESTAMPTZ NOT NULL,
    UNIQUE (date)
);

CREATE TABLE provider_metrics (          -- cumulative router/bandit state after each ingesting step
    provider VARCHAR NOT NULL,
    capability VARCHAR NOT NULL,           -- bars | corporate_actions | macro
    run_id VARCHAR NOT NULL,
    source_step VARCHAR NOT NULL,          -- the step that wrote this snapshot
    requests BIGINT,
    successes BIGINT,
    failures BIGINT,
    retries BIGINT,
    rate_limited BIGINT,
    timeouts BIGINT,
    rows BIGINT,
    mean_latency_ms DOUBLE,
    mean_quality DOUBLE,
    bandit_alpha DOUBLE,
    bandit_beta DOUBLE,
    mean_reward DOUBLE,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (run_id, source_step, provider, capability)
);

CREATE TABLE backfill_failures (
    date DATE NOT NULL,
    symbol VARCHAR NOT NULL,
    providers_tried VARCHAR NOT NULL,  -- JSON list
    error VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (date, symbol)
);

CREATE TABLE trading_eligibility (
    date DATE NOT NULL,
    symbol VARCHAR NOT NULL,
    eligible BOOLEAN NOT NULL,
    quality_score DOUBLE,
    history_rows BIGINT NOT NULL,      -- accepted bars up to and including date
    phase0_pass BOOLEAN NOT NULL,      -- governance Phase 0: history_rows >= min_history_rows
    phase1_pass BOOLEAN NOT NULL,      -- governance Phase 1: data quality accepted (score >= 0.6, no hard flag)
    reasons_json VARCHAR NOT NULL,
    UNIQUE (date, symbol)
);

CREATE TABLE fundamentals (           -- extra table: point-in-time quarterly fundamentals
    report_date DATE NOT NULL,         -- first session the figures are known (partition key)
    symbol VARCHAR NOT NULL,
    fiscal_period_end DATE NOT NULL,
    eps DOUBLE,                        -- quarterly diluted EPS, USD per share
    book_value_per_share DOUBLE,       -- USD per share at period end
    revenue DOUBLE,                    -- quarterly, USD
    operating_cash_flow DOUBLE,        -- quarterly, USD
    dividend_per_share DOUBLE,         -- declared in the quarter, USD per share
    shares_outstanding BIGINT,
    provider VARCHAR NOT NULL,
    raw_hash VARCHAR NOT NULL,
    UNIQUE (symbol, fiscal_period_end, report_date)
);

CREATE TABLE news_headlines (         -- extra table: headlines by the session they are first known at
    date DATE NOT NULL,
    symbol VARCHAR NOT NULL,
    headline_id VARCHAR NOT NULL,      -- sha256 of (symbol, published date, text), first 16 hex chars
    headline VARCHAR NOT NULL,
    provider VARCHAR NOT NULL,
    raw_hash VARCHAR NOT NULL,
    UNIQUE (date, symbol, headline_id)
);

CREATE TABLE macro_series (           -- extra table: macro inputs (VIX-like index, short rate)
    date DATE NOT NULL,
    series_id VARCHAR NOT NULL,        -- VIX (index points) | SHORT_RATE (decimal, annual)
    value DOUBLE,
    provider VARCHAR NOT NULL,
    raw_hash VARCHAR NOT NULL,
    ingestion_timestamp TIMESTAMPTZ NOT NULL,
    UNIQUE (date, series_id)
);

CREATE TABLE risk_state (             -- extra table: the risk engine's view of the book after each cycle
    date DATE NOT NULL,
    cycle_id VARCHAR NOT NULL,
    nav DOUBLE NOT NULL,               -- NAV (account currency): the account's when executed, else the decided book's
    peak_nav DOUBLE NOT NULL,
    drawdown DOUBLE NOT NULL,          -- 1 - nav / peak_nav, fraction
    gross_exposure DOUBLE NOT NULL,    -- sum |w|, fraction of NAV
    net_exposure DOUBLE NOT NULL,
    n_positions BIGINT NOT NULL,
    var_historical DOUBLE,             -- 1-day 95% VaR of the book, positive loss fraction (252 sessions)
    var_parametric DOUBLE,
    var_hybrid DOUBLE,                 -- 60% historical + 40% parametric
    var_conditional DOUBLE,            -- 1-day 95% conditional VaR for the next session: EWMA-filtered historical
                                       -- simulation + GPD tail of the book's returns (the hybrid below 120 sessions)
    var_model VARCHAR NOT NULL,        -- the VaR the var_95 limit checked (configs/risk.yaml var.model): hybrid |
                                       -- fhs_evt | hybrid_fallback (fhs_evt selected, window too short: the hybrid)
    cvar_evt DOUBLE,                   -- 1-day 95% CVaR of the book, GPD peaks over threshold
    cvar_historical DOUBLE,
    vol_ann DOUBLE,                    -- ex-ante annualised volatility of the book (63 sessions)
    vol_target_ann DOUBLE,
    avg_correlation DOUBLE,            -- weight-averaged pairwise correlation of the held names
    correlation_shock_vol_ann DOUBLE,  -- annualised book vol if every pairwise correlation became the shock level
    max_sector VARCHAR,
    max_sector_exposure DOUBLE,
    stress_worst_scenario VARCHAR,
    stress_worst_loss DOUBLE,          -- positive loss fraction of NAV
    stress_json VARCHAR NOT NULL,      -- every scenario's loss
    limits_json VARCHAR NOT NULL,      -- seed 000 section 7.4: value, limit, breached, action, scale per limit
    regime VARCHAR,
    regime_multiplier DOUBLE,
    drawdown_multiplier DOUBLE,
    breaker_status VARCHAR NOT NULL,   -- NORMAL | SCALE | DEFENSIVE | FREEZE | RECOVERY
    breaker_tier BIGINT NOT NULL,
    breaker_state_json VARCHAR NOT NULL,   -- the persisted state machine (cooldown, recovery step, counters)
    sizing_multiplier DOUBLE NOT NULL, -- applied to the next cycle's Kelly sizes: regime x breaker x drawdown
    kill_switch BOOLEAN NOT NULL,
    book_json VARCHAR NOT NULL,        -- the decided book after the cycle (symbol -> weight)
    book_source VARCHAR NOT NULL,      -- what nav, drawdown and the breaker measured: positions (booked by execution:
                                       -- fills, costs, dividends; account NAV) | decided (research: the previous
                                       -- decided book marked with close-to-close returns)
    UNIQUE (date)
);

CREATE TABLE account (                -- extra table: the fund's cash and NAV from the positions ledger
    date DATE NOT NULL,
    cash DOUBLE NOT NULL,              -- dollars
    positions_value DOUBLE NOT NULL,   -- signed market value of the positions at the close, dollars
    nav DOUBLE NOT NULL,               -- cash + positions_value
    gross_exposure DOUBLE NOT NULL,    -- sum |market value| / nav
    net_exposure DOUBLE NOT NULL,
    n_positions BIGINT NOT NULL,
    realized_pnl DOUBLE NOT NULL,      -- cumulative, dollars (after commissions)
    commission DOUBLE NOT NULL,        -- this session's, dollars
    dividends DOUBLE NOT NULL,         -- this session's cash dividends, dollars
    n_fills BIGINT NOT NULL,           -- fills booked this session
    broker VARCHAR NOT NULL,
    spike_sessions_left BIGINT NOT NULL,   -- execution kill switch (slippage spike): sessions it stays engaged
    UNIQUE (date)
);

CREATE TABLE risk_contributions (     -- extra table: per-position risk of the book after each cycle
    date DATE NOT NULL,
    symbol VARCHAR NOT NULL,
    weight DOUBLE NOT NULL,
    sector VARCHAR,
    beta DOUBLE,
    component_cvar DOUBLE,             -- Euler contribution to the book's CVaR (sums to cvar_evt), fraction of NAV
    marginal_cvar DOUBLE,              -- component_cvar / weight
    UNIQUE (date, symbol)
);

CREATE TABLE governance_gates (       -- extra table: seed 000 section 10.4 gates per cycle
    date DATE NOT NULL,
    cycle_id VARCHAR NOT NULL,
    phase BIGINT NOT NULL,             -- 0 history, 1 data quality, 2 signals, 3 risk, 4 orders
    gate VARCHAR NOT NULL,
    passed BOOLEAN NOT NULL,
    detail VARCHAR NOT NULL,
    UNIQUE (date, phase)
);

-- ---------------------------------------------------------------- seed 002: attribution
CREATE TABLE factor_returns (
    id BIGINT NOT NULL,
    date DATE NOT NULL,
    factor_name VARCHAR NOT NULL,
    factor_return DOUBLE NOT NULL,
    t_stat DOUBLE,
    p_value DOUBLE,
    n_observations BIGINT,
    r_squared DOUBLE,
    created_at TIMESTAMPTZ,
    UNIQUE (date, factor_name)
);

CREATE TABLE security_factor_exposures (
    id BIGINT NOT NULL,
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    beta_market DOUBLE,
    beta_momentum DOUBLE,
    beta_value DOUBLE,
    beta_volatility DOUBLE,
    beta_size DOUBLE,
    beta_liquidity DOUBLE,
    alpha DOUBLE,
    residual_std DOUBLE,
    r_squared DOUBLE,
    created_at TIMESTAMPTZ,
    UNIQUE (symbol, date)
);

CREATE TABLE agent_pnl (
    id BIGINT NOT NULL,
    cycle_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    agent_name VARCHAR NOT NULL,
    mu_hat DOUBLE,
    sigma_hat DOUBLE,
    confidence DOUBLE,
    agent_weight DOUBLE,
    realized_return DOUBLE,
    pnl_contribution DOUBLE,
    factor_adjusted_return DOUBLE,
    created_at TIMESTAMPTZ,
    UNIQUE (cycle_id, symbol, agent_name)
);

CREATE TABLE portfolio_attribution (
    id BIGINT NOT NULL,
    date DATE NOT NULL,
    cycle_id VARCHAR,
    total_portfolio_return DOUBLE,
    market_contribution DOUBLE,
    momentum_contribution DOUBLE,
    value_contribution DOUBLE,
    volatility_contribution DOUBLE,
    size_contribution DOUBLE,
    liquidity_contribution DOUBLE,
    sector_contribution DOUBLE,
    alpha_contribution DOUBLE,
    idiosyncratic_contribution DOUBLE,
    portfolio_volatility DOUBLE,
    portfolio_beta DOUBLE,
    tracking_error DOUBLE,
    information_ratio DOUBLE,
    top_contributor_symbol VARCHAR,
    top_contributor_pnl DOUBLE,
    worst_detractor_symbol VARCHAR,
    worst_detractor_pnl DOUBLE,
    created_at TIMESTAMPTZ,
    UNIQUE (date)
);

-- ---------------------------------------------------------------- seed 002: agent weight learning
CREATE TABLE agent_weights (
    id BIGINT NOT NULL,
    date DATE NOT NULL,
    cycle_id VARCHAR NOT NULL,
    agent_name VARCHAR NOT NULL,
    weight DOUBLE NOT NULL,
    rolling_sharpe DOUBLE,
    recent_hit_rate DOUBLE,
    regime VARCHAR,
    volatility_regime DOUBLE,
    algorithm_used VARCHAR,
    created_at TIMESTAMPTZ,
    UNIQUE (cycle_id, agent_name)
);

CREATE TABLE agent_performance (
    id BIGINT NOT NULL,
    agent_name VARCHAR NOT NULL,
    date DATE NOT NULL,
    predicted_return DOUBLE,
    actual_return DOUBLE,
    hit INTEGER,
    pnl_contribution DOUBLE,
    factor_adjusted_return DOUBLE,
    created_at TIMESTAMPTZ,
    UNIQUE (agent_name, date)
);

CREATE TABLE regime_history (
    id BIGINT NOT NULL,
    date DATE NOT NULL,
    regime VARCHAR NOT NULL,
    regime_prob DOUBLE,
    spy_ma200_position DOUBLE,
    volatility_percentile DOUBLE,
    vix_level DOUBLE,
    created_at TIMESTAMPTZ,
    prob_normal DOUBLE,                -- extra: filtered HMM state probabilities at the date's close
    prob_volatile DOUBLE,
    prob_crisis DOUBLE,
    hmm_state VARCHAR,                 -- extra: NORMAL | VOLATILE | CRISIS (most probable, filtered)
    risk_multiplier DOUBLE,            -- extra: seed 000 section 7.2 sizing multiplier of the regime
    UNIQUE (date)
);

-- ---------------------------------------------------------------- seed 002: RL execution
CREATE TABLE execution_model_versions (
    id BIGINT NOT NULL,
    version_id VARCHAR NOT NULL UNIQUE,
    algorithm VARCHAR NOT NULL,
    model_path VARCHAR,
    trained_at TIMESTAMPTZ,
    metrics_json VARCHAR,
    hyperparameters_json VARCHAR,
    status VARCHAR,
    created_at TIMESTAMPTZ
);

CREATE TABLE execution_decisions (
    id BIGINT NOT NULL,
    order_id VARCHAR NOT NULL UNIQUE,
    cycle_id VARCHAR,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL,
    quantity DOUBLE NOT NULL,
    size_adv DOUBLE,
    volatility DOUBLE,
    spread_bps DOUBLE,
    imbalance DOUBLE,
    time_remaining DOUBLE,
    action VARCHAR NOT NULL,
    confidence DOUBLE,
    q_values_json VARCHAR,
    used_fallback BOOLEAN,
    fallback_reason VARCHAR,
    created_at TIMESTAMPTZ,
    date DATE NOT NULL,                -- extra: the cycle's session
    expected_cost_bps DOUBLE,          -- extra: the cost model's expected cost of the chosen action
    policy VARCHAR                     -- extra: rule-based (no learned execution model is deployed)
);

CREATE TABLE execution_outcomes (
    id BIGINT NOT NULL,
    order_id VARCHAR NOT NULL UNIQUE,
    expected_price DOUBLE,
    fill_price DOUBLE,
    fill_time TIMESTAMPTZ,
    slippage_bps DOUBLE,
    market_impact_bps DOUBLE,
    commission DOUBLE,
    total_cost_bps DOUBLE,
    adv DOUBLE,
    adv_dollar DOUBLE,
    vol_regime DOUBLE,
    bid_ask_spread DOUBLE,
    model_estimated_cost DOUBLE,
    cost_error_bps DOUBLE,
    created_at TIMESTAMPTZ,
    date DATE NOT NULL,                -- extra: the session the order traded in (D+1 for an order of cycle D)
    cycle_id VARCHAR,                  -- extra: the cycle that made the order
    symbol VARCHAR,                    -- extra
    side VARCHAR,                      -- extra
    status VARCHAR,                    -- extra: the order's final status (FILLED, CANCELLED after partial fills, ...)
    ordered_qty DOUBLE,                -- extra: shares
    filled_qty DOUBLE,                 -- extra: shares
    cancel_reason VARCHAR,             -- extra: EXPIRED (DAY order at the close), PRICE_AWAY, VOLUME_ANOMALY, NO_BAR,
                                       --   NO_OHLC (no open: close-only data), NO_VOLUME (no volume or ADV), ...
    spread_source VARCHAR              -- extra: bid_ask_spread is quoted | estimated_edge | default
);

-- ---------------------------------------------------------------- seed 002: portfolio optimization
CREATE TABLE portfolio_targets (
    id BIGINT NOT NULL,
    cycle_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    target_weight DOUBLE NOT NULL,
    current_weight DOUBLE,
    weight_change DOUBLE,
    marginal_risk DOUBLE,
    expected_return DOUBLE,
    sharpe_contribution DOUBLE,
    turnover_cost DOUBLE,
    liquidation_priority INTEGER,
    date DATE NOT NULL,                -- extra: the session (the lake partition)
    UNIQUE (cycle_id, symbol)
);

CREATE TABLE portfolio_constraints (
    id BIGINT NOT NULL,
    date DATE NOT NULL,
    constraint_type VARCHAR NOT NULL,
    limit_value DOUBLE,
    current_value DOUBLE,
    utilization_pct DOUBLE,
    binding INTEGER,
    UNIQUE (date, constraint_type)
);

CREATE TABLE optimization_results (
    id BIGINT NOT NULL,
    cycle_id VARCHAR NOT NULL UNIQUE,
    optimizer_status VARCHAR,
    solve_time_ms DOUBLE,
    objective_value DOUBLE,
    constraints_violated VARCHAR,
    portfolio_return DOUBLE,
    portfolio_volatility DOUBLE,
    portfolio_sharpe DOUBLE,
    date DATE NOT NULL,                -- extra: the session (the lake partition)
    rebalance VARCHAR NOT NULL,        -- extra: STRATEGIC (weekly) | TACTICAL (daily) | EMERGENCY (risk breach)
    allocator VARCHAR NOT NULL,        -- extra: mean_variance | risk_parity | kelly | volatility_target
    method VARCHAR,                    -- extra: optimal | relaxed | sequential | greedy | hold
    conflicts VARCHAR                  -- extra: JSON list naming constraints that could not all hold
);

-- ---------------------------------------------------------------- seed 002: slippage feedback
CREATE TABLE execution_feedback (
    id BIGINT NOT NULL,
    order_id VARCHAR NOT NULL UNIQUE,
    expected_price DOUBLE,
    fill_price DOUBLE,
    slippage_bps DOUBLE,
    market_impact_bps DOUBLE,
    commission DOUBLE,
    total_cost_bps DOUBLE,
    market_conditions_json VARCHAR,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL,
    quantity DOUBLE,
    adv DOUBLE,
    adv_dollar DOUBLE,
    volatility DOUBLE,
    spread_bps DOUBLE,
    time_of_day VARCHAR,
    regime VARCHAR,
    created_at TIMESTAMPTZ,
    date DATE NOT NULL,                -- extra: the session the order traded in
    cycle_id VARCHAR,                  -- extra: the cycle that made the order
    spread_source VARCHAR              -- extra: spread_bps is quoted | estimated_edge | default
);

CREATE TABLE slippage_model_coeffs (
    id BIGINT NOT NULL,
    symbol VARCHAR NOT NULL,
    estimation_date DATE NOT NULL,
    alpha_0 DOUBLE,
    alpha_1 DOUBLE,
    alpha_2 DOUBLE,
    alpha_3 DOUBLE,
    alpha_4 DOUBLE,
    r_squared DOUBLE,
    n_observations BIGINT,
    status VARCHAR,
    UNIQUE (symbol, estimation_date)
);

CREATE TABLE slippage_prediction_errors (
    id BIGINT NOT NULL,
    date DATE NOT NULL,
    symbol VARCHAR NOT NULL,
    predicted_slippage DOUBLE,
    actual_slippage DOUBLE,
    error_bps DOUBLE,
    error_pct DOUBLE,
    market_condition VARCHAR,
    created_at TIMESTAMPTZ,
    UNIQUE (date, symbol)
);

-- ---------------------------------------------------------------- operations
CREATE TABLE kill_switch_events (     -- extra table: the audited, append-only log of the kill switch (seed 000
                                      -- section 12.2); the latest event is its state. One lake file per event,
                                      -- partition = event_id (written without the catalog's lock)
    event_id VARCHAR NOT NULL,         -- UTC timestamp (YYYYMMDDTHHMMSSffffffZ) + '-' + 12 random hex: sorts in time
    event_time TIMESTAMPTZ NOT NULL,   -- when the event was recorded (UTC)
    action VARCHAR NOT NULL,           -- engaged | released
    was_engaged BOOLEAN NOT NULL,      -- the state before the event (engaged twice / released while off show here)
    reason VARCHAR NOT NULL,           -- why ('' when none was given, e.g. a release)
    actor VARCHAR NOT NULL,            -- who: the OS user (a file's owner for source file), or the pipeline step
    source VARCHAR NOT NULL,           -- cli | file (the switch file, seen by the sensor) | api | pipeline
    host VARCHAR NOT NULL,             -- the machine that recorded it
    pid BIGINT NOT NULL,               -- the recording process
    file_path VARCHAR,                 -- the switch file (runtime/KILL_SWITCH)
    file_mtime TIMESTAMPTZ,            -- source file: when the file was created or last touched (UTC)
    PRIMARY KEY (event_id)
);
